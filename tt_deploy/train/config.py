"""One training run's settings and each method's PPO defaults, torch-free: `ttdeploy train` takes its option
defaults from these fields (written once, as cleanrl's `Args`), and --help never imports torch."""

from __future__ import annotations

from dataclasses import dataclass, replace

from tt_deploy.errors import InputError, UnknownNameError
from tt_deploy.rl.config import PPOConfig
from tt_deploy.tasks.goals import PRESETS

EXPLORATION = ("token", "action")  # where PPO's Gaussian lives (train/policies.TaskTokenPolicy)
METHODS = ("task-token", "finetune", "pure-rl", "prior-only")
ORACLE_CRITIC_WARMUP, ORACLE_ACTOR_LR = 20, 1e-4  # PPO after an oracle start (TrainConfig.ppo_config)


@dataclass(frozen=True)
class TrainConfig:
    """One training run. CPU defaults (reference values in comments, DESIGN.md section 4)."""

    skill: str
    method: str = "task-token"
    num_envs: int = 256  # ref 1024 on a GPU
    steps: int = 5_000_000
    seed: int = 0
    episode_seconds: float = 10.0
    encoder_hidden: tuple[int, ...] = (256, 256)  # "bigger" variant: (512, 512, 512)
    current_pose: bool = False  # +6 task-obs dims: pelvis and head xyz
    prior: bool = False  # the skill's prior prompt joins the task token
    goals: str | None = None  # goal preset (tasks/goals.py); None = bfm if the BFM has an abilities file
    explore: str | None = None  # PPO's Gaussian over: "token" (task-token default) or "action" (finetune's)
    token_std: float = 0.3  # exploration std per token dimension when explore="token"
    null_token: bool = True  # a fresh encoder starts at the fitted null token (train/null_token.py), else at 0
    oracle_start: bool = False  # then DAgger it toward the task's oracle (train/oracles.py, train/distill.py)
    oracle_rounds: int = 6
    oracle_steps: int = 150  # control steps of 64 envs per DAgger round
    oracle_policy: str | None = None  # a finished run whose best policy is the oracle (train/oracles.PolicyOracle)
    eval_every: int = 20  # iterations
    eval_envs: int = 32
    nthread: int = 2  # MuJoCo C threads (MuJoCo Warp schedules its own)
    sim: str = "mujoco"  # simulator backend (sim/registry.py): mujoco or mjwarp
    ppo: PPOConfig | None = None  # None = the method's defaults (default_ppo)

    def __post_init__(self):
        if self.method not in METHODS:
            raise UnknownNameError("training method", self.method, METHODS)
        if self.goals is not None and self.goals not in PRESETS:
            raise UnknownNameError("goal preset", self.goals, PRESETS)
        if self.explore is not None and self.explore not in EXPLORATION:
            raise UnknownNameError("exploration space", self.explore, EXPLORATION)
        if self.num_envs < 1 or self.steps < 0:
            raise InputError(f"num_envs must be >= 1 and steps >= 0, got {self.num_envs}, {self.steps}")
        if self.oracle_start and self.method not in ("task-token", "finetune"):
            raise InputError(f"--oracle-start distils into a task encoder; method {self.method!r} has none")
        if self.oracle_policy is not None and not self.oracle_start:
            raise InputError("oracle_policy names the oracle of an oracle start: set oracle_start too")
        if self.oracle_rounds < 1 or self.oracle_steps < 1:
            raise InputError(f"oracle_rounds and oracle_steps must be >= 1, got {self.oracle_rounds}, {self.oracle_steps}")


    @property
    def exploration(self) -> str | None:
        """Where PPO samples: token for task-token runs, action for finetune; None for methods without a BFM actor."""
        if self.method in ("pure-rl", "prior-only"):
            return None
        return self.explore or ("action" if self.method == "finetune" else "token")

    def ppo_config(self) -> PPOConfig:
        """The PPO settings this run uses: the method's defaults (or `ppo`), with the token std in token space.
        An oracle start keeps its encoder while a fresh critic learns (critic_warmup) and then moves it gently:
        with the defaults, PPO's first 20 iterations took a distilled reach encoder from 74 % to 56 %; at lr 3e-4
        its evaluations still fell late (seeds 1 / 2: 75 -> 63 %, 80 -> 67 %), at 1e-4 they held (73.0 % mean)."""
        base = default_ppo(self.method)
        ppo = self.ppo or base
        if self.oracle_start:  # every setting still at the method's default; an explicit one (--actor-lr) is kept
            if ppo.critic_warmup == base.critic_warmup:
                ppo = replace(ppo, critic_warmup=ORACLE_CRITIC_WARMUP)
            if ppo.actor_lr == base.actor_lr:
                ppo = replace(ppo, actor_lr=min(ppo.actor_lr, ORACLE_ACTOR_LR))
        return replace(ppo, action_std=self.token_std) if self.exploration == "token" else ppo


def default_ppo(method: str) -> PPOConfig:
    """PPO defaults per method (reference: lr 2e-5 encoder / 1e-4 critic, std exp(-2.9) = 0.055).

    task-token: encoder lr 1e-3 (a 3 M-step CPU budget, not the reference's 1e9 steps); the std is
    TrainConfig.token_std in token space (or 0.03 with --explore action). finetune: the reference's
    2e-5, since every BFM weight moves (1e-3 felled the embedded BFM in 100 % of training episodes
    within 0.7 M steps), and joint std 0.005 (0.03 fells the prior's walk in 99 % of episodes,
    0.005 in 21 %, none in 9 %: docs/training.md).
    """
    base = PPOConfig(horizon=32, num_minibatches=4, epochs=3, actor_lr=1e-3, critic_lr=1e-4, max_grad_norm=50.0,
                     action_std=0.03)  # fmt: skip
    return replace(base, actor_lr=2e-5, action_std=0.005) if method == "finetune" else base


def with_overrides(cfg: TrainConfig, **kw) -> TrainConfig:
    return replace(cfg, **{k: v for k, v in kw.items() if v is not None})
