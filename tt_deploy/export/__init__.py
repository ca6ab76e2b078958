"""Export to a deploy bundle: BFM and encoder ONNX graphs, fused per-skill graphs, manifests, TensorRT builds,
and the open-loop verification of the runtime against the PyTorch reference (`ttdeploy export`, `verify`)."""

__all__ = ["bundle", "onnx_graphs", "reference", "tensorrt_build", "trt_lint", "verify"]
