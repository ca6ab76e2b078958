"""The bundle's simulator files, verified: the humanoid MJCF the skills were trained on (manifest `simulator`).

Why a function and not a path in the manifest alone: a controller that builds its simulator or its model-based
state estimator from the bundle must get the file the skills were trained on, so it is handed out only after its
bytes hash to `simulator.mjcf_sha256` (the bytes hashed are the bytes returned). Standard library and the
runtime's own verified read only.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from tt_deploy.errors import BundleError
from tt_deploy.runtime import manifest as mf
from tt_deploy.runtime.session import read_verified


def _mjcf_file(bundle_dir: str | os.PathLike, manifest: mf.BundleManifest | None) -> tuple[Path, str]:
    """(the MJCF's path in the version `manifest` names, its sha256); BundleError for a bundle without one."""
    manifest = mf.read_manifest(bundle_dir) if manifest is None else manifest
    sim = manifest.simulator
    if sim is None:
        raise BundleError(f"{Path(bundle_dir) / mf.MANIFEST_FILE} names no simulator MJCF (exported before bundles "
                          "carried it); re-export the bundle with this tt-deploy")  # fmt: skip
    rel = PurePosixPath(sim.mjcf)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise BundleError(f"manifest simulator.mjcf {sim.mjcf!r} is not a path inside the bundle; re-export the bundle")
    return mf.content_dir(bundle_dir, manifest) / rel, sim.mjcf_sha256


def read_mjcf(bundle_dir: str | os.PathLike, manifest: mf.BundleManifest | None = None) -> bytes:
    """The humanoid MJCF's bytes, refused (BundleError) unless they hash to the manifest's `simulator.mjcf_sha256`.
    Load them with `mujoco.MjSpec.from_string(data.decode())`: the file references no other file."""
    path, sha = _mjcf_file(bundle_dir, manifest)
    return read_verified(path, sha)


def mjcf_path(bundle_dir: str | os.PathLike, manifest: mf.BundleManifest | None = None) -> Path:
    """The humanoid MJCF's path, after its bytes were checked against the manifest (BundleError otherwise).
    A file can change after the check: where that matters, load `read_mjcf`'s bytes instead."""
    path, sha = _mjcf_file(bundle_dir, manifest)
    read_verified(path, sha)
    return path


__all__ = ["read_mjcf", "mjcf_path"]
