"""The strike expert for the next BFM: a bounded residual on an arm-IK push, trained with PPO.

Why this base: standing still with the right arm on the IK posture for a point just past the pillar's near face
(`PushScript`) topples the 15 kg pillar in 64 of 64 starts with its centre 0.5 m in front of the pelvis, 61 of
64 at 0.6 m, and none at 0.7 m, where the hand no longer reaches (`ttdeploy pretrain-expert strike`'s own
`measure_strikes` with the residual at 0; docs/training.md). The BFM stops ~1 m short of the pillar and at any
bearing, so the expert must learn the lean or the step that brings the push within reach, from wherever the
walker stops; the residual starts at 0, so the run starts as the push.

Episode: a standing start (the reset pose, facing +x) with the pillar placed at a random distance and bearing
(`Placement`), 3 s long; it ends early on the reference's illegal contact (a body other than the feet and the
right arm touching anything while the pillar is touched: tasks/strike.py) or on the reference fall rule.
Reward per control step:
    topple_reward                        the reference strike reward's topple part (tasks/strike.py)
  - rate_w * mean over the residual's joints of ((residual_t - residual_{t-1}) / residual_rad)^2
  - fail_w                               at a fall or an illegal contact (before the pillar falls the topple
                                         part pays ~0, so ending early would cost nothing)
Success: the pillar toppled at the episode's end, with the body up (a fall voids it).

Stop rule: at `at_steps`, 64 placements must succeed >= min_success with falls <= max_falls; otherwise the run
stops there and the design changes before more compute (stop_rule.json).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tt_deploy import spec
from tt_deploy.errors import InputError
from tt_deploy.obs.rotations import quat_about_z
from tt_deploy.obs.state import RigidState
from tt_deploy.pretrain.residual_expert import (
    ResidualPolicy,
    check_expert_sizes,
    expert_ppo,
    expert_runner,
    policy_actor,
    record_residual,
    residual_joint_ids,
    residual_rate,
    train_with_stop_rule,
)
from tt_deploy.rl.config import PPOConfig
from tt_deploy.rl.runner import OnPolicyRunner, to_torch
from tt_deploy.spec import ACTION_DIM, TASK_OBS_NAME
from tt_deploy.tasks.base import PELVIS_ID
from tt_deploy.tasks.env import EnvStep, TaskEnv
from tt_deploy.tasks.random import rows
from tt_deploy.tasks.strike import OBJECT, StrikeTask, target_up_z, topple_reward

log = logging.getLogger(__name__)

RECIPE_VERSION = "tt-deploy strike expert"  # + the design name (DESIGNS)
SECONDS = 3.0
PILLAR_HALF_WIDTH = 0.15  # m (sim/humanoid_model.py STRIKE_TARGET_HALF_SIZE)
CLOCK_DIM = 1  # t / SECONDS
BASE_AT = StrikeTask.feature_dim + CLOCK_DIM
TASK_DIM = BASE_AT + ACTION_DIM  # strike features (15), clock, the push's action row (69)
HAND = "R_Hand"


@dataclass(frozen=True)
class PushScript:
    """The base motion: stand, and move the right arm to the IK posture for a point `depth` past the pillar's
    near face at `height`, on the line from the right shoulder to the pillar's centre, blended in linearly
    from start_s over ramp_s. The posture is solved once per episode at the reset (the pillar stands still
    until it is touched), so the base costs one IK solve an episode, not one a step."""

    height: float = 1.3  # m above the ground (the pillar is 1.8 m tall: higher pushes topple with less force)
    depth: float = 0.1  # m past the face: the PD presses into the pillar
    start_s: float = 0.2
    ramp_s: float = 0.5


@dataclass(frozen=True)
class Placement:
    """Pillar centre at distance U(distance) m from the pelvis in the ground plane, at bearing U(bearing) rad
    from the start heading (negative: to the right, the striking arm's side), with a uniform random yaw."""

    distance: tuple[float, float] = (0.45, 0.9)
    bearing: tuple[float, float] = (-0.7, 0.2)


@dataclass(frozen=True)
class StrikeReward:
    rate_w: float = 0.05
    fail_w: float = 10.0


@dataclass(frozen=True)
class StrikeStopRule:
    at_steps: int = 2_000_000
    min_success: float = 0.7
    max_falls: float = 0.1
    envs: int = 64

    def verdict(self, row: dict) -> dict:
        ok = row["success"] >= self.min_success and row["fall_rate"] <= self.max_falls
        return {"passed": bool(ok), "rule": asdict(self), "rows": [row]}


@dataclass(frozen=True)
class StrikeConfig:
    """What `ttdeploy pretrain-expert strike` runs; sized for 2 CPU cores."""

    design: str = "v1"
    init_policy: str | None = None
    num_envs: int = 256
    steps: int = 4_000_000
    seed: int = 0
    nthread: int = 2
    residual_rad: float = 0.3
    hidden: tuple[int, ...] = (256, 256)
    push: PushScript = PushScript()
    placement: Placement = Placement()
    reward: StrikeReward = StrikeReward()
    ppo: PPOConfig = field(default_factory=lambda: expert_ppo(action_std=0.02))
    checkpoint_every: int = 10
    eval_every: int = 50  # iterations between strike measurements in log.csv
    stop_rule: StrikeStopRule = field(default_factory=StrikeStopRule)

    def __post_init__(self):
        check_expert_sizes(self)
        lo, hi = self.placement.distance
        if not PILLAR_HALF_WIDTH * 2 < lo <= hi:
            raise InputError(f"placement distance must be {2 * PILLAR_HALF_WIDTH} < LOW <= HIGH m, got {(lo, hi)}")


DESIGNS: dict[str, StrikeConfig] = {"v1": StrikeConfig()}


class StrikeExpertTask(StrikeTask):
    """The strike task placed next to a standing start, with the push's clock and action row as observation."""

    name = "strike_expert"
    feature_dim = TASK_DIM
    feature_names = (*StrikeTask.feature_names, "t / 3 s [1]: the push's clock",
                     *(f"push_action_{j} [1]: the arm-IK push's action" for j in spec.JOINT_NAMES))  # fmt: skip
    fall_voids_success = True  # the expert must stay up to be worth distilling

    def __init__(self, num_envs: int, hm, cfg: StrikeConfig):
        super().__init__(num_envs)
        from tt_deploy.sim.arm_ik import ArmIK, arm_joint_ids

        self.push, self.placement, self.weights = cfg.push, cfg.placement, cfg.reward
        self.residual_rad = float(cfg.residual_rad)
        self.ik = ArmIK(hm)
        self.arm_ids = arm_joint_ids(HAND)
        self.arm_ids.flags.writeable = False
        stand = np.clip(-np.asarray(hm.pd_offset) / np.asarray(hm.pd_scale), -spec.ACTION_CLAMP, spec.ACTION_CLAMP)
        self.stand = stand.astype(np.float32)
        self.stand.flags.writeable = False  # a constant: snapshots skip it
        self.pd_scale = np.asarray(hm.pd_scale, np.float64)
        self.pd_scale.flags.writeable = False
        self.residual_ids = residual_joint_ids()
        self.residual_ids.flags.writeable = False
        self._shoulder = spec.BODY_NAMES.index("R_Shoulder")
        self.arm_goal = np.tile(self.stand[self.arm_ids], (num_envs, 1))  # the IK posture of each episode
        self.base_action = np.tile(self.stand, (num_envs, 1))
        self.residual = np.zeros((num_envs, ACTION_DIM), np.float32)
        self.prev_residual = np.zeros((num_envs, ACTION_DIM), np.float32)
        self.terms = {k: np.zeros(num_envs) for k in ("topple", "rate")}

    def _reset_goals(self, env_ids, state, sim, rng) -> None:
        r = rows(rng, env_ids)
        n = len(env_ids)
        dist = r.uniform(*self.placement.distance, n)
        bearing = r.uniform(*self.placement.bearing, n)
        xy = state.pos[env_ids, PELVIS_ID, :2] + dist[:, None] * np.stack([np.cos(bearing), np.sin(bearing)], -1)
        centre = np.concatenate([xy, (sim.ground_height(xy) + self.target_height)[:, None]], -1)
        zeros = np.zeros((n, 3))
        sim.set_object_state(OBJECT, env_ids, RigidState(pos=centre, quat=quat_about_z(r.uniform(0, 2 * np.pi, n)),
                                                         lin_vel=zeros, ang_vel=zeros.copy()))  # fmt: skip
        self._toppled[env_ids] = False
        self.residual[env_ids] = self.prev_residual[env_ids] = 0.0
        qpos = sim.raw_qpos(env_ids)
        shoulder = state.pos[env_ids, self._shoulder, :2]
        for i, env in enumerate(env_ids):
            self.arm_goal[env] = self.ik.solve(qpos[i], HAND, self.push_point(centre[i], shoulder[i]))[1]

    def push_point(self, centre: np.ndarray, shoulder_xy: np.ndarray) -> np.ndarray:
        """(3,) the IK point: `depth` past the pillar's near face, on the shoulder-to-centre line, at `height`."""
        u = centre[:2] - shoulder_xy
        u = u / max(float(np.linalg.norm(u)), 1e-9)
        xy = centre[:2] - (PILLAR_HALF_WIDTH - self.push.depth) * u
        return np.array([xy[0], xy[1], centre[2] - self.target_height + self.push.height])

    def features(self, state, sim) -> np.ndarray:
        t = self.progress * spec.CONTROL_DT
        w = np.clip((t - self.push.start_s) / self.push.ramp_s, 0.0, 1.0)[:, None]
        self.base_action[:] = self.stand
        self.base_action[:, self.arm_ids] = (1 - w) * self.stand[self.arm_ids] + w * self.arm_goal
        clock = (t / SECONDS)[:, None]
        return np.concatenate([super().features(state, sim), clock, self.base_action], axis=-1)

    def reward(self, prev_state, state, sim) -> np.ndarray:
        topple = topple_reward(sim.object_state(OBJECT).quat)
        rate = residual_rate(self)
        self.terms = {"topple": topple, "rate": rate}
        return topple - self.weights.rate_w * rate


class StrikeEnv(TaskEnv):
    """TaskEnv that tells its task each action's residual and charges a fall or an illegal contact."""

    def __init__(self, sim, task: StrikeExpertTask, seed: int):
        super().__init__(sim, task, episode_seconds=SECONDS, seed=seed)

    def step(self, actions: np.ndarray) -> EnvStep:
        t: StrikeExpertTask = self.task
        record_residual(t, actions)
        out = super().step(actions)
        failed = out.info["fell"] | out.info["task_terminated"]
        out.reward[failed] -= t.weights.fail_w
        return out


class StrikePolicy(ResidualPolicy):
    """The strike expert's policy: a residual on the push's action row (task obs after the clock)."""

    def __init__(self, pd_scale: np.ndarray, residual_rad: float = 0.3, hidden=(256, 256), critic_hidden=(256, 256)):
        super().__init__(TASK_DIM, BASE_AT, pd_scale, residual_rad, hidden, critic_hidden)


def make_env(cfg: StrikeConfig, num_envs: int, seed: int) -> StrikeEnv:
    from tt_deploy.sim.mujoco_backend import MujocoSimulator

    sim = MujocoSimulator(num_envs, nthread=cfg.nthread, seed=seed, objects=(OBJECT,))
    return StrikeEnv(sim, StrikeExpertTask(num_envs, sim.hm, cfg), seed)


# --- measurement -----------------------------------------------------------------------------------------------
DISTANCE_BINS = (0.6, 0.75)  # m: near < 0.6 <= mid < 0.75 <= far


def measure_strikes(act, cfg: StrikeConfig, envs: int = 64, seed: int = 10_000) -> dict:
    """One episode per env on the config's placements: success, falls, illegal contacts, by distance.

    act(obs dict of torch tensors) -> (N, 69) numpy actions; None = the push alone (residual 0)."""
    env = make_env(cfg, envs, seed)
    step = env.reset()
    dist = np.linalg.norm(env.sim.object_state(OBJECT).pos[:, :2] - env.sim.body_state().pos[:, PELVIS_ID, :2], axis=-1)
    ended = np.zeros(envs, bool)
    success, fell, illegal, tilt = (np.zeros(envs, bool) for _ in range(4))
    for _ in range(env.max_steps):
        obs = to_torch(step)
        up = target_up_z(env.sim.object_state(OBJECT).quat)
        step = env.step(obs[TASK_OBS_NAME][:, BASE_AT:].numpy() if act is None else act(obs))
        new = step.done & ~ended  # each env's first episode only
        success[new], fell[new] = step.info["success"][new], step.info["fell"][new]
        illegal[new] = step.info["task_terminated"][new]
        tilt[new] = up[new] < np.cos(np.radians(18.0))  # tilted > 18 deg by the step before the end
        ended |= step.done
        if ended.all():
            break
    bins = np.digitize(dist, DISTANCE_BINS)
    names = (f"< {DISTANCE_BINS[0]} m", f"{DISTANCE_BINS[0]}-{DISTANCE_BINS[1]} m", f">= {DISTANCE_BINS[1]} m")
    by_distance = {names[b]: {"envs": int((bins == b).sum()), "success": float(success[bins == b].mean())}
                   for b in range(3) if (bins == b).any()}  # fmt: skip
    return {"success": float(success.mean()), "fall_rate": float(fell.mean()),
            "illegal_contact_rate": float(illegal.mean()), "tilted_not_toppled": float((tilt & ~success).mean()),
            "by_distance": by_distance, "envs": envs, "placement": asdict(cfg.placement)}  # fmt: skip


# --- training --------------------------------------------------------------------------------------------------
def _metrics(cfg: StrikeConfig):
    def extra(runner: OnPolicyRunner) -> dict:
        t: StrikeExpertTask = runner.env.task
        out = {f"r_{k}": float(np.mean(v)) for k, v in t.terms.items()}
        out["residual_abs_rad"] = float(np.abs(t.residual[:, t.residual_ids]).mean())
        if runner.iteration % cfg.eval_every == 0:
            row = measure_strikes(policy_actor(runner.policy), cfg, envs=32)
            out["eval_success"], out["eval_falls"] = row["success"], row["fall_rate"]
        return out

    return extra


def build_runner(cfg: StrikeConfig, out_dir: Path) -> OnPolicyRunner:
    return expert_runner(cfg, out_dir, make_env, StrikePolicy, RECIPE_VERSION, _metrics(cfg))


def train_strike(cfg: StrikeConfig, out_dir: str | Path, *, resume: bool = False, past_stop_rule: bool = False,
                 progress=None) -> dict:
    """Train (or resume) the strike expert; at the stop rule's step count, measure and obey it."""
    rule = cfg.stop_rule

    def measure(policy) -> dict:
        return rule.verdict(measure_strikes(policy_actor(policy), cfg, rule.envs))

    return train_with_stop_rule(cfg, out_dir, build_runner, measure, f"{RECIPE_VERSION} {cfg.design}", resume=resume,
                                past_stop_rule=past_stop_rule, progress=progress)
