"""PPO's settings, torch-free: the CLI reads their defaults without importing torch (`ttdeploy --help` stays fast)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PPOConfig:
    """PPO settings. Reference (1024 envs, GPU) values in comments; defaults are CPU-scaled."""

    horizon: int = 32  # ref 32
    num_minibatches: int = 4  # ref: minibatch 4096 of 32768
    epochs: int = 5  # ref 6
    gamma: float = 0.99
    lam: float = 0.95
    clip: float = 0.2
    actor_lr: float = 2e-5  # ref 2e-5 (task encoder)
    critic_lr: float = 1e-4  # ref 1e-4
    critic_warmup: int = 0  # first iterations train only the critic (a warm-started actor's fresh critic
    # otherwise turns noise advantages into KL ~3 updates: measured on warm-started pretraining)
    max_grad_norm: float = 50.0  # ref 50
    action_std: float = math.exp(-2.9)  # ref fixed exp(-2.9) ~ 0.055 (the std of whatever PPO samples)
    value_coef: float = 1.0
    bound_coef: float = 10.0  # penalty on action means beyond [-1, 1]
