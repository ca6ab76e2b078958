"""Strike: walk to a pillar ("strike_target" scene object) and knock it over with the right arm.

obs (15) = [Hinv d with d = target - root but d.z replaced by the target's ABSOLUTE height (ref quirk),
tan_norm(Hinv * q_target), Hinv v_target, Hinv w_target].
c = z-component of the target's up axis; s = root speed toward the target (xy, finite difference);
reward = 0.6 max(0, 1 - c) + 0.4 exp(-4 max(0, (1 - s)/1)^2) (the approach term is 0 where s <= 0);
reward = 1 where c < 0.2.
Rules (ref masked_mimic_inversion/strike/isaacgym.py, strike.yaml):
- the striking set is the right arm only (R_Hand, R_Wrist, R_Elbow);
- the episode fails (terminates) when the target is touched while some body that is neither a foot
  nor in the striking set is in contact (force > 1 N) - a foot on the target alone does not fail it;
- success is the target toppled (c < 0.2) at the episode's last step.
Placement (ref, ASE strike): distance U(min, max) with max = near_dist for a near_prob share of
resets, a uniform random direction and yaw.
With prior=True the task prompts the BFM with the strike prior (obs/priors.py): approach, then
"R_Hand at the target's centre".
"""

from __future__ import annotations

import numpy as np

from tt_deploy import spec
from tt_deploy.errors import InputError
from tt_deploy.obs.rotations import heading_quat_inv, quat_about_z, quat_mul, quat_rotate, tan_norm
from tt_deploy.obs.state import RigidState
from tt_deploy.tasks.base import PELVIS_ID, Task, root_velocity, to_heading_frame
from tt_deploy.tasks.random import rows

OBJECT = "strike_target"
TOPPLED_UP_Z = 0.2
STRIKE_BODY_MASK = np.isin(np.arange(spec.NUM_BODIES), [spec.BODY_NAMES.index(b) for b in spec.STRIKE_BODIES])
FOOT_MASK = np.isin(np.arange(spec.NUM_BODIES), [spec.BODY_NAMES.index(b) for b in spec.FOOT_BODIES])
CONTACT_FORCE = 1.0  # N, the reference's contact threshold for the strike failure rule


def target_up_z(quat: np.ndarray) -> np.ndarray:
    """(N,) z-component of the target's up axis (1 upright, 0 lying)."""
    return quat_rotate(quat, np.broadcast_to([0.0, 0.0, 1.0], quat.shape[:-1] + (3,)))[..., 2]


def topple_reward(tar_quat: np.ndarray) -> np.ndarray:
    """(N,) the reference strike reward's topple part: 0.6 max(0, 1 - c), and 1 once toppled (c < 0.2).

    The strike expert (pretrain/strike_expert.py) is paid this alone: it starts standing next to the pillar."""
    c = target_up_z(tar_quat)
    return np.where(c < TOPPLED_UP_Z, 1.0, 0.6 * np.maximum(1.0 - c, 0.0))


def strike_reward(root_pos: np.ndarray, root_vel: np.ndarray, tar_pos: np.ndarray, tar_quat: np.ndarray) -> np.ndarray:
    """Reference strike reward, (N,). Positions (N, 3) m, root_vel (N, 3) m/s, tar_quat (N, 4) xyzw."""
    c = target_up_z(tar_quat)
    to_tar = tar_pos[:, :2] - root_pos[:, :2]
    to_tar = to_tar / np.maximum(np.linalg.norm(to_tar, axis=-1, keepdims=True), 1e-12)  # torch normalize
    s = np.sum(to_tar * root_vel[:, :2], axis=-1)
    err = np.maximum((1.0 - s) / 1.0, 0.0)
    vel_r = np.where(s <= 0.0, 0.0, np.exp(-4.0 * err**2))
    return np.where(c < TOPPLED_UP_Z, 1.0, topple_reward(tar_quat) + 0.4 * vel_r)


