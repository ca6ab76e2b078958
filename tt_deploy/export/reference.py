"""The PyTorch reference of a deploy bundle, rebuilt from the sources its manifests record and hash-checked.

The one public home of "what the runtime must match": verify (open loop), sim2sim (closed loop) and bench
(the torch-eager latency row) all rebuild the BFM and encoders here and act through `reference_actions` /
`ReferencePolicy`.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from tt_deploy.errors import BundleError, CheckpointError
from tt_deploy.export.bundle import build_encoder  # the one copy of the encoder seeding
from tt_deploy.export.onnx_graphs import BFMGraph, reference_actions  # noqa: F401 - re-exported
from tt_deploy.hashing import resolve_portable_path
from tt_deploy.models.bfm import BFM
from tt_deploy.models.checkpoints import default_bfm, load_bfm, seeded_bfm, state_hash
from tt_deploy.runtime import manifest as mf


def bfm_checkpoint(manifest: mf.BundleManifest) -> str | None:
    """The BFM checkpoint file the manifest's `bfm.source` names, on this machine (`tt_deploy/...` = this
    package's file); None for a BFM that came from no file."""
    src = manifest.bfm.source
    return resolve_portable_path(src[len("checkpoint ") :]) if src.startswith("checkpoint ") else None


def reference_bfm(manifest: mf.BundleManifest) -> BFM:
    """The BFM the manifest records, rebuilt and hash-checked; BundleError if that is impossible."""
    info, src = manifest.bfm, manifest.bfm.source
    path = bfm_checkpoint(manifest)
    if path is not None:
        if not Path(path).is_file():
            raise BundleError(
                f"cannot rebuild the reference: BFM checkpoint {path} (recorded in the manifest) is gone"
            )
        try:
            bfm, _ = load_bfm(path, expected_sha256=info.sha256)
        except CheckpointError as exc:
            raise BundleError(f"cannot rebuild the reference BFM: {exc}") from exc
        return bfm.freeze()
    m = re.fullmatch(r"fresh seeded init \(untrained\) seed (-?\d+)", src)
    if m is None and src != "embedded pretrained":
        raise BundleError(f"cannot rebuild the reference: unknown BFM source {src!r} in the manifest")
    if m is not None:
        bfm, _ = seeded_bfm(info.config_name, int(m.group(1)))
    else:
        bfm, _ = default_bfm()
    if state_hash(bfm) != info.sha256:
        raise BundleError(
            f"cannot rebuild the reference: the embedded BFM ({src}) no longer hashes to the manifest's "
            f"{info.sha256[:12]}... (package weights changed?); verify with the original package"
        )
    return bfm.freeze()


def reference_encoder(sk: mf.SkillManifest, bfm: BFM) -> torch.nn.Module:
    """The skill's encoder from its recorded source (run checkpoint or seeded init), hash-checked."""
    m = re.fullmatch(r"trained run (.+) steps \S+", sk.encoder_source)
    f = re.fullmatch(
        r"fresh seeded init \(untrained\) seed (-?\d+)(?: \(torch seed \d+\))?", sk.encoder_source
    )
    if m is None and f is None:
        raise BundleError(
            f"cannot rebuild the reference: unknown encoder source {sk.encoder_source!r} of {sk.name!r}"
        )
    run_dir, seed = (resolve_portable_path(m.group(1)), 0) if m else (None, int(f.group(1)))
    if run_dir is not None and not Path(run_dir).is_dir():
        raise BundleError(f"cannot rebuild the reference: run dir {run_dir} of skill {sk.name!r} is gone")
    enc, _, _, sha, _ = build_encoder(sk.name, run_dir, bfm, sk.bfm_sha256, seed, sk.task_obs_dim)
    if sha != sk.encoder_weights_sha256:
        raise BundleError(
            f"cannot rebuild the reference: encoder of {sk.name!r} from {sk.encoder_source!r} hashes to "
            f"{sha[:12]}..., skill.json records {sk.encoder_weights_sha256[:12]}..."
        )
    return enc.eval()


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the reference with `n` intra-op threads, restoring torch's setting afterwards.

    Why: on a 2-core machine shared with other load, torch's default 2 threads made the small
    BFM's batch-8 forward 40-100x slower (0.1-0.26 s vs 3-6 ms with 1 thread) - barrier contention.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class ReferencePolicy:
    """The PyTorch reference of one skill as a policy: (N, ...) inputs -> (N, 69) clamped actions."""

    def __init__(self, bundle: str | os.PathLike, skill: str):
        bfm = reference_bfm(mf.read_manifest(bundle))
        self.graph = BFMGraph(bfm, encoder=reference_encoder(mf.read_skill(bundle, skill), bfm)).eval()

    def __call__(self, inputs: dict[str, np.ndarray], task_obs: np.ndarray) -> np.ndarray:
        return reference_actions(self.graph, inputs, np.ascontiguousarray(task_obs, dtype=np.float32))
