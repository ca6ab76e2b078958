"""Safetensors checkpoints of BFMs and task encoders, with config and hashes in the header.

A checkpoint is one `.safetensors` file whose metadata holds `kind` ("bfm" | "task_encoder"),
the JSON config, and free-form JSON `info` (training steps, provenance). Loading never unpickles
anything; the file's sha256 identifies the exact weights in manifests and training metadata.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tt_deploy.atomic import atomic_path
from tt_deploy.errors import CheckpointError
from tt_deploy.hashing import sha256_file  # noqa: F401 - re-exported: checkpoints.sha256_file
from tt_deploy.models.bfm import BFM
from tt_deploy.models.config import BFMConfig, EncoderConfig, bfm_config
from tt_deploy.models.task_encoder import TaskEncoder

DEFAULT_BFM_PATH = Path(__file__).parent / "weights" / "bfm_small.safetensors"


def state_hash(module: torch.nn.Module) -> str:
    """sha256 over every parameter and buffer (names, dtypes, bytes): the freezing proof."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def atomic_save_safetensors(tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str]):
    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)


def _save(module: torch.nn.Module, kind: str, config: dict, path, info: dict | None) -> Path:
    meta = {"kind": kind, "config": json.dumps(config), "info": json.dumps(info or {}), "format": "tt-deploy/1"}
    atomic_save_safetensors(dict(module.state_dict()), path, meta)
    return Path(path)


def _read(path, kind: str) -> tuple[dict[str, torch.Tensor], dict, dict]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint ({exc})") from exc
    if meta.get("kind") != kind:
        raise CheckpointError(f"{path} holds a {meta.get('kind', 'unknown')!r} checkpoint, expected {kind!r}")
    return tensors, json.loads(meta.get("config", "{}")), json.loads(meta.get("info", "{}"))


def _load_state(module: torch.nn.Module, tensors: dict[str, torch.Tensor], path) -> None:
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path}: missing keys {missing[:5]}, unexpected keys {unexpected[:5]}")
    for k, t in tensors.items():
        if t.shape != expected[k].shape:
            raise CheckpointError(f"{path}: {k} has shape {tuple(t.shape)}, config expects {tuple(expected[k].shape)}")
    module.load_state_dict(tensors)


def save_bfm(bfm: BFM, path, info: dict | None = None) -> Path:
    return _save(bfm, "bfm", bfm.config.to_dict(), path, info)


def recipe_sidecar(path) -> Path:
    """`<name>.recipe.json` beside a BFM checkpoint: how it was made, as structured data (the model card's
    source). Why a sidecar: the checkpoint must stay byte-identical (its sha256 pins every trained skill),
    and its own metadata's free-text recipe is a lab log."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(".safetensors") + ".recipe.json")


def load_bfm(path, expected_sha256: str | None = None) -> tuple[BFM, dict]:
    """Load a BFM checkpoint (eval mode); returns (bfm, info). Checks sha256 when given. Where a recipe sidecar
    sits beside it, info["recipe"] is the sidecar's name instead of the metadata's free text."""
    if expected_sha256 is not None and Path(path).is_file():
        actual = sha256_file(path)
        if actual != expected_sha256:
            raise CheckpointError(f"{path}: sha256 {actual[:12]}... does not match expected {expected_sha256[:12]}...")
    tensors, config, info = _read(path, "bfm")
    bfm = BFM(BFMConfig.from_dict(config))
    _load_state(bfm, tensors, path)
    sidecar = recipe_sidecar(path)
    if sidecar.is_file():
        try:
            info = {**info, "recipe": json.loads(sidecar.read_text())["name"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{sidecar}: not a recipe file with a 'name' ({exc})") from None
    return bfm.eval(), info


@dataclass(frozen=True)
class EncoderInfo:
    """What an encoder checkpoint says about how it was trained: written by training (and the ProtoMotions
    importer), read by export, built by the tests - one record, so the writers and the reader cannot drift."""

    skill: str
    bfm_sha256: str  # the frozen BFM it was trained through (file sha256 or state hash)
    env_steps: int | None = None
    method: str = "task-token"
    task_obs_dim: int | None = None
    current_pose: bool = False
    goals: dict | None = None  # the goal preset and its resolved ranges (tasks/goals.py)
    task_prior: dict | None = None  # the prior prompt it was trained beside (obs/priors.py describe())
    visible_groups: tuple[str, ...] = ()  # BFM token groups it saw in training
    explore: str | None = None  # PPO's exploration space (token / action)
    extra: dict = field(default_factory=dict)  # provenance a producer adds (e.g. the importer's v1 keys)

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "extra" and v is not None}
        d["visible_groups"] = list(self.visible_groups)
        return {**self.extra, **d}

    @classmethod
    def from_dict(cls, d: dict) -> EncoderInfo:
        """From a checkpoint's header; `steps` (older writers) is read as env_steps, unknown keys go to extra."""
        d = dict(d)
        if "env_steps" not in d and "steps" in d:
            d["env_steps"] = d.pop("steps")
        known = {f.name for f in fields(cls)} - {"extra"}
        missing = [k for k in ("skill", "bfm_sha256") if k not in d]
        if missing:
            raise CheckpointError(f"encoder checkpoint info lacks {missing}: not written by tt-deploy training")
        if d.get("prior") is not None:  # static prior tokens: no producer ever wrote them, export no longer reads them
            raise CheckpointError("encoder checkpoint info carries static prior tokens ('prior'), which tt-deploy no longer "
                                  "exports; train with --prior (a prior prompt fed every step) instead")
        d.pop("prior", None)
        kw = {k: d.pop(k) for k in list(d) if k in known}
        kw["visible_groups"] = tuple(kw.get("visible_groups") or ())
        return cls(**kw, extra=d)


