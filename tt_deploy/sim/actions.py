"""The action path every backend shares: validate, clamp, delay per environment, map to PD targets.

One implementation so that the MuJoCo C, MuJoCo Warp and Isaac Gym backends cannot disagree on
how an action becomes a joint target, or on what an `action_delay` perturbation means.
"""

from __future__ import annotations

import numpy as np

from tt_deploy import spec
from tt_deploy.errors import InputError


class ActionPath:
    """(N, 69) actions in [-1, 1] -> (N, 69) PD position targets (rad), with a per-env delay ring.

    delay (N,) control steps: env i applies the action it was given delay[i] steps ago (zeros
    before that, i.e. the rest pose target).
    """

    def __init__(self, num_envs: int, pd_offset: np.ndarray, pd_scale: np.ndarray, delay=None):
        self.num_envs = int(num_envs)
        self.pd_offset, self.pd_scale = pd_offset, pd_scale
        self.set_delay(np.zeros(self.num_envs, np.int64) if delay is None else delay)

    def set_delay(self, delay) -> None:
        self.delay = np.asarray(delay, dtype=np.int64).reshape(self.num_envs)
        self.ring = np.zeros((int(self.delay.max()) + 1, self.num_envs, spec.NUM_DOF))
        self.count = 0

    def targets(self, actions: np.ndarray) -> np.ndarray:
        """Validate and clamp `actions`, push them through the delay ring, return PD targets."""
        a = np.asarray(actions, dtype=np.float64)
        if a.shape != (self.num_envs, spec.NUM_DOF):
            raise InputError(f"actions must have shape ({self.num_envs}, {spec.NUM_DOF}); got {a.shape}")
        if not np.isfinite(a).all():
            raise InputError(f"actions contain NaN/inf in env(s) {np.flatnonzero(~np.isfinite(a).all(1))[:8].tolist()}")
        a = np.clip(a, -spec.ACTION_CLAMP, spec.ACTION_CLAMP)
        length = self.ring.shape[0]
        if length > 1:
            self.ring[self.count % length] = a
            a = self.ring[(self.count - self.delay) % length, np.arange(self.num_envs)]
        self.count += 1
        return self.pd_offset + self.pd_scale * a

    def clear(self, env_ids) -> None:
        """Forget the queued actions of env_ids (a reset)."""
        self.ring[:, env_ids] = 0.0
