"""What every probe script starts from: the embedded BFM, frozen, and the evaluation episodes of a training run
(`bfm` goals, the prior prompt fed), so a probe's numbers line up with docs/results.md."""

from __future__ import annotations

import torch

from tt_deploy.models.checkpoints import resolve_bfm
from tt_deploy.rl.runner import to_torch
from tt_deploy.train.task_token import TrainConfig, resolve_goals


def probe_setup(skill: str, episodes: int):
    """(frozen BFM, prior-only TrainConfig, goal kwargs, prior-only action function) for `skill`."""
    torch.set_num_threads(1)
    bfm, info = resolve_bfm(None)
    bfm.freeze()
    cfg = TrainConfig(skill=skill, method="prior-only", goals="bfm", eval_envs=episodes, nthread=1)
    goal_kwargs, _ = resolve_goals(cfg, info)

    def prior_only(step):
        return torch.clamp(bfm(to_torch(step)), -1, 1).numpy()

    return bfm, cfg, goal_kwargs, prior_only
