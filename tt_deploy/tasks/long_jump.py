"""Long jump: run along +x and jump over a line 20 m ahead toward a goal 30 m ahead.

obs (4) = [Hinv (goal - root) (3), jump_line_x - root.x].
reward = clamp(prev goal distance - current, 0, 1)         (progress, 3D distances)
       + 0.01 root x-velocity                               (finite difference over one step)
       + 0.1 root z        where any foot/toe body is past the line
       + 30 (mean body x - line x)  at the landing step: a foot/toe past the line AND the norm of all
                                    contact forces > 50 N.
Interpretation of "once", as in the reference: the landing step is the FIRST step past the line with
ground contact; the episode terminates on it, so the 30x term is paid exactly once (it may be negative,
the body's mean x can still be behind the line - kept, ref).
The episode ends (ref long_jump/isaacgym.py compute_humanoid_reset) on any of: landing; more than 50 N
of total contact force on non-foot bodies; a non-foot body below its termination height; leaving the
corridor (|root y - start y| > 0.5). Success: jump length (the landing term's mean body x - line x)
> 1.5 m, in the corridor. With prior=True: the long-jump prior (obs/priors.py), run toward the goal.
"""

from __future__ import annotations

import numpy as np

from tt_deploy import spec
from tt_deploy.tasks.base import (
    NON_FOOT,
    PELVIS_ID,
    Task,
    low_non_foot,
    root_velocity,
    termination_heights,
    to_heading_frame,
)

FOOT_IDS = np.array([spec.BODY_NAMES.index(b) for b in spec.FOOT_BODIES])
LANDING_FORCE = 50.0  # N, norm over all bodies' contact forces (ref)
NON_FOOT_FORCE = 50.0  # N, total contact force on non-foot bodies that ends the episode (ref)
SUCCESS_LENGTH = 1.5  # m


def past_line(state, line_x: np.ndarray) -> np.ndarray:
    """(N,) bool: any ankle/toe body beyond the jump line along x."""
    return np.any(state.pos[:, FOOT_IDS, 0] > line_x[:, None], axis=-1)


def landing(state, contact_forces: np.ndarray, line_x: np.ndarray) -> np.ndarray:
    """(N,) bool: past the line with total contact force norm > 50 N; contact_forces (N, 24) per-body norms."""
    total = np.sqrt(np.sum(contact_forces**2, axis=-1))  # == norm of the (24, 3) force buffer
    return past_line(state, line_x) & (total > LANDING_FORCE)


def jump_length(state, line_x: np.ndarray) -> np.ndarray:
    """(N,) m: mean x of all 24 bodies minus the line x."""
    return state.pos[:, :, 0].mean(axis=-1) - line_x


def long_jump_reward(prev_state, state, contact_forces, goal, line_x) -> np.ndarray:
    """Reference long-jump reward, (N,); goal (N, 3) m, line_x (N,) m."""
    root, prev_root = state.pos[:, PELVIS_ID], prev_state.pos[:, PELVIS_ID]
    progress = np.clip(np.linalg.norm(prev_root - goal, axis=-1) - np.linalg.norm(root - goal, axis=-1), 0.0, 1.0)
    vel_r = root_velocity(prev_state, state)[:, 0]
    height_r = np.where(past_line(state, line_x), root[:, 2], 0.0)
    landed = landing(state, contact_forces, line_x)
    length_r = np.where(landed, jump_length(state, line_x), 0.0)
    return progress + 0.01 * vel_r + 0.1 * height_r + 30.0 * length_r


class LongJumpTask(Task):
    """Start where the episode starts; `goal` (N, 3) = start + 30 m in x, `line_x` (N,) = start x + 20 m."""

    name = "long_jump"
    feature_dim = 4
    feature_names = (
        "goal_x [m]: (Hinv (goal - pelvis)).x - the goal beyond the line, in the root's heading frame",
        "goal_y [m]: (Hinv (goal - pelvis)).y",
        "goal_z [m]: (Hinv (goal - pelvis)).z",
        "line_dx [m]: line_x - pelvis.x - world x distance to the take-off line",
    )
    fall_voids_success = False  # the landing itself may register as a fall contact

    def __init__(self, num_envs: int, *, current_pose: bool = False, goal_dist: float = 30.0,
                 line_dist: float = 20.0, goal_height: float = 1.0, corridor_half_width: float = 0.5,
                 prior: bool = False):
        super().__init__(num_envs, current_pose=current_pose)
        self.prior = bool(prior)
        if self.prior:
            from tt_deploy.obs.priors import make_prior

            self.prior_prompt = make_prior("long_jump", self.num_envs)
        self._heights = termination_heights()
        self.goal_dist, self.line_dist = float(goal_dist), float(line_dist)
        self.goal_height = float(goal_height)  # ref: goal z = the start position's z, which is 1 m
        self.corridor_half_width = float(corridor_half_width)
        self.goal = np.zeros((self.num_envs, 3))
        self.line_x = np.zeros(self.num_envs)
        self.start_y = np.zeros(self.num_envs)
        self.length = np.zeros(self.num_envs)

    def _reset_goals(self, env_ids, state, sim, rng) -> None:
        start = state.pos[env_ids, PELVIS_ID]
        self.goal[env_ids] = np.stack(
            [start[:, 0] + self.goal_dist, start[:, 1], sim.ground_height(start[:, :2]) + self.goal_height], -1)
        self.line_x[env_ids] = start[:, 0] + self.line_dist
        self.start_y[env_ids] = start[:, 1]
        self.length[env_ids] = 0.0

    def features(self, state, sim) -> np.ndarray:
        root = state.pos[:, PELVIS_ID]
        return np.concatenate([to_heading_frame(state, self.goal - root), (self.line_x - root[:, 0])[:, None]], -1)

    def reward(self, prev_state, state, sim) -> np.ndarray:
        return long_jump_reward(prev_state, state, sim.contact_forces(), self.goal, self.line_x)

    def out_of_corridor(self, state) -> np.ndarray:
        return np.abs(state.pos[:, PELVIS_ID, 1] - self.start_y) > self.corridor_half_width

    def _track_success(self, prev_state, state, sim) -> None:
        landed = landing(state, sim.contact_forces(), self.line_x)
        self.length = np.where(landed, jump_length(state, self.line_x), self.length)
        self._failed |= self.out_of_corridor(state)
        self._measured += 1

    def success(self) -> np.ndarray:
        return (self.length > SUCCESS_LENGTH) & ~self._failed

    def prior_goal(self, state, sim) -> dict[str, np.ndarray]:
        return {"goal": self.goal}

    def non_foot_contact(self, sim) -> np.ndarray:
        """(N,) bool: more than 50 N of contact force on non-foot bodies. We sum the bodies' force norms (the
        reference takes the norm of the summed force vectors; both agree for forces pushing the same way)."""
        return np.sum(np.where(NON_FOOT, sim.contact_forces(), 0.0), axis=-1) > NON_FOOT_FORCE

    def terminate(self, prev_state, state, sim) -> np.ndarray:
        return (landing(state, sim.contact_forces(), self.line_x) | self.out_of_corridor(state)
                | self.non_foot_contact(sim) | low_non_foot(state, sim, self._heights))
