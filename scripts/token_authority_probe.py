"""How much a constant task token can move the embedded BFM's walk under the direction prior: the null
token plus offsets of the given norms (default 1 and 3) along 4 random directions. Prints mean forward
speed / command and falls (32 envs x 300 control steps, bfm goals, evaluation seed).

    python scripts/token_authority_probe.py [--norms 1 3 10 30]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from tt_deploy.models.checkpoints import default_bfm
from tt_deploy.rl.runner import to_torch
from tt_deploy.tasks.base import root_velocity
from tt_deploy.train.null_token import fit_null_token
from tt_deploy.train.task_token import TrainConfig, _make_env, build_policy, resolve_goals

ENVS, STEPS = 32, 300


def speed_ratio(policy, cfg, goals, token) -> tuple[float, int, int]:
    env = _make_env(cfg, ENVS, seed=10_000, goal_kwargs=goals)
    step, prev = env.reset(), env.sim.body_state()
    ratios, falls, episodes = [], 0, 0
    for _ in range(STEPS):
        with torch.no_grad():
            action = torch.clamp(policy.joint_action(to_torch(step), token.expand(ENVS, -1)), -1, 1).numpy()
        d, speed = env.task.tar_dir.copy(), env.task.tar_speed.copy()
        step = env.step(action)
        cur = env.sim.body_state()
        ok = ~step.done & (speed > 0.05)
        ratios.append((np.sum(d * root_velocity(prev, cur)[:, :2], axis=-1) / np.maximum(speed, 1e-3))[ok])
        prev = cur
        falls += int(step.info["episode"]["fell"].sum())
        episodes += len(step.info["episode"]["env_ids"])
    return float(np.concatenate(ratios).mean()), falls, episodes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--norms", type=float, nargs="+", default=[1.0, 3.0])
    args = ap.parse_args()
    torch.set_num_threads(1)
    bfm, info = default_bfm()
    bfm.freeze()
    cfg = TrainConfig(skill="direction", prior=True, goals="bfm", nthread=1)
    goals, _ = resolve_goals(cfg, info)
    policy = build_policy(cfg, bfm, 3)
    null, _ = fit_null_token(policy, _make_env(cfg, ENVS, seed=20_000, goal_kwargs=goals))
    gen = torch.Generator().manual_seed(0)
    r = speed_ratio(policy, cfg, goals, null)
    print(f"null token: speed/command {r[0]:.3f}, falls {r[1]}/{r[2]}")
    for k in range(1, 5):
        u = torch.randn(bfm.token_dim, generator=gen)
        for norm in args.norms:
            r = speed_ratio(policy, cfg, goals, null + norm * u / u.norm())
            print(f"direction {k}, offset norm {norm}: speed/command {r[0]:.3f}, falls {r[1]}/{r[2]}")


if __name__ == "__main__":
    main()
