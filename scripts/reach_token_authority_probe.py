"""Can a task token make the frozen BFM do what the arm-IK oracle does? (reach, `bfm` goals)

scripts/reach_oracle_probe.py shows the ceiling of an arm-only correction: the prior-only BFM with its
right arm moved halfway to the IK teacher's arm passes ~80 % of reach segments (prior-only ~43 %).
This probe asks whether the token can express that correction at all: every control step, for each env,
Adam fits that env's own token (warm-started at its previous one, the null token at reset) so that
BFM(state, token) matches the oracle's action, then acts with it. If it reaches the oracle's success,
the token has the authority and an encoder that maps the state to that token is what is missing.

    python scripts/reach_token_authority_probe.py [--episodes 64] [--iters 20] [--blend 0.5]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from tt_deploy.models.checkpoints import resolve_bfm
from tt_deploy.models.config import EncoderConfig
from tt_deploy.models.task_encoder import TaskEncoder
from tt_deploy.rl.runner import to_torch
from tt_deploy.sim.arm_ik import ArmIK
from tt_deploy.train.null_token import fit_null_token
from tt_deploy.train.policies import TaskTokenPolicy, _bfm_inputs, drop_hidden_tokens
from tt_deploy.train.task_token import TrainConfig, _make_env, evaluate_policy, resolve_goals


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--blend", type=float, default=0.5)
    ap.add_argument("--hide-prompt", action="store_true",
                    help="the token alone (prior prompt hidden from the BFM) must produce the oracle's action")
    ap.add_argument("--arm-weight", type=float, default=1.0,
                    help="weight of the right arm's 6 hinges in the fit (the other joints weigh 1)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    bfm, info = resolve_bfm(None)
    bfm.freeze()
    cfg = TrainConfig(skill="reach", method="task-token", prior=True, goals="bfm", eval_envs=args.episodes, nthread=1)
    goal_kwargs, _ = resolve_goals(cfg, info)
    env = _make_env(cfg, args.episodes, seed=10_000 + args.seed, goal_kwargs=goal_kwargs)
    enc = TaskEncoder(EncoderConfig(obs_dim=env.task.obs_dim, token_dim=bfm.token_dim))
    policy = TaskTokenPolicy(bfm, enc, visible_groups=("obs", "historical_pose_obs", "terrain", "masked_mimic_target_poses"))
    null, _ = fit_null_token(policy, _make_env(cfg, 32, seed=20_000 + args.seed, goal_kwargs=goal_kwargs), seed=args.seed)
    ik = ArmIK(env.sim.hm)
    hidden_keys = tuple(k for k in policy.input_keys if not k.startswith("masked_mimic_target_poses"))
    tokens = null.expand(args.episodes, -1).clone()
    stats = {"mse_null": [], "mse_fitted": [], "token_dist": []}
    prev_progress = np.full(args.episodes, 10**9)

    def act(step):
        nonlocal tokens, prev_progress
        obs = to_torch(step)
        progress = env.steps.copy()
        if progress is not None:
            tokens[torch.from_numpy(progress < prev_progress)] = null  # a new episode restarts at the null token
            prev_progress = progress.copy()
        inputs = drop_hidden_tokens(_bfm_inputs(obs, policy.input_keys))
        with torch.no_grad():
            target = torch.clamp(bfm(inputs, null.expand(args.episodes, -1)), -1, 1).numpy()
        if args.hide_prompt:
            inputs = drop_hidden_tokens(_bfm_inputs(obs, hidden_keys))
        qpos = env.sim.raw_qpos(np.arange(args.episodes))
        for i in range(args.episodes):
            joints, arm, _ = ik.solve(qpos[i], "R_Hand", env.task.target[i])
            target[i, joints] = args.blend * arm + (1 - args.blend) * target[i, joints]
        target_t = torch.from_numpy(target).float()
        weight = torch.ones(target.shape[1])
        weight[torch.from_numpy(joints)] = args.arm_weight
        with torch.enable_grad():  # evaluate_policy runs under no_grad
            tok = tokens.clone().requires_grad_(True)
            opt = torch.optim.Adam([tok], lr=args.lr)
            for _ in range(args.iters):
                loss = ((bfm(inputs, tok) - target_t).pow(2) * weight).mean(-1).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        bfm.zero_grad(set_to_none=True)
        tokens = tok.detach()
        with torch.no_grad():
            out = bfm(inputs, tokens)
            stats["mse_fitted"].append(float((out - target_t).pow(2).mean()))
            stats["mse_null"].append(float((bfm(inputs, null.expand(args.episodes, -1)) - target_t).pow(2).mean()))
            stats["token_dist"].append(float((tokens - null).norm(dim=-1).mean()))
        return torch.clamp(out, -1, 1).numpy()

    res = evaluate_policy(env, act)
    res.update({k: float(np.mean(v)) for k, v in stats.items()}, null_norm=float(null.norm()))
    print(f"fitted tokens: success {100 * res['success_rate']:.1f} % of {res['segments']} segments "
          f"({100 * res['ci_low']:.1f}-{100 * res['ci_high']:.1f}), falls {100 * res['fall_rate']:.1f} %, "
          f"action MSE to the oracle {res['mse_fitted']:.5f} (null token {res['mse_null']:.5f}), "
          f"mean |token - null| {res['token_dist']:.2f} (|null| {res['null_norm']:.2f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
