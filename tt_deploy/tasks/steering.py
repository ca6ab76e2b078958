"""Steering (reference code name "direction_facing"): move along d at a speed while facing f.

obs (5) = direction obs (3) + (Hinv (f.x, f.y, 0)).xy (2);
reward = 0.7 x direction reward + 0.3 x max(0, f . (cos h, sin h)), h the root heading.
The facing direction is resampled together with the direction (same random/incremental mix, ref).
Success, per goal segment: outside the 80-step grace after each goal change, facing error < 45 deg and
|e_rel| <= 0.2 (ref direction_facing/common.py). With prior=True: the steering prior (obs/priors.py).
"""

from __future__ import annotations

import numpy as np

from tt_deploy.tasks.base import root_heading, root_velocity, unit_from_angle, wrap_angle
from tt_deploy.tasks.direction import SUCCESS_MAX_REL_ERR, DirectionTask, direction_terms, local_direction
from tt_deploy.tasks.random import rows

FACING_SUCCESS_COS = float(np.cos(np.deg2rad(45.0)))


def facing_dot(state, tar_facing: np.ndarray) -> np.ndarray:
    """(N,) f . (cos h, sin h): cosine of the facing error."""
    return np.sum(tar_facing * unit_from_angle(root_heading(state)), axis=-1)


class SteeringTask(DirectionTask):
    """Direction task plus a target facing direction `tar_facing` (N, 2) world unit vectors."""

    name = "steering"
    feature_dim = 5
    feature_names = (
        *DirectionTask.feature_names,
        "facing_x [1]: (Hinv (f.x, f.y, 0)).x - the goal facing f in the root's heading frame",
        "facing_y [1]: (Hinv (f.x, f.y, 0)).y",
    )
    grace_steps = 80

    def __init__(self, num_envs: int, *, current_pose: bool = False, goals=None, prior: bool = False):
        super().__init__(num_envs, current_pose=current_pose, goals=goals, prior=prior)
        self.facing_theta = np.zeros(self.num_envs)
        self.tar_facing = np.tile([1.0, 0.0], (self.num_envs, 1))

    def _sample_heading(self, env_ids, state, rng, fresh: bool) -> None:
        rng = rows(rng, env_ids)  # per-env streams (tasks/random.py)
        super()._sample_heading(env_ids, state, rng, fresh)
        g, n = self.goals, len(env_ids)
        uniform = np.ones(n, dtype=bool) if fresh else rng.random(n) < g.random_prob
        theta_rand = rng.uniform(-np.pi, np.pi, n)
        if g.fresh_cone is not None:
            theta_rand = wrap_angle(root_heading(state.select(env_ids)) + theta_rand * (g.fresh_cone / np.pi))
        theta = np.where(uniform, theta_rand,
                         wrap_angle(self.facing_theta[env_ids] + rng.uniform(-g.max_turn, g.max_turn, n)))
        self.facing_theta[env_ids] = theta
        self.tar_facing[env_ids] = unit_from_angle(theta)

    def prior_goal(self, state, sim) -> dict[str, np.ndarray]:
        return {"direction": self.tar_dir, "speed": self.tar_speed, "facing": self.tar_facing}

    def features(self, state, sim) -> np.ndarray:
        return np.concatenate([super().features(state, sim), local_direction(state, self.tar_facing)], axis=-1)

    def reward(self, prev_state, state, sim) -> np.ndarray:
        dir_r = direction_terms(self.tar_dir, self.tar_speed, root_velocity(prev_state, state))["reward"]
        return 0.7 * dir_r + 0.3 * np.maximum(0.0, facing_dot(state, self.tar_facing))

    def _ok_now(self, prev_state, state, sim) -> np.ndarray:
        e_rel = direction_terms(self.tar_dir, self.tar_speed, root_velocity(prev_state, state))["e_rel"]
        return (facing_dot(state, self.tar_facing) > FACING_SUCCESS_COS) & (np.abs(e_rel) <= SUCCESS_MAX_REL_ERR)

    def _stride_ok(self, state) -> np.ndarray:
        return (facing_dot(state, self.tar_facing) > FACING_SUCCESS_COS) & super()._stride_ok(state)
