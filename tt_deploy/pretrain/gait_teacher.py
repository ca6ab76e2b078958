"""A SIMBICON-style walking controller: the gait teacher for walk prompts during BFM pretraining.

Why it exists: like the IK reach teacher (reach_teacher.py) it gives actions that really do the
task in MuJoCo, for a behaviour-cloning term. It is a state-feedback controller after Yin, Loken
and van de Panne 2007 (SIMBICON): each output is a function of the current simulator state plus
a tiny per-env state machine that the state itself reveals (which foot is up, how long it has
been up), because the BFM that clones it sees proprioception and a prompt, never a clock.

State machine, per env (plain numpy arrays; `state_dict` / `load_state_dict` for resume):
    swing_left (N,) bool   which leg swings
    phase (N,) int         0 = lift (for `lift_time` s), 1 = reach down until swing-foot contact
    t_swing (N,) float     s since the current swing started
    fresh (N,) bool        reset and not stepped yet: the next actions() picks the first swing leg
The swing leg changes on swing-ankle/toe contact force > `contact_force` in phase 1 (or after
`max_swing`, counted in `num_timeouts`). PD targets per control step (all GaitParams):
- stance hip x/y: current angle + torso_kp * pelvis roll/pitch error + torso_kd * rate, i.e. the
  position target that rotates the pelvis upright over the planted thigh (pitch target: a forward
  lean that grows with the command and with the speed deficit, capped at max_lean);
- swing hip y: SIMBICON world thigh angle alpha = alpha0 + alpha_per_speed * speed
  + k_speed * (v - speed) + cd * d, with d, v the COM offset ahead of the stance ankle and the COM
  velocity, in the yaw frame of the planted stance foot (the pelvis yaw wobbles ~0.2 rad a step);
- swing hip x: outward thigh roll width0 + cd_lat * d_lat + cv_lat * v_lat;
- swing hip z: the swing foot lands turned toward the command by clip(turn_gain * error, max_turn)
  relative to the stance foot; the stance hip z holds 0, so the pelvis follows the feet;
- knees from the table (swing knee 1.094 rad + swing_knee_per_speed * speed in phase 0, 0.05 in phase 1;
  stance 0.106); swing ankle x/y keep the swing foot level (phase 1: 0.1 rad toe-up, a heel strike);
  stance ankles partly level (stance_level), and the stance ankle dorsiflexes ankle_per_speed per m/s of command;
- trunk (Torso/Spine/Chest x, y): bend back trunk_comp of the pelvis tilt, upper body upright.
The (capped) command speed is first scaled by max(cos(heading error), 0) ** turn_slow (0: off), so a walk
far off the command direction turns before it speeds up.
Turning (since the controller's fifth tuning, v8): only the outer leg's swing lands turned (toe-out, at
most max_turn 0.2 rad a step) and the stance hip turns the pelvis onto a turned foot at most stance_yaw_rate
1 rad/s instead of at once; and (since v9) the first swing after reset() is the leg on the command's side.
The losing branches of those searches (both legs turning, the left leg always first, balance feedback in the
pelvis frame, a Raibert neutral-point term, speed-error ankle feedback, a stance-hip turn share) are gone;
their measurements stay in docs/history/bfm_lineage.md. The evaluate-bfm walk row with the controller acting (128 episodes) is 90 / 86 / 86 %
on seeds 0 / 1 / 2 (progress 0.65 m/s, falls 9-11 %); always starting with the left leg it was 77 / 74 / 73 %, since
every command more than ~75 deg to the right fell (open steps without the rate limit 69 / 70 / 66 %; the
session-5 tuning, both legs turning at most 0.1 rad, 56 / 62 % on seeds 0 / 1; docs/history/bfm_lineage.md).

API: `GaitTeacher(hm, num_envs, params=None)`; `reset(env_ids=None)`;
`actions(state, joint_pos (N, 69), contact_forces (N, 24), walk_dir (N, 2), speed (N,))
-> (teacher_joint_ids() (33,), actions (N, 33) in [-1, 1])`: the 24 leg hinges (hip, knee, ankle,
toe; left then right) and the 9 trunk hinges. Every other joint is left to the caller (rest pose,
action 0, is what it was tuned with). Call it once per control step, before `sim.step`, with the
state after the previous step; `reset(ids)` when an env starts walking. Measured alone with the session-5
turning (64 envs x 10 s, other joints at action 0, seeds 0 and 1; the searches behind these gains:
docs/history/bfm_lineage.md): it walks 0.33 / 0.47 / 0.70 m/s for commands of 0.3 / 0.6 / 1.0 m/s straight (0.30 / 0.43 / 0.62-0.64 with
directions +-90 deg off the heading), keeps 94-100 % of straight and 91-97 % of turning episodes up, 52-59 %
with N(0, 0.01) noise on all 69 actions. Speed comes from cadence (2.9 steps/s) and the forward lean that the
stiff torso loop (torso_kp 5) holds; the previous defaults (torso_kp 2, max_lean 0.05, speed_cap 0.65, no
turn_slow) walked 0.58 / 0.55 m/s at 1 m/s straight / turning. Pushes were last measured on an older tuning
(33 % / 27 % up under random 0.3 / 0.5 m/s pushes every ~2 s); at speed 0 the current one steps in place
(drifting ~0.2 m/s forward) and keeps only 13-22 % up under the evaluate-bfm 0.5 m/s pushes.
A swing-hip feed-forward and push-off (late-stance ankle/toe/hip, trailing foot) were tried and
dropped: every setting walked slower or fell more (plantarflexion in flat-foot single stance brakes the COM);
so was a double-support phase with trailing-foot push-off (it costs cadence; runs/gait/structure_search2.md).
Nothing here is exported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tt_deploy import spec
from tt_deploy.errors import InputError
from tt_deploy.obs.rotations import heading_angle, quat_rotate, yaw_rotate
from tt_deploy.obs.state import BodyState
from tt_deploy.sim.humanoid_model import HumanoidModel
from tt_deploy.tasks.base import PELVIS_ID, root_heading, wrap_angle

SIDES = ("L", "R")
LEG_BODIES = ("Hip", "Knee", "Ankle", "Toe")
TRUNK_BODIES = ("Torso", "Spine", "Chest")
FSM_FIELDS = ("swing_left", "phase", "t_swing", "num_switches", "num_timeouts", "fresh")
ANKLE_IDS = np.array([spec.BODY_NAMES.index("L_Ankle"), spec.BODY_NAMES.index("R_Ankle")])
TOE_IDS = np.array([spec.BODY_NAMES.index("L_Toe"), spec.BODY_NAMES.index("R_Toe")])
FIRST_STEP_DEADBAND = 0.05  # rad: commands within this of the heading start with the left foot


@dataclass(frozen=True)
class GaitParams:
    """Controller gains and the SIMBICON table; angles in rad, lengths in m, times in s."""

    # m/s: commands above this are walked as this (0.65 with torso_kp 2: faster fell forward; the stiff torso
    # and turn_slow made 1.0 safe)
    speed_cap: float = 1.0
    lift_time: float = 0.22  # duration of phase 0 (7 control steps; was 0.257 = 8: faster cadence, 2.7 -> 2.9-3 steps/s)
    max_swing: float = 0.8  # force a leg change after this long
    contact_force: float = 37.5  # N on the swing ankle/toe that counts as touch-down (phase 1)
    # swing hip (world thigh angle, forward positive)
    alpha0: float = 0.3198  # at rest
    alpha_per_speed: float = 0.1736  # per m/s of commanded speed
    k_speed: float = 0.32  # per m/s of COM speed above the command (0.288 before the structure search)
    cd: float = 0.3106  # per m of COM ahead of the stance ankle
    # swing hip lateral (world thigh roll, outward positive)
    width0: float = 0.0767
    cd_lat: float = 0.0111
    cv_lat: float = 0.4571
    # torso (stance hip) feedback
    torso_kp: float = 5.0  # 2.0 before v5: too soft to hold a lean at 1 m/s (the pelvis pitched over)
    torso_kd: float = 0.181
    lean_per_speed: float = 0.056  # forward pelvis pitch per m/s
    lean_per_speed_error: float = 0.1711  # extra pitch per m/s of COM speed below the command (starting)
    max_lean: float = 0.03  # cap on the total lean (0.05 with torso_kp 2): more walks faster but falls more
    trunk_comp: float = 0.5  # fraction of the pelvis roll/pitch error the spine bends back (0: trunk rigid)
    # knees/ankles (knee flexion positive, ankle toe-down positive)
    swing_knee: tuple[float, float] = (1.094, 0.05)
    stance_knee: tuple[float, float] = (0.1061, 0.1061)
    stance_ankle: tuple[float, float] = (0.0079, -0.0168)  # toe-down, relative to level when stance_level = 1
    stance_level: float = 0.35  # 1: stance ankle keeps the foot level (no braking); 0: shank-relative
    ankle_per_speed: float = 0.0076  # feed-forward stance ankle dorsiflexion (rad) per m/s of command (0: off)
    swing_ankle_pitch: tuple[float, float] = (0.0, -0.1)  # relative to level; phase 1 toe-up = heel strike
    # turning (the fifth tuning, v8: open steps of 0.2 rad at gain 0.4 with stance_yaw_rate 1; before,
    # both legs turned at most 0.1 rad at gain 0.2 and the pelvis snapped onto the turned foot)
    max_turn: float = 0.2  # rad: swing foot yaw ahead of the pelvis heading, toward the command
    turn_gain: float = 0.4  # swing foot yaw per rad of heading error (before the max_turn clip)
    # rad/s: the stance hip turns the pelvis onto the newly planted foot at most this fast (0: at once, the
    # stance hip z target snaps to 0). A turned foot otherwise yaws the whole body within a few
    # control steps of touch-down, the angular momentum that made turns above 0.1 rad a step fall
    stance_yaw_rate: float = 1.0
    # extra phase-0 swing knee flexion (rad) per m/s of command; a swing-hip feed-forward and late-stance /
    # trailing-foot push-off were tried in the same search and only slowed the walk (docs/history/bfm_lineage.md)
    swing_knee_per_speed: float = 0.2
    # walked speed *= max(cos(pelvis heading - command direction), 0) ** turn_slow (0: off); 1 keeps more turning
    # walks up at a high speed_cap (runs/gait/structure_search2.md)
    turn_slow: float = 1.0


def leg_joint_ids() -> np.ndarray:
    """(24,) spec indices of the hip, knee, ankle and toe hinges, left leg then right, x-y-z."""
    return np.array([spec.JOINT_NAMES.index(f"{s}_{b}_{a}") for s in SIDES for b in LEG_BODIES for a in "xyz"])


def teacher_joint_ids() -> np.ndarray:
    """(33,) the joints the teacher drives: leg_joint_ids() then the trunk hinges (Torso, Spine, Chest; x-y-z)."""
    trunk = [spec.JOINT_NAMES.index(f"{b}_{a}") for b in TRUNK_BODIES for a in "xyz"]
    return np.concatenate([leg_joint_ids(), trunk])


def _col(body: str, axis: str) -> int:
    """Column of one hinge of the LEFT leg in leg_joint_ids(); add 12 for the right leg."""
    return LEG_BODIES.index(body) * 3 + "xyz".index(axis)


class GaitTeacher:
    """Vectorised SIMBICON walking controller for num_envs humanoids (see module docstring)."""

    def __init__(self, hm: HumanoidModel, num_envs: int, params: GaitParams | None = None):
        self.p = params or GaitParams()
        self.num_envs = int(num_envs)
        self.joint_ids = teacher_joint_ids()
        self.offset, self.scale = hm.pd_offset[self.joint_ids], hm.pd_scale[self.joint_ids]
        mass = hm.model.body_mass[hm.body_ids]
        self.mass_frac = mass / mass.sum()
        self.swing_left = np.zeros(self.num_envs, dtype=bool)
        self.phase = np.zeros(self.num_envs, dtype=np.int64)
        self.t_swing = np.zeros(self.num_envs)
        self.num_switches = np.zeros(self.num_envs, dtype=np.int64)  # leg changes (tests, measurements)
        self.num_timeouts = np.zeros(self.num_envs, dtype=np.int64)  # of which forced by max_swing
        self.fresh = np.zeros(self.num_envs, dtype=bool)  # reset, first leg not chosen yet
        self.reset()

    # --- state machine -------------------------------------------------------------------------
    def reset(self, env_ids=None) -> None:
        """Start env_ids (None: all) in phase 0; the next actions() call picks the leg on the command's side."""
        ids = slice(None) if env_ids is None else np.asarray(env_ids, dtype=np.int64)
        self.swing_left[ids] = True
        self.fresh[ids] = True
        self.phase[ids] = 0
        self.t_swing[ids] = 0.0
        self.num_switches[ids] = 0
        self.num_timeouts[ids] = 0

    def state_dict(self) -> dict[str, np.ndarray]:
        """The state machine and counters, (N,) arrays copied."""
        return {k: getattr(self, k).copy() for k in FSM_FIELDS}

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore a state_dict() of the same num_envs."""
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
        timeout = self.t_swing >= p.max_swing
        switch = ((self.phase == 1) & (force > p.contact_force)) | timeout
        self.num_timeouts += timeout
        self.swing_left[switch] = ~self.swing_left[switch]
        self.phase[switch] = 0
        self.t_swing[switch] = 0.0
        self.num_switches[switch] += 1

    # --- control -------------------------------------------------------------------------------
    def actions(self, state: BodyState, joint_pos: np.ndarray, contact_forces: np.ndarray, walk_dir: np.ndarray,
                speed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advance the state machine on this step's contacts and return the teacher actions.

        state: current BodyState; joint_pos (N, 69) rad (`sim.joint_state()[0]`); contact_forces (N, 24)
        N (`sim.contact_forces()`); walk_dir (N, 2) world unit vectors; speed (N,) m/s.
        Returns (teacher_joint_ids() (33,), actions (N, 33) in [-1, 1]); a new array each call.
        """
        n = self.num_envs
        for name, value, shape in (("joint_pos", joint_pos, (n, spec.NUM_DOF)), ("contact_forces", contact_forces,
                                   (n, spec.NUM_BODIES)), ("walk_dir", walk_dir, (n, 2)), ("speed", speed, (n,))):
            if np.shape(value) != shape:
                raise InputError(f"{name} must have shape {shape}; got {np.shape(value)}")
        if self.fresh.any():
            goal = np.arctan2(walk_dir[:, 1], walk_dir[:, 0])
            left = wrap_angle(goal - root_heading(state)) > -FIRST_STEP_DEADBAND  # straight: the left foot
            self.swing_left[self.fresh] = left[self.fresh]
        self.fresh[:] = False
        self._advance(contact_forces)
        f = self._features(state, walk_dir, np.minimum(speed, self.p.speed_cap))
        q = joint_pos[:, self.joint_ids[:24]].reshape(n, 2, 12)
        rows = np.arange(n)
        tgt_sw, tgt_st = self._swing_targets(f, q[rows, f["sw"]]), self._stance_targets(f, q[rows, f["st"]])
        legs = np.zeros((n, 2, 12))
        legs[rows, f["sw"]] = tgt_sw
        legs[rows, f["st"]] = tgt_st
        # trunk: bend the spine against the pelvis tilt so the upper body stays upright in the world
        k = self.p.trunk_comp / len(TRUNK_BODIES)
        trunk = np.zeros((n, len(TRUNK_BODIES), 3))
        trunk[:, :, 0] = -k * f["roll"][:, None]
        trunk[:, :, 1] = -k * (f["pitch"] - f["lean"])[:, None]
        target = np.concatenate([legs.reshape(n, 24), trunk.reshape(n, -1)], axis=1)
        act = (target - self.offset) / self.scale
        return self.joint_ids, np.clip(act, -spec.ACTION_CLAMP, spec.ACTION_CLAMP)

    def _features(self, state: BodyState, walk_dir: np.ndarray, speed: np.ndarray) -> dict[str, np.ndarray]:
        """Pelvis tilt (heading frame), COM offset/velocity (balance frame), turn and lean; (N,) or (N, 3)."""
        p, n = self.p, self.num_envs
        rows = np.arange(n)
        heading = root_heading(state)
        goal = np.arctan2(walk_dir[:, 1], walk_dir[:, 0])
        if p.turn_slow != 0.0:  # turn first, then speed up
            speed = speed * np.maximum(np.cos(wrap_angle(goal - heading)), 0.0) ** p.turn_slow
        c, s = np.cos(-heading), np.sin(-heading)
        up = yaw_rotate(c, s, quat_rotate(state.quat[:, PELVIS_ID], np.broadcast_to([0.0, 0.0, 1.0], (n, 3))))
        omega = yaw_rotate(c, s, state.ang_vel[:, PELVIS_ID])  # roll rate x, pitch rate y
        sw = np.where(self.swing_left, 0, 1)
        st = 1 - sw
        stance_yaw = heading_angle(state.quat[rows, ANKLE_IDS[st]])
        # balance feedback in the yaw frame of the planted stance foot: the pelvis yaw wobbles by
        # ~0.2 rad per step, which mixes forward speed into the lateral feedback
        bc, bs = np.cos(-stance_yaw), np.sin(-stance_yaw)
        com = np.einsum("b,nbk->nk", self.mass_frac, state.pos)
        com_vel = yaw_rotate(bc, bs, np.einsum("b,nbk->nk", self.mass_frac, state.lin_vel))
        lean = p.lean_per_speed * speed + p.lean_per_speed_error * (speed - com_vel[:, 0])
        lean = np.clip(lean, 0.0, p.max_lean)
        return {
            "sw": sw, "st": st, "phase": self.phase, "speed": speed, "lean": lean,
            "pitch": np.arctan2(up[:, 0], up[:, 2]), "roll": np.arctan2(-up[:, 1], up[:, 2]), "omega": omega,
            "com_vel": com_vel, "d": yaw_rotate(bc, bs, com - state.pos[rows, ANKLE_IDS[st]]),
            "side": np.where(self.swing_left, 1.0, -1.0),  # +y is outward for the left leg
            "turn": self._turn(wrap_angle(goal - stance_yaw)),
        }  # fmt: skip

    def _turn(self, err: np.ndarray) -> np.ndarray:
        """Swing-hip yaw (rad) toward the command, from the heading error relative to the stance foot."""
        p = self.p
        turn = np.clip(p.turn_gain * err, -p.max_turn, p.max_turn)
        # open steps only: +err turns left, so only a swinging left leg opens (and a right one for -err)
        return np.where(np.sign(err) == np.where(self.swing_left, 1.0, -1.0), turn, 0.0)

    def _swing_targets(self, f: dict, q: np.ndarray) -> np.ndarray:
        """(N, 12) PD targets (rad) of the swing leg's hinges from features f and its angles q (N, 12)."""
        p = self.p
        v = f["com_vel"]
        tgt = np.zeros_like(q)
        # SIMBICON balance feedback: world thigh angle forward (alpha) and outward (lat)
        alpha = p.alpha0 + p.alpha_per_speed * f["speed"] + p.k_speed * (v[:, 0] - f["speed"]) + p.cd * f["d"][:, 0]
        lift = f["phase"] == 0
        lat = f["side"] * p.width0 + p.cd_lat * f["d"][:, 1] + p.cv_lat * v[:, 1]
        tgt[:, _col("Hip", "y")] = -alpha - f["pitch"]
        tgt[:, _col("Hip", "x")] = lat - f["roll"]
        # foot yaw toward the command relative to the planted stance foot, not the pelvis: a
        # pelvis-referenced target feeds the swing hip's reaction torque back into pelvis yaw
        tgt[:, _col("Hip", "z")] = f["turn"]
        tgt[:, _col("Knee", "y")] = np.take(p.swing_knee, f["phase"]) + lift * p.swing_knee_per_speed * f["speed"]
        foot_pitch = f["pitch"] + q[:, _col("Hip", "y")] + q[:, _col("Knee", "y")]
        tgt[:, _col("Ankle", "y")] = np.take(p.swing_ankle_pitch, f["phase"]) - foot_pitch  # foot level
        tgt[:, _col("Ankle", "x")] = -(f["roll"] + q[:, _col("Hip", "x")])
        return tgt

    def _stance_targets(self, f: dict, q: np.ndarray) -> np.ndarray:
        """(N, 12) PD targets (rad) of the stance leg's hinges: the hip rotates the pelvis upright."""
        p = self.p
        tgt = np.zeros_like(q)
        rate = f["omega"]
        pitch_err = f["pitch"] - f["lean"]
        tgt[:, _col("Hip", "y")] = q[:, _col("Hip", "y")] + p.torso_kp * pitch_err + p.torso_kd * rate[:, 1]
        tgt[:, _col("Hip", "x")] = q[:, _col("Hip", "x")] + p.torso_kp * f["roll"] + p.torso_kd * rate[:, 0]
        hip_z = np.zeros(self.num_envs)  # the pelvis follows the feet ...
        if p.stance_yaw_rate > 0:  # ... at a limited yaw rate
            step = p.stance_yaw_rate * spec.CONTROL_DT
            hip_z = q[:, _col("Hip", "z")] + np.clip(hip_z - q[:, _col("Hip", "z")], -step, step)
        tgt[:, _col("Hip", "z")] = hip_z
        tgt[:, _col("Knee", "y")] = np.take(p.stance_knee, f["phase"])
        foot_pitch = f["pitch"] + q[:, _col("Hip", "y")] + q[:, _col("Knee", "y")]
        dorsi = p.ankle_per_speed * f["speed"]  # feed-forward: the shank tips forward with the command
        tgt[:, _col("Ankle", "y")] = np.take(p.stance_ankle, f["phase"]) - dorsi - p.stance_level * foot_pitch
        tgt[:, _col("Ankle", "x")] = -p.stance_level * (f["roll"] + q[:, _col("Hip", "x")])
        return tgt
