"""Reach: bring the right hand (R_Hand) to a 3D target.

obs (3) = Hinv (target - root) (height difference included); reward = exp(-4 |target - hand|^2).
Targets (ref): root xy + U(-0.75, 0.75) per axis, z = ground + U(0.05, 1.6); a new target every
`change_steps` control steps (ref resamples periodically). Success: outside the 60-step grace after
each new target, the hand is always within 0.2 m of it.
With prior=True the task also prompts the BFM (ref "chen's prior"): the far target-pose slot holds
"R_Hand at the target", due 10 steps before measuring starts (at least 3 steps ahead).
"""

from __future__ import annotations

import numpy as np

from tt_deploy import spec
from tt_deploy.errors import InputError
from tt_deploy.sim.prompts import sparse_targets
from tt_deploy.tasks.base import PELVIS_ID, GraceTask, to_heading_frame
from tt_deploy.tasks.random import rows

REACH_BODY_ID = spec.BODY_NAMES.index("R_Hand")
SUCCESS_RADIUS = 0.2  # m
XY_RANGE = 0.75  # m, per axis around the root
HEIGHT_RANGE = (0.05, 1.6)  # m above the ground
GRACE_STEPS = 60  # control steps after each new target before the hand must stay within SUCCESS_RADIUS
# the prior prompts "hand at the target" this many steps before measuring starts, at least PRIOR_MIN_LEAD ahead
PRIOR_EARLY_STEPS, PRIOR_MIN_LEAD = 10, 3
# the prior's lead times (s), from a fresh target's to the held minimum: BFM pretraining prompts these too
PRIOR_LEAD_S = (PRIOR_MIN_LEAD * spec.CONTROL_DT, (GRACE_STEPS - PRIOR_EARLY_STEPS) * spec.CONTROL_DT)


def sample_reach_targets(rng, pelvis_xy: np.ndarray, ground_height, xy_range: float = XY_RANGE,
                         height_range: tuple[float, float] = HEIGHT_RANGE) -> np.ndarray:
    """(n, 3) world targets as the reference reach task draws them (root xy + U(-r, r) per axis, z =
    ground + U(lo, hi)); BFM pretraining prompts some of its reach goals from here too."""
    n = len(pelvis_xy)
    xy = pelvis_xy + rng.uniform(-xy_range, xy_range, (n, 2))
    z = ground_height(xy) + rng.uniform(*height_range, n)
    return np.concatenate([xy, z[:, None]], axis=-1)


class ReachTask(GraceTask):
    """Right-hand reach to `target` (N, 3) world positions (m)."""

    name = "reach"
    feature_dim = 3
    grace_steps = GRACE_STEPS

    def __init__(self, num_envs: int, *, current_pose: bool = False, xy_range: float = XY_RANGE,
                 height_range: tuple[float, float] = HEIGHT_RANGE, change_steps: tuple[int, int] = (150, 300),
                 prior: bool = False):
        super().__init__(num_envs, current_pose=current_pose)
        self.prior = bool(prior)
        if xy_range < 0 or not 0 <= height_range[0] <= height_range[1]:
            raise InputError(f"bad reach ranges: xy_range={xy_range}, height_range={height_range}")
        if not 1 <= change_steps[0] < change_steps[1]:
            raise InputError(f"change_steps must be [min, max) with 1 <= min < max, got {change_steps}")
        self.xy_range, self.height_range, self.change_steps = float(xy_range), height_range, change_steps
        self.target = np.zeros((self.num_envs, 3))
        self.change_at = np.zeros(self.num_envs, dtype=np.int64)

    def _sample_targets(self, env_ids, state, sim, rng) -> None:
        rng = rows(rng, env_ids)  # per-env streams (tasks/random.py)
        n = len(env_ids)
        self.target[env_ids] = sample_reach_targets(rng, state.pos[env_ids, PELVIS_ID, :2], sim.ground_height,
                                                    self.xy_range, self.height_range)  # fmt: skip
        self.change_at[env_ids] = self.progress[env_ids] + rng.integers(*self.change_steps, size=n)
        self._start_grace(env_ids)

    def _reset_goals(self, env_ids, state, sim, rng) -> None:
        self._sample_targets(env_ids, state, sim, rng)

    def _resample_due(self, state, sim, rng) -> None:
        due = np.flatnonzero(self.progress >= self.change_at)
        if due.size:
            self._sample_targets(due, state, sim, rng)

    def hand_distance(self, state) -> np.ndarray:
        """(N,) m from the right hand to its target."""
        return np.linalg.norm(self.target - state.pos[:, REACH_BODY_ID], axis=-1)

    def features(self, state, sim) -> np.ndarray:
        return to_heading_frame(state, self.target - state.pos[:, PELVIS_ID])

    def reward(self, prev_state, state, sim) -> np.ndarray:
        return np.exp(-4.0 * self.hand_distance(state) ** 2)

    def prior_targets(self, state, sim):
        """Far-slot prompt "right hand at the target" (TargetPoses), or None without prior."""
        if not self.prior:
            return None
        steps_left = np.maximum(self.measure_from - self.progress - PRIOR_EARLY_STEPS, PRIOR_MIN_LEAD)
        return sparse_targets(self.num_envs, steps_left * spec.CONTROL_DT, body_pos={"R_Hand": self.target})

    def _ok_now(self, prev_state, state, sim) -> np.ndarray:
        return self.hand_distance(state) <= SUCCESS_RADIUS
