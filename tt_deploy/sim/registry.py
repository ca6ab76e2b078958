"""Simulator backends by name; optional ones are imported only when asked for."""

from __future__ import annotations

import importlib

from tt_deploy.errors import UnknownNameError
from tt_deploy.sim.base import Simulator

# name -> (module, class); modules import lazily so `isaacgym` / `mujoco_warp` are never needed to list backends
_BACKENDS = {
    "mujoco": ("tt_deploy.sim.mujoco_backend", "MujocoSimulator"),
    "isaacgym": ("tt_deploy.sim.isaacgym_backend", "IsaacGymSimulator"),
    "mjwarp": ("tt_deploy.sim.mjwarp_backend", "MjWarpSimulator"),
}


def backend_names() -> tuple[str, ...]:
    return tuple(sorted(_BACKENDS))


_THREADED = {"mujoco"}  # backends that take a CPU thread count; the others schedule their own work


def make_simulator(name: str = "mujoco", *, nthread: int | None = None, **kw) -> Simulator:
    """Build the backend `name` with the constructor keywords of that backend (num_envs, mjcf, ...); nthread goes
    to the backends that take a thread count and is ignored by the others (MuJoCo Warp, Isaac Gym)."""
    if name not in _BACKENDS:
        raise UnknownNameError("simulator backend", name, _BACKENDS)
    if nthread is not None and name in _THREADED:
        kw["nthread"] = nthread
    module, cls = _BACKENDS[name]
    return getattr(importlib.import_module(module), cls)(**kw)
