"""Can a task encoder (the reference's input: the target in the heading frame, 3 numbers) learn the tokens
that make the frozen BFM reach like the arm-IK oracle? (reach, `bfm` goals)

DAgger through the frozen BFM: each round rolls the current encoder out with the prior visible, labels every
visited state with the oracle's action (scripts/reach_oracle_probe.py: the prior-only BFM's action, its right
arm moved `--blend` of the way to the IK teacher's), and trains the encoder so that BFM(state, encoder(task
obs)) matches it, the arm's 6 hinges weighted `--arm-weight`. Then the deterministic evaluation of the
training runs. If the distilled encoder gets near the oracle, PPO's search is what stalls, not the token.

    python scripts/reach_token_distill_probe.py [--rounds 6] [--episodes 64] [--json PATH]
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
from tt_deploy.spec import TASK_OBS_NAME
from tt_deploy.train.null_token import fit_null_token
from tt_deploy.train.policies import TaskTokenPolicy, _bfm_inputs, drop_hidden_tokens
from tt_deploy.train.task_token import TrainConfig, _make_env, evaluate_policy, resolve_goals


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--envs", type=int, default=64)
    ap.add_argument("--steps", type=int, default=150, help="control steps rolled out per round")
    ap.add_argument("--iters", type=int, default=400, help="encoder updates per round")
    ap.add_argument("--episodes", type=int, default=64)
    ap.add_argument("--blend", type=float, default=0.5)
    ap.add_argument("--arm-weight", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    bfm, info = resolve_bfm(None)
    bfm.freeze()
    cfg = TrainConfig(skill="reach", prior=True, goals="bfm", nthread=1)
    goals, _ = resolve_goals(cfg, info)
    env = _make_env(cfg, args.envs, seed=args.seed, goal_kwargs=goals)
    enc = TaskEncoder(EncoderConfig(obs_dim=env.task.obs_dim, token_dim=bfm.token_dim))
    policy = TaskTokenPolicy(bfm, enc, visible_groups=("obs", "historical_pose_obs", "terrain", "masked_mimic_target_poses"))
    null, _ = fit_null_token(policy, _make_env(cfg, 32, seed=20_000 + args.seed, goal_kwargs=goals), seed=args.seed)
    enc.neutral_start(null)
    ik = ArmIK(env.sim.hm)
    opt = torch.optim.Adam(enc.parameters(), lr=1e-3)
    buffer: list[tuple[dict, torch.Tensor]] = []
    weight = torch.ones(69)
    history = []
    step = env.reset()
    for r in range(args.rounds):
        enc.eval()
        for _ in range(args.steps):  # DAgger: the student acts, the oracle labels
            obs = to_torch(step)
            inputs = drop_hidden_tokens(_bfm_inputs(obs, policy.input_keys))
            with torch.no_grad():
                target = torch.clamp(bfm(inputs, null.expand(args.envs, -1)), -1, 1).numpy()
                act = torch.clamp(bfm(inputs, enc(obs[TASK_OBS_NAME])), -1, 1).numpy()
            qpos = env.sim.raw_qpos(np.arange(args.envs))
            for i in range(args.envs):
                joints, arm, _ = ik.solve(qpos[i], "R_Hand", env.task.target[i])
                target[i, joints] = args.blend * arm + (1 - args.blend) * target[i, joints]
            weight[torch.from_numpy(joints)] = args.arm_weight
            full = _bfm_inputs(obs, policy.input_keys)  # every slot: minibatches drop their own hidden ones
            buffer.append(({k: v.clone() for k, v in full.items()} | {TASK_OBS_NAME: obs[TASK_OBS_NAME].clone()},
                           torch.from_numpy(target).float()))
            step = env.step(act)
        enc.train()
        keys = list(buffer[0][0])
        data = {k: torch.cat([b[0][k] for b in buffer]) for k in keys}
        labels = torch.cat([b[1] for b in buffer])
        enc.norm.update(data[TASK_OBS_NAME])
        gen = torch.Generator().manual_seed(r)
        for _ in range(args.iters):
            idx = torch.randint(0, labels.shape[0], (512,), generator=gen)
            batch = drop_hidden_tokens({k: v[idx] for k, v in data.items() if k != TASK_OBS_NAME})
            loss = ((bfm(batch, enc(data[TASK_OBS_NAME][idx])) - labels[idx]).pow(2) * weight).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        bfm.zero_grad(set_to_none=True)
        enc.eval()
        ev = evaluate_policy(_make_env(cfg, args.episodes, seed=10_000 + args.seed, goal_kwargs=goals),
                             lambda s: torch.clamp(bfm(drop_hidden_tokens(_bfm_inputs(to_torch(s), policy.input_keys)),
                                                       enc(to_torch(s)[TASK_OBS_NAME])), -1, 1).numpy())
        history.append({"round": r + 1, "samples": int(labels.shape[0]), "loss": float(loss), **ev})
        print(f"round {r + 1}: {labels.shape[0]} samples, weighted loss {float(loss):.5f}, success "
              f"{100 * ev['success_rate']:.1f} % of {ev['segments']} ({100 * ev['ci_low']:.1f}-{100 * ev['ci_high']:.1f}), "
              f"falls {100 * ev['fall_rate']:.1f} %", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(history, f, indent=2)


if __name__ == "__main__":
    main()
