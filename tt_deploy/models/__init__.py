"""The networks: the BFM (MaskedMimic-style transformer), task encoders, normalisers, configs, checkpoints
(safetensors, hashed) and the ProtoMotions importer; the embedded `small` BFM lives in weights/."""

__all__ = ["bfm", "checkpoints", "config", "normalization", "protomotions", "task_encoder"]