class StrikeTask(Task):
    """Topple the pillar with the right arm."""

    name = "strike"
    feature_dim = 15
    feature_names = (
        "target_x [m]: (Hinv d).x, d = target - pelvis with d.z = the target's absolute height (reference quirk)",
        "target_y [m]: (Hinv d).y",
        "target_z [m]: (Hinv d).z",
        *(f"target_rot_{i} [1]: tan_norm(Hinv q_target)[{i}] - the target's orientation, tangent then normal"
          for i in range(6)),
        *(f"target_vel_{a} [m/s]: (Hinv v_target).{a}" for a in "xyz"),
        *(f"target_angvel_{a} [rad/s]: (Hinv w_target).{a}" for a in "xyz"),
    )
    objects = (OBJECT,)
    fall_voids_success = False  # ref: a toppled target counts even if the character falls afterwards

    def __init__(self, num_envs: int, *, current_pose: bool = False, dist_range: tuple[float, float] = (0.5, 10.0),
                 near_dist: float = 1.5, near_prob: float = 0.5, target_height: float = 0.9,
                 prior: bool = False):
        super().__init__(num_envs, current_pose=current_pose)
        self.prior = bool(prior)
        if not 0 < dist_range[0] <= near_dist <= dist_range[1] or not 0 <= near_prob <= 1:
            raise InputError(f"bad strike placement: dist_range={dist_range}, near_dist={near_dist}, "
                             f"near_prob={near_prob}")
        self.dist_range, self.near_dist, self.near_prob = dist_range, near_dist, near_prob
        self.target_height = float(target_height)  # z of the upright target's centre (m above ground)
        if self.prior:  # the prior owns its parameters (obs/priors.py StrikePrior)
            from tt_deploy.obs.priors import make_prior

            self.prior_prompt = make_prior("strike", self.num_envs)
        self._toppled = np.zeros(self.num_envs, dtype=bool)  # at the latest step

    def _reset_goals(self, env_ids, state, sim, rng) -> None:
        rng = rows(rng, env_ids)  # per-env streams (tasks/random.py)
        n = len(env_ids)
        dist_max = np.where(rng.random(n) < self.near_prob, self.near_dist, self.dist_range[1])
        dist = self.dist_range[0] + (dist_max - self.dist_range[0]) * rng.random(n)
        theta = rng.uniform(0.0, 2 * np.pi, n)
        xy = state.pos[env_ids, PELVIS_ID, :2] + dist[:, None] * np.stack([np.cos(theta), np.sin(theta)], -1)
        z = sim.ground_height(xy) + self.target_height
        zeros = np.zeros((n, 3))
        sim.set_object_state(OBJECT, env_ids, RigidState(
            pos=np.concatenate([xy, z[:, None]], axis=-1), quat=quat_about_z(rng.uniform(0.0, 2 * np.pi, n)),
            lin_vel=zeros, ang_vel=zeros.copy()))
        self._toppled[env_ids] = False

    def features(self, state, sim) -> np.ndarray:
        tar = sim.object_state(OBJECT)
        d = tar.pos - state.pos[:, PELVIS_ID]
        d[:, 2] = tar.pos[:, 2]  # ref quirk: absolute target height, not the difference
        hinv = heading_quat_inv(state.quat[:, PELVIS_ID])
        return np.concatenate([quat_rotate(hinv, d), tan_norm(quat_mul(hinv, tar.quat)),
                               to_heading_frame(state, tar.lin_vel), to_heading_frame(state, tar.ang_vel)], axis=-1)

    def reward(self, prev_state, state, sim) -> np.ndarray:
        tar = sim.object_state(OBJECT)
        return strike_reward(state.pos[:, PELVIS_ID], root_velocity(prev_state, state), tar.pos, tar.quat)

    def illegal_contact(self, sim) -> np.ndarray:
        """(N,) bool: the target is touched while a body that is neither a foot nor in the striking set has
        contact (ref compute_humanoid_reset: tar_has_contact & nonstrike_body_has_contact). "Touched" is a
        humanoid body touching it (MuJoCo contact pairs); the reference reads the target's net horizontal
        contact force instead."""
        touched = np.any(sim.object_contacts(OBJECT), axis=-1)
        other = np.any((sim.contact_forces() > CONTACT_FORCE) & ~STRIKE_BODY_MASK & ~FOOT_MASK, axis=-1)
        return touched & other

    def _track_success(self, prev_state, state, sim) -> None:
        self._toppled = target_up_z(sim.object_state(OBJECT).quat) < TOPPLED_UP_Z
        self._measured += 1

    def success(self) -> np.ndarray:
        """Toppled at the latest step (read at the episode's last step: ref `_current_successes`)."""
        return self._toppled & (self._measured > 0)

    def prior_goal(self, state, sim) -> dict[str, np.ndarray]:
        return {"target": sim.object_state(OBJECT).pos}

    def terminate(self, prev_state, state, sim) -> np.ndarray:
        return self.illegal_contact(sim)
