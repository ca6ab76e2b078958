"""BFM pretraining: PPO on random sparse prompts (see pretrain_task), the BFM itself as the actor.

Recipe (documented in docs/bfm_card.md): the `small` BFM starts as a statue (decoder output layer
scaled by 0.01 so zero actions hold the rest pose, which stands), a small fixed exploration std
and a fixed learning rate (DESIGN.md section 8: large or learned stds never learned to stand on
these machines; a KL-adaptive rate collapsed), and a prompt mix of idle / reach / walk.
Checkpoints: <out>/checkpoints/last.safetensors (the BFM, loadable by `load_bfm`) and
last_state.pt (critic + optimiser + counters, for --resume).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

from tt_deploy.models.bfm import BFM, count_parameters
from tt_deploy.models.checkpoints import load_bfm, save_bfm
from tt_deploy.models.config import bfm_config
from tt_deploy.pretrain.policy import PretrainPolicy
from tt_deploy.pretrain.prompt_task import MODES, PromptCurriculum, PromptTask
from tt_deploy.pretrain.teacher_env import ClonePPO, TeacherEnv
from tt_deploy.rl.config import PPOConfig
from tt_deploy.rl.runner import OnPolicyRunner
from tt_deploy.sim.perturbations import friction_range, friction_spread

log = logging.getLogger(__name__)
# v1: idle/reach/walk prompts; v2 (from 1.1 M steps of the shipped run): reach-distance curriculum,
# reach progress term, walk reward that pays little for standing still; v3: an IK teacher for the
# prompted arm (behaviour cloning beside PPO, pretrain/reach_teacher.py) and more reach prompts;
# v3.1: more idle prompts and harder, more frequent pushes, teacher weight 20 (1.3 M steps: pushes 67 %, reach
# 63 -> 54 %: dropped); v4: a SIMBICON-style walking controller labels the legs and trunk of walk prompts
# (pretrain/gait_teacher.py) at 0.1 a hinge (0.5 made every prompt fall within 12 iterations), more walk prompts,
# v3.1's pushes, teacher weight back to 50, 10 critic-only iterations first (warm starts began with KL ~3);
# the controller itself walks half of the walk prompts (cloned on its own states, no policy gradient there):
# with the BFM walking them all (DAgger only) it fell more and more and walked backwards, with half of them
# (0.5) as well; the shipped v4 lets the controller walk all of them (1.0); no pushes in walk prompts
# v5 follows v4 with a supervised DAgger stage (pretrain/dagger.py, `ttdeploy pretrain-dagger`), not with PPO:
# PPO's std 0.03 alone makes even the controller fall, and std 0.005 gave approx KL 65-250 (walks backwards)
RECIPE_VERSION = "tt-deploy prompt PPO v4"


@dataclass(frozen=True)
class PretrainConfig:
    """What `ttdeploy pretrain` runs. Defaults are sized for 2 CPU cores."""

    config: str = "small"
    num_envs: int = 256
    steps: int = 20_000_000
    seed: int = 0
    episode_seconds: float = 10.0
    nthread: int = 2
    ppo: PPOConfig = PPOConfig(horizon=32, num_minibatches=4, epochs=3, actor_lr=1e-4, critic_lr=3e-4,
                               max_grad_norm=1.0, action_std=0.03, bound_coef=10.0, critic_warmup=10)  # fmt: skip
    curriculum: PromptCurriculum = PromptCurriculum(mode_probs=(0.3, 0.35, 0.35), push_interval_s=3.0,
                                                    push_speed=(0.2, 0.8))  # fmt: skip
    teacher_coef: float = 50.0  # weight of the teachers' behaviour-cloning loss (0 = PPO only)
    gait_drive: float = 1.0  # share of walk prompts the controller itself walks (cloned, no policy gradient)
    gait_weight: float = 0.1  # per leg/trunk hinge in walk prompts (reach teacher: 1 per arm hinge); 0 = none
    checkpoint_every: int = 10  # iterations
    friction: tuple[float, float] = (1.0, 1.0)  # per-env ground friction multipliers, log-spaced LOW..HIGH

    def __post_init__(self):
        friction_range(self.friction, "pretrain")  # a bad range fails here, before any env is built


def statue_init(bfm: BFM) -> BFM:
    """Scale the decoder's output layer so the untrained BFM outputs ~0 (the standing rest pose)."""
    with torch.no_grad():
        last = bfm.decoder[-1]
        last.weight.mul_(0.01)
        last.bias.zero_()
    return bfm


def _save(runner: OnPolicyRunner, tag: str) -> None:
    info = {"recipe": RECIPE_VERSION, "env_steps": runner.env_steps, "iterations": runner.iteration,
            "wall_seconds": round(runner.wall_seconds, 1), **getattr(runner, "init_cost", {})}  # fmt: skip
    if getattr(runner, "friction", (1.0, 1.0)) != (1.0, 1.0):  # trained on a friction range: say so
        info["friction"] = list(runner.friction)
    save_bfm(runner.policy.bfm, runner.out_dir / "checkpoints" / f"{tag}.safetensors", info=info)


