"""A SIMBICON-style walking controller: the gait teacher for walk prompts during BFM pretraining.

Why it exists: PPO alone does not find walking on 2 cores; like the IK reach teacher
(reach_teacher.py), this controller gives leg actions that really walk in MuJoCo, for a
behaviour-cloning term. It is a state-feedback controller (Yin, Loken, van de Panne 2007): its
output is a function of the current simulator state plus a tiny per-env state machine that is
itself inferable from that state, because the BFM that clones it sees proprioception and a
prompt, never a clock.

State machine, per env (plain numpy arrays, snapshot with `state_dict`):
    swing_left (N,) bool   which leg swings
    phase (N,) int         0 = lift (for `lift_time` s), 1 = reach down until swing-foot contact
    t_swing (N,) float     s since the current swing started
The swing leg changes when the swing foot touches the ground in phase 1 (or after `max_swing`).

Per control step, in the heading frame of the pelvis:
- stance hip x/y: the current angle plus the pelvis roll/pitch error (gain `torso_kp`, rate gain
  `torso_kd`), i.e. the PD target that rotates the pelvis upright over a planted thigh;
- swing hip y: world thigh angle alpha = alpha0(v) + cd * d + cv * (v_com - speed), d the COM
  offset ahead of the stance ankle (SIMBICON balance feedback, plus a speed term), minus pelvis pitch;
- swing hip x: the same lateral feedback toward a nominal step width;
- hip z: the stance hip turns the pelvis toward the commanded direction, at most `max_turn` rad
  away from the stance foot; the swing hip aims the swing foot at the pelvis heading;
- knees from the table (swing knee flexed in phase 0, near straight in phase 1);
- swing ankle x/y keep the swing foot level in the world; stance ankle from the table.

API: `GaitTeacher(hm, num_envs)`; `reset(env_ids)`; `actions(state, joint_pos, contact_forces,
walk_dir (N, 2), speed (N,)) -> (joint_ids (K,), actions (N, K))`: spec joint indices of the leg
hinges and their actions in [-1, 1]. Every other joint is left to the caller (rest pose works).
Nothing here is exported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tt_deploy import spec
from tt_deploy.sim.base import BodyState
from tt_deploy.sim.humanoid_model import HumanoidModel
from tt_deploy.sim.rotations import heading_angle, quat_rotate, yaw_rotate
from tt_deploy.tasks.base import PELVIS_ID, root_heading, wrap_angle

SIDES = ("L", "R")
LEG_BODIES = ("Hip", "Knee", "Ankle", "Toe")
ANKLE_IDS = np.array([spec.BODY_NAMES.index("L_Ankle"), spec.BODY_NAMES.index("R_Ankle")])
TOE_IDS = np.array([spec.BODY_NAMES.index("L_Toe"), spec.BODY_NAMES.index("R_Toe")])
ANKLE_REST_Z = 0.072  # m: ankle height standing (foot flat)


@dataclass(frozen=True)
class GaitParams:
    """Controller gains and the SIMBICON table; angles in rad, lengths in m, times in s."""

    lift_time: float = 0.3  # duration of phase 0
    max_swing: float = 0.8  # force a leg change after this long
    contact_force: float = 40.0  # N on the swing ankle/toe that counts as touch-down (phase 1)
    # swing hip (world thigh angle, forward positive)
    alpha0: float = 0.05  # at rest
    c_neutral: float = 0.25  # per m/s of COM speed: the Raibert neutral point, ~ stance time / 2 / leg length
    k_speed: float = 0.15  # per m/s of COM speed above the command
    cd: float = 0.0  # per m of COM ahead of the stance ankle
    # swing hip lateral (world thigh roll, outward positive)
    width0: float = 0.06
    cd_lat: float = 0.5
    cv_lat: float = 0.3
    # torso (stance hip) feedback
    torso_kp: float = 1.5
    torso_kd: float = 0.15
    lean_per_speed: float = 0.05  # forward pelvis pitch per m/s
    # knees/ankles (knee flexion positive, ankle toe-down positive)
    swing_knee: tuple[float, float] = (1.1, 0.05)
    stance_knee: tuple[float, float] = (0.05, 0.1)
    stance_ankle: tuple[float, float] = (0.0, 0.0)
    swing_ankle_pitch: tuple[float, float] = (0.0, 0.0)  # relative to level
    # turning
    max_turn: float = 0.3  # rad of pelvis yaw ahead of the stance foot / of swing foot per step


def leg_joint_ids() -> np.ndarray:
    """(24,) spec indices of the hip, knee, ankle and toe hinges, left leg then right, x-y-z."""
    return np.array([spec.JOINT_NAMES.index(f"{s}_{b}_{a}") for s in SIDES for b in LEG_BODIES for a in "xyz"])


def _col(body: str, axis: str) -> int:
    """Column of one hinge of the LEFT leg in leg_joint_ids(); add 12 for the right leg."""
    return LEG_BODIES.index(body) * 3 + "xyz".index(axis)


class GaitTeacher:
    """Vectorised SIMBICON walking controller for num_envs humanoids (see module docstring)."""

    def __init__(self, hm: HumanoidModel, num_envs: int, params: GaitParams | None = None):
        self.p = params or GaitParams()
        self.num_envs = int(num_envs)
        self.joint_ids = leg_joint_ids()
        self.offset, self.scale = hm.pd_offset[self.joint_ids], hm.pd_scale[self.joint_ids]
        mass = hm.model.body_mass[hm.body_ids]
        self.mass_frac = mass / mass.sum()
        self.swing_left = np.zeros(self.num_envs, dtype=bool)
        self.phase = np.zeros(self.num_envs, dtype=np.int64)
        self.t_swing = np.zeros(self.num_envs)
        self.num_switches = np.zeros(self.num_envs, dtype=np.int64)  # for tests and measurements
        self.reset()

    # --- state machine -------------------------------------------------------------------------
    def reset(self, env_ids=None) -> None:
        """Start env_ids (None: all) with the left leg swinging, phase 0."""
        ids = slice(None) if env_ids is None else np.asarray(env_ids, dtype=np.int64)
        self.swing_left[ids] = True
        self.phase[ids] = 0
        self.t_swing[ids] = 0.0
        self.num_switches[ids] = 0

    def state_dict(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k).copy() for k in ("swing_left", "phase", "t_swing", "num_switches")}

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        for k, v in arrays.items():
            getattr(self, k)[...] = v

    def _advance(self, contact_forces: np.ndarray) -> None:
        """Phase 0 -> 1 after lift_time; phase 1 -> other leg on swing-foot contact."""
        p = self.p
        self.t_swing += spec.CONTROL_DT
        self.phase[(self.phase == 0) & (self.t_swing >= p.lift_time)] = 1
        swing = np.where(self.swing_left, 0, 1)
        rows = np.arange(self.num_envs)
        force = contact_forces[rows, ANKLE_IDS[swing]] + contact_forces[rows, TOE_IDS[swing]]
        switch = ((self.phase == 1) & (force > p.contact_force)) | (self.t_swing >= p.max_swing)
        self.swing_left[switch] = ~self.swing_left[switch]
        self.phase[switch] = 0
        self.t_swing[switch] = 0.0
        self.num_switches[switch] += 1

    # --- control -------------------------------------------------------------------------------
    def actions(self, state: BodyState, joint_pos: np.ndarray, contact_forces: np.ndarray, walk_dir: np.ndarray,
                speed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advance the state machine on this step's contacts and return the leg actions.

        state: current BodyState; joint_pos (N, 69) rad; contact_forces (N, 24) N; walk_dir (N, 2)
        world unit vectors; speed (N,) m/s. Returns (leg_joint_ids() (24,), actions (N, 24) in [-1, 1]).
        """
        self._advance(contact_forces)
        p, n = self.p, self.num_envs
        rows = np.arange(n)
        heading = root_heading(state)
        c, s = np.cos(-heading), np.sin(-heading)
        local = lambda v: yaw_rotate(c, s, v)  # noqa: E731  world -> heading frame
        up = local(quat_rotate(state.quat[:, PELVIS_ID], np.broadcast_to([0.0, 0.0, 1.0], (n, 3))))
        pitch, roll = np.arctan2(up[:, 0], up[:, 2]), np.arctan2(-up[:, 1], up[:, 2])
        omega = local(state.ang_vel[:, PELVIS_ID])  # roll rate x, pitch rate y
        com = np.einsum("b,nbk->nk", self.mass_frac, state.pos)
        com_vel = local(np.einsum("b,nbk->nk", self.mass_frac, state.lin_vel))
        sw = np.where(self.swing_left, 0, 1)
        st = 1 - sw
        d = local(com - state.pos[rows, ANKLE_IDS[st]])
        side = np.where(self.swing_left, 1.0, -1.0)  # +y is outward for the left leg
        ph = self.phase

        q = joint_pos[:, self.joint_ids].reshape(n, 2, 12)
        qsw, qst = q[rows, sw], q[rows, st]
        tgt_sw, tgt_st = np.zeros((n, 12)), np.zeros((n, 12))
        # torso: stance hip rotates the pelvis upright (and leaning forward with speed)
        pitch_err = pitch - p.lean_per_speed * speed
        tgt_st[:, _col("Hip", "y")] = qst[:, _col("Hip", "y")] + p.torso_kp * pitch_err + p.torso_kd * omega[:, 1]
        tgt_st[:, _col("Hip", "x")] = qst[:, _col("Hip", "x")] + p.torso_kp * roll + p.torso_kd * omega[:, 0]
        # swing hip: SIMBICON balance feedback in the heading frame
        alpha = p.alpha0 + p.c_neutral * com_vel[:, 0] + p.k_speed * (com_vel[:, 0] - speed) + p.cd * d[:, 0]
        tgt_sw[:, _col("Hip", "y")] = -alpha - pitch
        lat = side * p.width0 + p.cd_lat * d[:, 1] + p.cv_lat * com_vel[:, 1]
        tgt_sw[:, _col("Hip", "x")] = lat - roll
        # turning: pelvis toward d (bounded relative to the stance foot), swing foot along the pelvis
        goal = np.arctan2(walk_dir[:, 1], walk_dir[:, 0])
        foot_yaw = heading_angle(state.quat[rows[:, None], ANKLE_IDS[np.stack([sw, st], 1)]])
        pelvis_des = foot_yaw[:, 1] + np.clip(wrap_angle(goal - foot_yaw[:, 1]), -p.max_turn, p.max_turn)
        tgt_st[:, _col("Hip", "z")] = wrap_angle(foot_yaw[:, 1] - pelvis_des)
        swing_yaw = heading + np.clip(wrap_angle(goal - heading), -p.max_turn, p.max_turn)
        tgt_sw[:, _col("Hip", "z")] = wrap_angle(swing_yaw - heading)
        # knees and ankles from the table; swing foot level in the world
        tgt_sw[:, _col("Knee", "y")] = np.take(p.swing_knee, ph)
        tgt_st[:, _col("Knee", "y")] = np.take(p.stance_knee, ph)
        tgt_st[:, _col("Ankle", "y")] = np.take(p.stance_ankle, ph)
        foot_pitch = pitch + qsw[:, _col("Hip", "y")] + qsw[:, _col("Knee", "y")]
        tgt_sw[:, _col("Ankle", "y")] = np.take(p.swing_ankle_pitch, ph) - foot_pitch
        tgt_sw[:, _col("Ankle", "x")] = -(roll + qsw[:, _col("Hip", "x")])

        target = np.zeros((n, 2, 12))
        target[rows, sw] = tgt_sw
        target[rows, st] = tgt_st
        act = (target.reshape(n, 24) - self.offset) / self.scale
        return self.joint_ids, np.clip(act, -spec.ACTION_CLAMP, spec.ACTION_CLAMP)