def save_encoder(encoder: TaskEncoder, path, info: EncoderInfo | None = None) -> Path:
    return _save(encoder, "task_encoder", encoder.config.to_dict(), path, None if info is None else info.to_dict())


def load_encoder(path) -> tuple[TaskEncoder, EncoderInfo | None]:
    """(encoder in eval mode, its EncoderInfo; None for a checkpoint saved without one)."""
    tensors, config, info = _read(path, "task_encoder")
    enc = TaskEncoder(EncoderConfig.from_dict(config))
    _load_state(enc, tensors, path)
    return enc.eval(), (EncoderInfo.from_dict(info) if info else None)


def default_bfm(seed: int = 0) -> tuple[BFM, dict]:
    """The embedded default BFM: the shipped pretrained `small` checkpoint if the package has one,
    else a seeded fresh `small` BFM (info["pretrained"] is False then, and callers say so)."""
    if DEFAULT_BFM_PATH.is_file():
        bfm, info = load_bfm(DEFAULT_BFM_PATH)
        return bfm, {**info, "pretrained": True, "path": str(DEFAULT_BFM_PATH)}
    return seeded_bfm("small", seed)


def seeded_bfm(config_name: str, seed: int = 0) -> tuple[BFM, dict]:
    """A fresh, untrained BFM of a named size (e.g. `paper`, for latency and memory at the reference's
    size); the same seed always gives the same weights (export records the seed, verify rebuilds it)."""
    config = bfm_config(config_name)
    torch.manual_seed(seed)
    return BFM(config).eval(), {"pretrained": False, "seed": seed}


def bfm_sha256(bfm: BFM, info: dict) -> tuple[str, str]:
    """(sha256, what it hashes) identifying a BFM: its checkpoint file when it came from one
    (info["path"]), else its state hash. Training records it and export checks it: one rule."""
    path = info.get("path")
    if path:
        return sha256_file(path), "file"
    return state_hash(bfm), "state_hash"


def resolve_bfm(path: str | os.PathLike | None) -> tuple[BFM, dict]:
    """`--bfm PATH` if given, else the embedded default."""
    if path is None:
        return default_bfm()
    bfm, info = load_bfm(path)
    return bfm, {**info, "path": str(path)}


def pretraining_cost(info: dict) -> tuple[int | None, float | None]:
    """(total env steps, total wall-clock s) behind a BFM checkpoint, warm starts included
    (a run started with --init-bfm records its starting checkpoint's cost as init_*)."""
    steps = (info.get("env_steps") or 0) + (info.get("init_env_steps") or 0)
    wall = (info.get("wall_seconds") or 0) + (info.get("init_wall_seconds") or 0)
    return (int(steps) or None), (float(wall) or None)

