"""Snapshots of a running TaskEnv (simulator, pose history, task, random generators) for
bit-exact resume: a run interrupted at an iteration boundary continues exactly as if it had not
stopped (tests/rl/test_resume.py).

Arrays go to an `.npz` (no pickle), generator states and scalars to JSON beside it. Tasks are
snapshotted generically - every numpy array, generator and plain scalar attribute, and the same for
nested tt-deploy helper objects (e.g. the strike task's PhaseTracker) - so new tasks need no code here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tt_deploy.atomic import atomic_path

_SCALARS = (bool, int, float, str, np.integer, np.floating, np.bool_)


def _helper_object(v) -> bool:
    """A nested tt-deploy object with its own mutable state (not a frozen config dataclass)."""
    return (type(v).__module__.startswith("tt_deploy.") and hasattr(v, "__dict__")
            and getattr(type(v), "__dataclass_params__", None) is None
            and getattr(v, "snapshot_state", True))  # fmt: skip


def snapshot_object(obj, prefix: str, arrays: dict, meta: dict, depth: int = 0) -> None:
    """Collect obj's mutable state: arrays into `arrays`, generators and scalars into `meta`."""
    for name, v in vars(obj).items():
        key = f"{prefix}{name}"
        if isinstance(v, np.ndarray):
            if v.flags.writeable:
                arrays[key] = v.copy()
        elif isinstance(v, np.random.Generator):
            meta[key] = {"generator": v.bit_generator.state}
        elif isinstance(v, _SCALARS) and not isinstance(v, str):
            meta[key] = {"scalar": v.item() if isinstance(v, np.generic) else v}
        elif depth < 2 and _helper_object(v):
            snapshot_object(v, f"{key}.", arrays, meta, depth + 1)


def restore_object(obj, prefix: str, arrays: dict, meta: dict, depth: int = 0) -> None:
    """Inverse of snapshot_object: arrays written in place, generators and scalars reset."""
    for name, v in list(vars(obj).items()):
        key = f"{prefix}{name}"
        if isinstance(v, np.ndarray) and key in arrays:
            if v.shape == arrays[key].shape:
                v[...] = arrays[key]
            else:
                setattr(obj, name, arrays[key].astype(v.dtype))
        elif isinstance(v, np.random.Generator) and key in meta:
            v.bit_generator.state = meta[key]["generator"]
        elif key in meta and "scalar" in meta[key]:
            setattr(obj, name, type(v)(meta[key]["scalar"]))
        elif depth < 2 and _helper_object(v):
            restore_object(v, f"{key}.", arrays, meta, depth + 1)


def env_state(env) -> tuple[dict, dict]:
    """(arrays, meta) of a TaskEnv: simulator rows, history, counters, previous state, task, RNGs."""
    arrays, meta = {}, {}
    sim_arrays, sim_meta = env.sim.state_dict()
    arrays.update({f"sim/{k}": v for k, v in sim_arrays.items()})
    meta.update({f"sim/{k}": v for k, v in sim_meta.items()})
    snapshot_object(env.history, "history/", arrays, meta)
    snapshot_object(env.task, "task/", arrays, meta)
    for k in ("steps", "returns"):
        arrays[f"env/{k}"] = getattr(env, k).copy()
    meta["env/rng"] = {"generator": env.rng.bit_generator.state}
    meta["env/goal_rng"] = env.goal_rng.state()
    for k in ("pos", "quat", "lin_vel", "ang_vel"):
        arrays[f"env/prev/{k}"] = getattr(env._prev, k).copy()
    return arrays, meta


def load_env_state(env, arrays: dict, meta: dict) -> None:
    from tt_deploy.obs.state import BodyState

    env.sim.load_state_dict({k[4:]: v for k, v in arrays.items() if k.startswith("sim/")},
                            {k[4:]: v for k, v in meta.items() if k.startswith("sim/")})  # fmt: skip
    restore_object(env.history, "history/", arrays, meta)
    restore_object(env.task, "task/", arrays, meta)
    env.steps[...] = arrays["env/steps"]
    env.returns[...] = arrays["env/returns"]
    env.rng.bit_generator.state = meta["env/rng"]["generator"]
    env.goal_rng.set_state(meta["env/goal_rng"])
    env._prev = BodyState(*(arrays[f"env/prev/{k}"].copy() for k in ("pos", "quat", "lin_vel", "ang_vel")))


def save_arrays(path: Path, arrays: dict, meta: dict) -> None:
    """Atomically write `path`.npz (arrays, no pickle) and `path`.json (meta)."""
    for suffix, write in ((".npz", lambda f: np.savez(f, **arrays)),
                          (".json", lambda f: f.write(json.dumps(meta).encode()))):  # fmt: skip
        with atomic_path(path.with_suffix(suffix), suffix=suffix) as tmp, open(tmp, "wb") as f:
            write(f)


def load_arrays(path: Path) -> tuple[dict, dict] | None:
    if not path.with_suffix(".npz").is_file() or not path.with_suffix(".json").is_file():
        return None
    with np.load(path.with_suffix(".npz"), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads(path.with_suffix(".json").read_text())