def reach_blend_at(env_steps: int) -> float:
    """Reach-distance curriculum: targets start near the hand and reach the full range by 1 M steps."""
    return float(min(1.0, 0.3 + 0.7 * env_steps / 1e6))


def _mode_metrics(runner: OnPolicyRunner) -> dict[str, float]:
    """Per-iteration hook: advance the curriculum and log per-mode progress."""
    task: PromptTask = runner.env.task
    total = runner.env_steps + getattr(runner, "init_cost", {}).get("init_env_steps", 0)  # warm starts count
    task.cur = replace(task.cur, reach_blend=reach_blend_at(total))
    state = runner.env.sim.body_state()
    out = {}
    reach = task.mode == MODES.index("reach")
    out["reach_hand_dist"] = float(task.hand_distance(state)[reach].mean()) if reach.any() else float("nan")
    walk = task.mode == MODES.index("walk")
    vel = state.lin_vel[:, 0, :2]
    s = np.sum(vel * task.walk_dir, -1)
    out["walk_speed_along"] = float(s[walk].mean()) if walk.any() else float("nan")
    out["walk_speed_cmd"] = float(task.walk_speed[walk].mean()) if walk.any() else float("nan")
    own = walk & ~task.teacher_drive  # walked by the BFM itself
    out["walk_speed_own"] = float(s[own].mean()) if own.any() else float("nan")
    out["reach_blend"] = task.cur.reach_blend
    return out


def build_runner(cfg: PretrainConfig, out_dir: Path, *, init_bfm: Path | None = None) -> OnPolicyRunner:
    from tt_deploy.sim.mujoco_backend import MujocoSimulator

    torch.manual_seed(cfg.seed)
    init_cost = {}
    if init_bfm is not None:
        bfm, info = load_bfm(init_bfm)
        # total cost so far, so the model card of a warm-started BFM counts every step it took
        init_cost = {f"init_{k}": (info.get(k) or 0) + (info.get(f"init_{k}") or 0) for k in ("env_steps", "wall_seconds")}
    else:
        bfm = statue_init(BFM(bfm_config(cfg.config)))
    bfm.train()
    for p in bfm.parameters():
        p.requires_grad_(True)
    sim = MujocoSimulator(cfg.num_envs, nthread=cfg.nthread, seed=cfg.seed,
                          perturbation=friction_spread(cfg.num_envs, *cfg.friction))  # fmt: skip
    task = PromptTask(cfg.num_envs, cfg.curriculum, teacher=cfg.teacher_coef > 0, gait_weight=cfg.gait_weight,
                      gait_drive=cfg.gait_drive)  # fmt: skip
    env = TeacherEnv(sim, task, episode_seconds=cfg.episode_seconds, seed=cfg.seed)
    policy = PretrainPolicy(bfm)
    log.info("pretraining a %s BFM (%d params) on %d envs", cfg.config, count_parameters(bfm), cfg.num_envs)
    runner = OnPolicyRunner(env, policy, cfg.ppo, out_dir, seed=cfg.seed, checkpoint_every=cfg.checkpoint_every,
                            save_fn=_save, extra_log=_mode_metrics,
                            algorithm=partial(ClonePPO, coef=cfg.teacher_coef))
    runner.init_cost = init_cost
    runner.friction = tuple(cfg.friction)
    return runner


def pretrain(cfg: PretrainConfig, out_dir: str | Path, *, resume: bool = False, init_bfm: Path | None = None,
             progress=None) -> dict:
    """Run (or resume) BFM pretraining; returns the runner summary."""
    out_dir = Path(out_dir)
    runner = build_runner(cfg, out_dir, init_bfm=init_bfm)
    if resume:
        if runner.resume():
            _after_resume(runner, cfg)
        else:
            log.warning("--resume: no checkpoint in %s, starting fresh", out_dir)
    return runner.learn(cfg.steps, progress=progress)


def _after_resume(runner: OnPolicyRunner, cfg: PretrainConfig) -> None:
    """Settings come from this invocation, costs from the run itself (not from the env snapshot or
    whatever the --init-bfm file holds now)."""
    runner.env.task.use_teacher = cfg.teacher_coef > 0
    runner.env.task.gait_weight = cfg.gait_weight
    runner.env.task.gait_drive = cfg.gait_drive
    last = runner.out_dir / "checkpoints" / "last.safetensors"
    if last.is_file():
        _, info = load_bfm(last)
        runner.init_cost = {k: info[k] for k in ("init_env_steps", "init_wall_seconds") if k in info}


def with_overrides(cfg: PretrainConfig, **kw) -> PretrainConfig:
    return replace(cfg, **{k: v for k, v in kw.items() if v is not None})
