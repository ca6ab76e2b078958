"""How much exploration noise the embedded BFM's prompted walk survives: white Gaussian noise on the
joint actions or on the task token, every control step, prior-only otherwise.

    python scripts/exploration_noise_probe.py --on action|token --std 0.03 [--skill direction] [--envs 64] [--steps 600]

Prints the episodes that ended, how many fell, and (direction) the share of measured steps within the
direction rule (|e_rel| <= 0.2). Goals: the `bfm` preset.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from tt_deploy.models.checkpoints import default_bfm
from tt_deploy.rl.runner import to_torch
from tt_deploy.tasks.base import root_velocity
from tt_deploy.tasks.direction import direction_terms
from tt_deploy.train.task_token import TrainConfig, _make_env, resolve_goals


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--on", choices=("action", "token"), default="action")
    ap.add_argument("--std", type=float, default=0.03)
    ap.add_argument("--skill", default="direction")
    ap.add_argument("--envs", type=int, default=64)
    ap.add_argument("--steps", type=int, default=600)
    args = ap.parse_args()
    torch.set_num_threads(1)
    bfm, info = default_bfm()
    bfm.freeze()
    cfg = TrainConfig(skill=args.skill, prior=True, goals="bfm", nthread=1)
    env = _make_env(cfg, args.envs, seed=123, goal_kwargs=resolve_goals(cfg, info)[0])
    task, n = env.task, args.envs
    rng = np.random.default_rng(0)
    step, prev = env.reset(), env.sim.body_state()
    episodes = falls = 0
    within: list[np.ndarray] = []
    for _ in range(args.steps):
        obs = to_torch(step)
        with torch.no_grad():
            if args.on == "token":
                token = torch.from_numpy((args.std * rng.standard_normal((n, bfm.token_dim))).astype(np.float32))
                action = torch.clamp(bfm(obs, token), -1, 1).numpy()
            else:
                action = torch.clamp(bfm(obs), -1, 1).numpy() + args.std * rng.standard_normal((n, 69))
        measuring = getattr(task, "measure_from", None)
        measuring = task.progress >= measuring if measuring is not None else None
        d, speed = getattr(task, "tar_dir", None), getattr(task, "tar_speed", None)
        d, speed = (None, None) if d is None else (d.copy(), speed.copy())
        step = env.step(action)
        cur = env.sim.body_state()
        episodes += len(step.info["episode"]["env_ids"])
        falls += int(step.info["episode"]["fell"].sum())
        if d is not None:
            ok = ~step.done & measuring & (speed > 0.05)
            within.append(np.abs(direction_terms(d, speed, root_velocity(prev, cur))["e_rel"][ok]) <= 0.2)
        prev = cur
    line = f"noise {args.std} on {args.on}: {episodes} episodes ended, {falls} fell ({falls / max(episodes, 1):.0%})"
    if within:
        line += f"; measured steps within the direction rule {np.concatenate(within).mean():.0%}"
    print(line)


if __name__ == "__main__":
    main()
