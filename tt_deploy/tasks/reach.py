"""Reach: bring the right hand (R_Hand) to a 3D target.

obs (3) = Hinv (target - root) (height difference included); reward = exp(-4 |target - hand|^2).
Targets (ref reach.yaml): root xy + U(-0.75, 0.75) per axis, z = ground + U(0.05, 1.6); a new target
every U[90, 120) control steps. Success, per target (one segment each, ref reach/common.py): once
more than 60 steps have passed since the target was set, the hand is always within 0.2 m of it.
With prior=True the task prompts the BFM with the reach prior (obs/priors.py, ref "chen's prior"):
the far target-pose slot holds "R_Hand at the target", due 10 steps before measuring starts (at
least 3 steps ahead).
"""

from __future__ import annotations

import numpy as np

from tt_deploy import spec
from tt_deploy.errors import InputError
from tt_deploy.obs.rotations import heading_angle, quat_about_z, quat_rotate
from tt_deploy.tasks.base import PELVIS_ID, GraceTask, to_heading_frame
from tt_deploy.tasks.random import rows

REACH_BODY_ID = spec.BODY_NAMES.index("R_Hand")
SUCCESS_RADIUS = 0.2  # m
XY_RANGE = 0.75  # m, per axis around the root
HEIGHT_RANGE = (0.05, 1.6)  # m above the ground
GRACE_STEPS = 60  # ref reach_steps: the hand must stay within SUCCESS_RADIUS once MORE than this many steps passed
CHANGE_STEPS = (90, 120)  # ref reach.yaml change_steps_min / max: [min, max) control steps per target
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


# The embedded BFM's model-card hand row draws its right-hand targets from this envelope (the reach
# prompts of its pretraining): in the heading frame, `HAND_ROW_RADIUS` m from a point 0.18 m to the
# hand's side of the pelvis, at an angle `HAND_ROW_ANGLE` rad from forward toward that side, and
# `HAND_ROW_HEIGHT` m above the ground. The card measures 68 % of them reached (docs/bfm_card.md).
HAND_ROW_RADIUS = (0.2, 0.6)
HAND_ROW_ANGLE = (-0.6, 1.2)
HAND_ROW_HEIGHT = (0.6, 1.6)
HAND_ROW_SIDE_OFFSET = 0.18


def sample_hand_row_targets(rng, state, ground_height, right: bool | np.ndarray = True) -> np.ndarray:
    """(n, 3) world hand targets from the card's hand-row envelope (above) for the n envs of `state`."""
    n = state.pos.shape[0]
    side = np.where(np.asarray(right, dtype=bool), -1.0, 1.0) * np.ones(n)
    ang = rng.uniform(*HAND_ROW_ANGLE, n) * side
    rad = rng.uniform(*HAND_ROW_RADIUS, n)
    local = np.stack([rad * np.cos(ang), rad * np.sin(ang) + HAND_ROW_SIDE_OFFSET * side, np.zeros(n)], -1)
    world = quat_rotate(quat_about_z(heading_angle(state.quat[:, PELVIS_ID])), local) + state.pos[:, PELVIS_ID]
    world[:, 2] = ground_height(world[:, :2]) + rng.uniform(*HAND_ROW_HEIGHT, n)
    return world


class ReachTask(GraceTask):
    """Right-hand reach to `target` (N, 3) world positions (m)."""

    name = "reach"
    feature_dim = 3
    feature_names = (
        "target_x [m]: (Hinv (target - pelvis)).x - the right-hand target in the root's heading frame",
        "target_y [m]: (Hinv (target - pelvis)).y",
        "target_z [m]: (Hinv (target - pelvis)).z - the height difference",
    )
    grace_steps = GRACE_STEPS + 1  # ref measures where reach_steps < progress (strictly after GRACE_STEPS)

    def __init__(self, num_envs: int, *, current_pose: bool = False, xy_range: float = XY_RANGE,
                 height_range: tuple[float, float] = HEIGHT_RANGE, change_steps: tuple[int, int] = CHANGE_STEPS,
                 prior: bool = False, targets: str = "box"):
        super().__init__(num_envs, current_pose=current_pose)
        self.prior = bool(prior)
        if targets not in ("box", "hand_row"):
            raise InputError(f"reach targets must be 'box' (ref) or 'hand_row' (the BFM card's envelope), got {targets!r}")
        self.targets = targets
        if self.prior:
            from tt_deploy.obs.priors import make_prior

            self.prior_prompt = make_prior("reach", self.num_envs, measure_after_steps=GRACE_STEPS,
                                           early_steps=PRIOR_EARLY_STEPS, min_lead_steps=PRIOR_MIN_LEAD)
        if xy_range < 0 or not 0 <= height_range[0] <= height_range[1]:
            raise InputError(f"bad reach ranges: xy_range={xy_range}, height_range={height_range}")
        if not 1 <= change_steps[0] < change_steps[1]:
            raise InputError(f"change_steps must be [min, max) with 1 <= min < max, got {change_steps}")
        self.xy_range, self.height_range, self.change_steps = float(xy_range), height_range, change_steps
        self.target = np.zeros((self.num_envs, 3))
        self.change_at = np.zeros(self.num_envs, dtype=np.int64)
        self.set_at = np.zeros(self.num_envs, dtype=np.int64)  # progress when the current target was set

    def _sample_targets(self, env_ids, state, sim, rng) -> None:
        rng = rows(rng, env_ids)  # per-env streams (tasks/random.py)
        n = len(env_ids)
        if self.targets == "box":
            self.target[env_ids] = sample_reach_targets(rng, state.pos[env_ids, PELVIS_ID, :2], sim.ground_height,
                                                        self.xy_range, self.height_range)  # fmt: skip
        else:
            self.target[env_ids] = sample_hand_row_targets(rng, state.select(env_ids), sim.ground_height)
        self.change_at[env_ids] = self.progress[env_ids] + rng.integers(*self.change_steps, size=n)
        self.set_at[env_ids] = self.progress[env_ids]
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

    def prior_goal(self, state, sim) -> dict[str, np.ndarray]:
        return {"target": self.target, "goal_age_steps": self.progress - self.set_at}

    def _ok_now(self, prev_state, state, sim) -> np.ndarray:
        return self.hand_distance(state) <= SUCCESS_RADIUS
