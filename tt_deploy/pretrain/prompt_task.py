"""The BFM pretraining task: random sparse prompts in the target-pose tokens, and rewards for
obeying them while staying upright.

Each environment is in one prompt mode at a time, resampled at every goal change:
- idle:  every prompt token hidden; reward for standing still and upright (the "no prompt" ability).
- reach: one hand (right or left) to a 3-D point within reach, `t` seconds ahead, counting down;
         reward exp(-4 d^2) plus a sharp exp(-40 d^2) term so the mean action does not stop short.
- walk:  pelvis target 1 s ahead along a commanded direction d at speed v (a carrot rebuilt every
         step), heading = d, root velocity = v d; reward for speed along d, no sideways drift,
         facing d, and alternating foot clearance (a shuffle earns less than a step).
The task has no task observation (feature_dim 0): everything the policy needs is in the prompt.
With `teacher=True` (pretraining from recipe v3) reach envs also carry IK teacher actions for the
prompted arm (pretrain/reach_teacher.py), cloned by the policy's auxiliary loss; with `gait_weight > 0`
(recipe v4) walk envs carry the leg and trunk actions of a SIMBICON-style walking controller
(pretrain/gait_teacher.py), at that weight per hinge, and with `gait_drive` that share of walk goals is
walked by the controller itself (`teacher_drive`; the trainer executes its actions there).
`PromptCurriculum.reach_task_share` draws that share of reach goals like the reference reach task's
targets (tasks/reach.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tt_deploy import spec
from tt_deploy.errors import InputError
from tt_deploy.obs.prompts import FAR_SLOT, HEADING_ENTRY, hidden_targets
from tt_deploy.obs.rotations import quat_about_z, quat_rotate
from tt_deploy.sim.base import MujocoKinematics, Pushable
from tt_deploy.tasks.base import PELVIS_ID, Task, root_heading, root_velocity, unit_from_angle, wrap_angle
from tt_deploy.tasks.random import rows
from tt_deploy.tasks.reach import PRIOR_LEAD_S, sample_reach_targets

MODES = ("idle", "reach", "walk")
R_HAND, L_HAND = spec.BODY_NAMES.index("R_Hand"), spec.BODY_NAMES.index("L_Hand")
FEET = [spec.BODY_NAMES.index(b) for b in ("L_Ankle", "R_Ankle")]
ENTRY = {b: i for i, b in enumerate(spec.CONDITIONABLE_BODIES)}


@dataclass(frozen=True)
class PromptCurriculum:
    """Mode mix and goal ranges. Walking speeds grow with training (set by the trainer)."""

    mode_probs: tuple[float, float, float] = (0.3, 0.4, 0.3)  # idle, reach, walk
    change_steps: tuple[int, int] = (60, 150)  # control steps between goal changes
    reach_time: tuple[float, float] = (0.4, 1.0)  # s until the hand target
    reach_radius: tuple[float, float] = (0.2, 0.6)  # horizontal distance of the target from the shoulder line
    reach_height: tuple[float, float] = (0.6, 1.6)  # m above ground
    reach_blend: float = 1.0  # target = hand + U(blend_min, blend) x (sampled point - hand): a distance curriculum
    reach_blend_min: float = 0.0  # evaluation uses 1.0: always the sampled point itself
    # share of reach goals drawn like the reference reach task's targets (right hand, root xy +-0.75 m,
    # 0.05-1.6 m high: tasks/reach.py) and due like its prior (0.1-1.67 s ahead), the prompts a reach task
    # token's prior sends; many are beyond the arm
    reach_task_share: float = 0.0
    walk_speed: tuple[float, float] = (0.3, 1.2)  # m/s
    walk_lookahead: float = 1.0  # s
    push_interval_s: float = 4.0  # mean time between random horizontal kicks (0 = none)
    push_speed: tuple[float, float] = (0.1, 0.6)  # m/s

    def __post_init__(self):  # the CLI options of the same names land here
        if len(self.mode_probs) != len(MODES) or min(self.mode_probs) < 0 or sum(self.mode_probs) <= 0:
            raise InputError(f"prompt mode_probs (--mode-probs) {self.mode_probs}: {len(MODES)} shares >= 0, "
                             "at least one prompt mode needs a share > 0")  # fmt: skip
        if self.push_speed[0] > self.push_speed[1]:
            raise InputError(f"push_speed (--push-speed) {self.push_speed}: LOW must be <= HIGH")
        if not 0 <= self.walk_speed[0] <= self.walk_speed[1]:
            raise InputError(f"walk_speed (--walk-speed) {self.walk_speed}: 0 <= LOW <= HIGH m/s")
        if self.push_interval_s < 0:
            raise InputError(f"push_interval_s (--push-interval) must be >= 0 (0 = no pushes), got {self.push_interval_s}")
        if not 0 <= self.reach_task_share <= 1:
            raise InputError(f"reach_task_share (--reach-task-share) must be in [0, 1], got {self.reach_task_share}")


class PromptTask(Task):
    """Random prompts for N envs (see module docstring); `mode` (N,) indexes MODES."""

    name = "pretrain"
    feature_dim = 0

    def __init__(self, num_envs: int, curriculum: PromptCurriculum | None = None, *, teacher: bool = False,
                 gait_weight: float = 0.0, gait_drive: float = 0.0):
        super().__init__(num_envs)
        self.cur = curriculum or PromptCurriculum()
        self.use_teacher = teacher
        self.gait_weight = float(gait_weight)
        self.gait_drive = float(gait_drive)  # probability that the controller itself walks a walk prompt
        self.teacher_drive = np.zeros(num_envs, dtype=bool)
        # the rows TeacherEnv executes instead of the policy's this step (task state, so a resume keeps them)
        self.driven = np.zeros(num_envs, dtype=bool)
        self.driven_action = np.zeros((num_envs, spec.ACTION_DIM), np.float32)
        self._ik = None  # ArmIK, built on first use from the simulator's model
        self.gait = None  # GaitTeacher, built at the first reset (its state machine is snapshot for resume)
        n = self.num_envs
        self.teacher_joints = np.zeros((n, 6), dtype=np.int64)
        self.teacher_act = np.zeros((n, 6))
        self.mode = np.zeros(n, dtype=np.int64)
        self.change_at = np.zeros(n, dtype=np.int64)
        self.hand = np.full(n, R_HAND)
        self.hand_target = np.zeros((n, 3))
        self.reach_deadline = np.zeros(n)  # s: episode time at which the hand should be there
        self.walk_dir = np.zeros((n, 2))
        self.walk_speed = np.zeros(n)
        self.pelvis_height = np.full(n, 0.9)
        self.hand_dist_min = np.full(n, np.inf)  # closest approach since the last reach goal (metric)
        self.prev_hand_dist = np.full(n, np.nan)  # for the reach progress term
        self.walked = np.zeros(n, dtype=bool)  # the walking controller walked this env in the last step

    # --- goals --------------------------------------------------------------------------------
    def _sample(self, env_ids: np.ndarray, state, sim, rng: np.random.Generator) -> None:
        streams, rng = rng, rows(rng, env_ids)  # per-env streams (tasks/random.py)
        n, cur = len(env_ids), self.cur
        self.mode[env_ids] = rng.choice(len(MODES), size=n, p=np.asarray(cur.mode_probs) / sum(cur.mode_probs))
        self.change_at[env_ids] = self.progress[env_ids] + rng.integers(*cur.change_steps, size=n)
        # reach: a point around the chosen hand's side of the body, in the heading frame
        right = rng.random(n) < 0.5
        self.hand[env_ids] = np.where(right, R_HAND, L_HAND)
        side = np.where(right, -1.0, 1.0)
        ang = rng.uniform(-0.6, 1.2, n) * side  # from forward toward the hand's own side
        rad = rng.uniform(*cur.reach_radius, n)
        local = np.stack([rad * np.cos(ang), rad * np.sin(ang) + 0.18 * side, np.zeros(n)], -1)
        h = root_heading(state.select(env_ids))
        world = quat_rotate(quat_about_z(h), local) + state.pos[env_ids, PELVIS_ID]
        world[:, 2] = sim.ground_height(world[:, :2]) + rng.uniform(*cur.reach_height, n)
        hand_now = state.pos[env_ids, self.hand[env_ids]]
        alpha = rng.uniform(min(cur.reach_blend_min, cur.reach_blend), cur.reach_blend, n)[:, None]
        self.hand_target[env_ids] = hand_now + alpha * (world - hand_now)
        self.reach_deadline[env_ids] = self.progress[env_ids] * spec.CONTROL_DT + rng.uniform(*cur.reach_time, n)
        self.hand_dist_min[env_ids] = np.inf
        self.prev_hand_dist[env_ids] = np.nan
        # walk: a direction within +-90 deg of the current heading, at a curriculum speed
        self.walk_dir[env_ids] = unit_from_angle(h + rng.uniform(-np.pi / 2, np.pi / 2, n))
        self.walk_speed[env_ids] = rng.uniform(*cur.walk_speed, n)
        if self.gait_drive > 0:  # drawn last: runs without it keep their random streams
            walk = self.mode[env_ids] == MODES.index("walk")
            self.teacher_drive[env_ids] = walk & (rng.random(n) < self.gait_drive)
        if cur.reach_task_share > 0:  # drawn after that, for the same reason
            task_like = env_ids[(self.mode[env_ids] == MODES.index("reach")) & (rng.random(n) < cur.reach_task_share)]
            self.hand[task_like] = R_HAND
            pelvis_xy, r = state.pos[task_like, PELVIS_ID, :2], rows(streams, task_like)
            self.hand_target[task_like] = sample_reach_targets(r, pelvis_xy, sim.ground_height)
            # due like the reach task's prior prompt: up to 1.67 s ahead for a fresh target
            self.reach_deadline[task_like] = self.progress[task_like] * spec.CONTROL_DT + r.uniform(*PRIOR_LEAD_S,
                                                                                                   task_like.size)
        if self.use_teacher:
            self._solve_ik(env_ids[self.mode[env_ids] == MODES.index("reach")], sim)

    def _reset_goals(self, env_ids, state, sim, rng) -> None:
        self.pelvis_height[env_ids] = state.pos[env_ids, PELVIS_ID, 2]
        self.walked[env_ids] = False
        if self.use_teacher and self.gait_weight > 0:
            if self.gait is None:
                self.gait = self._gait_teacher(sim)
            self.gait.reset(env_ids)
        self._sample(env_ids, state, sim, rng)

    def _resample_due(self, state, sim, rng) -> None:
        due = np.flatnonzero(self.progress >= self.change_at)
        if due.size:
            self._sample(due, state, sim, rng)
        self._random_pushes(sim, rng)

    def _random_pushes(self, sim, rng) -> None:
        """Kick random envs (after their first second) so standing means recovering, not freezing."""
        if self.cur.push_interval_s <= 0 or not isinstance(sim, Pushable):
            return
        p = spec.CONTROL_DT / self.cur.push_interval_s
        ids = np.flatnonzero((rows(rng, np.arange(self.num_envs)).random(self.num_envs) < p)
                            & (self.progress > spec.CONTROL_HZ) & self._pushable())  # fmt: skip
        if ids.size:
            r = rows(rng, ids)
            ang = r.uniform(0, 2 * np.pi, ids.size)
            speed = r.uniform(*self.cur.push_speed, ids.size)
            sim.push(ids, speed[:, None] * np.stack([np.cos(ang), np.sin(ang), np.zeros_like(ang)], -1))

    def _pushable(self) -> np.ndarray:
        """Envs that may be kicked: not walk prompts while the walking controller teaches (it recovers from few
        pushes: 22 % of its walks stay up under 0.5 m/s kicks every ~2 s)."""
        if self.use_teacher and self.gait_weight > 0:
            return self.mode != MODES.index("walk")
        return np.ones(self.num_envs, dtype=bool)

    def _solve_ik(self, env_ids: np.ndarray, sim) -> np.ndarray:
        """Teacher actions for env_ids' current targets; returns each target's IK residual (m)."""
        if env_ids.size == 0:
            return np.zeros(0)
        if not isinstance(sim, MujocoKinematics):
            raise InputError(f"the IK reach teacher needs MuJoCo kinematics (raw_qpos); {type(sim).__name__} "
                             "has none: pretrain with teacher_coef 0 on this simulator")  # fmt: skip
        if self._ik is None:
            from tt_deploy.pretrain.reach_teacher import ArmIK

            self._ik = ArmIK(sim.hm)
        qpos = sim.raw_qpos(env_ids)
        residuals = np.zeros(len(env_ids))
        for row, e in enumerate(env_ids):
            joints, act, residuals[row] = self._ik.solve(qpos[row], spec.BODY_NAMES[self.hand[e]], self.hand_target[e])
            self.teacher_joints[e], self.teacher_act[e] = joints, act
        return residuals

    def _gait_teacher(self, sim):
        if not isinstance(sim, MujocoKinematics):
            raise InputError(f"the gait teacher needs MuJoCo's model (hm); {type(sim).__name__} has none: "
                             "pretrain with gait_weight 0 on this simulator")  # fmt: skip
        from tt_deploy.pretrain.gait_teacher import GaitTeacher

        return GaitTeacher(sim.hm, self.num_envs)

    def teacher(self, state, sim):
        """IK arm actions for reach envs (weight 1 on the prompted arm's 6 hinges), walking-controller
        leg and trunk actions for walk envs (gait_weight on each hinge), else nothing; with gait_drive,
        the walk envs where the controller's actions are executed (pure cloning of its own states)."""
        if not self.use_teacher:
            self.driven[:] = False
            return None
        n = self.num_envs
        action = np.zeros((n, spec.ACTION_DIM), np.float32)
        weight = np.zeros((n, spec.ACTION_DIM), np.float32)
        idx = np.flatnonzero(self.mode == MODES.index("reach"))
        rows_ = idx[:, None]
        action[rows_, self.teacher_joints[idx]] = self.teacher_act[idx]
        weight[rows_, self.teacher_joints[idx]] = 1.0
        if self.gait is not None and self.gait_weight > 0:  # runs every step in every env: its state machine follows
            self._restart_gait()
            joints, legs = self.gait.actions(state, sim.joint_state()[0], sim.contact_forces(), self.walk_dir,
                                             self.walk_speed)  # fmt: skip
            walk = np.flatnonzero(self.mode == MODES.index("walk"))[:, None]
            action[walk, joints] = legs[walk[:, 0]]
            weight[walk, joints] = self.gait_weight
            if self.gait_drive > 0:
                drive = self.teacher_drive & (self.mode == MODES.index("walk"))
                self.driven[:], self.driven_action[:] = drive, action
                return action, weight, drive
        self.driven[:] = False
        return action, weight

    def _restart_gait(self) -> None:
        """Once a control step, before the controller acts: an env that becomes a walk prompt after it was not
        one gets the controller's state machine afresh (first step toward the command); an env it keeps
        walking (a new walk direction) keeps its stride."""
        walking = self.mode == MODES.index("walk")
        start = walking & ~self.walked
        if start.any():
            self.gait.reset(np.flatnonzero(start))
        self.walked = walking

    # --- prompt -------------------------------------------------------------------------------
    def prior_targets(self, state, sim):
        """The prompt of every env this step (reach targets count down; walk carrots move)."""
        n = self.num_envs
        t = hidden_targets(n)
        now = self.progress * spec.CONTROL_DT
        reach = self.mode == 1
        walk = self.mode == 2
        hand_entry = np.where(self.hand == R_HAND, ENTRY["R_Hand"], ENTRY["L_Hand"])
        idx = np.flatnonzero(reach)
        t.body_pos[idx, FAR_SLOT, hand_entry[idx]] = self.hand_target[idx]
        t.visible[idx, FAR_SLOT, hand_entry[idx], 0] = True
        t.time_to_target[reach, FAR_SLOT] = np.maximum(self.reach_deadline[reach] - now[reach], spec.CONTROL_DT)
        idx = np.flatnonzero(walk)
        v = self.walk_speed[idx, None] * self.walk_dir[idx]
        carrot = state.pos[idx, PELVIS_ID, :2] + v * self.cur.walk_lookahead
        t.body_pos[idx, FAR_SLOT, ENTRY["Pelvis"]] = np.concatenate([carrot, self.pelvis_height[idx, None]], -1)
        t.visible[idx, FAR_SLOT, ENTRY["Pelvis"], 0] = True
        t.root_quat[idx, FAR_SLOT] = quat_about_z(np.arctan2(self.walk_dir[idx, 1], self.walk_dir[idx, 0]))
        t.root_lin_vel[idx, FAR_SLOT, :2] = v
        t.visible[idx, FAR_SLOT, HEADING_ENTRY] = True
        t.time_to_target[walk, FAR_SLOT] = self.cur.walk_lookahead
        t.token_mask[:, FAR_SLOT] = reach | walk
        return t

    # --- reward -------------------------------------------------------------------------------
    def features(self, state, sim) -> np.ndarray:
        return np.zeros((self.num_envs, 0))

    def hand_distance(self, state) -> np.ndarray:
        return np.linalg.norm(self.hand_target - state.pos[np.arange(self.num_envs), self.hand], axis=-1)

    def reward(self, prev_state, state, sim) -> np.ndarray:
        up = quat_rotate(state.quat[:, PELVIS_ID], np.broadcast_to([0.0, 0.0, 1.0], (self.num_envs, 3)))[:, 2]
        upright = np.clip(up, 0.0, 1.0)
        vel = root_velocity(prev_state, state)
        # idle: still and upright
        idle = 0.6 * np.exp(-4.0 * np.sum(vel[:, :2] ** 2, -1)) + 0.4 * np.exp(-np.sum(state.ang_vel[:, PELVIS_ID] ** 2, -1))
        # reach: dense + sharp proximity of the prompted hand
        d = self.hand_distance(state)
        approach = np.nan_to_num((self.prev_hand_dist - d) / spec.CONTROL_DT, nan=0.0)  # m/s toward the target
        self.prev_hand_dist = d
        reach = 0.3 * np.exp(-4.0 * d**2) + 0.4 * np.exp(-40.0 * d**2) + 0.3 * np.clip(approach, -1.0, 1.0)
        # walk: speed along d, no drift, facing d, one foot up while the other is down
        s = np.sum(vel[:, :2] * self.walk_dir, -1)
        drift = vel[:, :2] - s[:, None] * self.walk_dir
        facing_err = wrap_angle(root_heading(state) - np.arctan2(self.walk_dir[:, 1], self.walk_dir[:, 0]))
        feet_z = state.pos[:, FEET, 2]
        clearance = np.clip(np.abs(feet_z[:, 0] - feet_z[:, 1]) / 0.08, 0.0, 1.0)
        moving = np.clip(s / np.maximum(self.walk_speed, 1e-3), 0.0, 1.0)  # standing still earns little
        walk = (0.5 * np.exp(-3.0 * (self.walk_speed - s) ** 2)
                + moving * (0.2 * np.exp(-4.0 * np.sum(drift**2, -1)) + 0.15 * np.exp(-2.0 * facing_err**2)
                            + 0.15 * clearance))  # fmt: skip
        task = np.choose(self.mode, [idle, reach, walk])
        return 0.2 * upright + 0.8 * task

    def _track_success(self, prev_state, state, sim) -> None:
        reach = self.mode == 1
        self.hand_dist_min = np.where(reach, np.minimum(self.hand_dist_min, self.hand_distance(state)), self.hand_dist_min)
