"""Can a task encoder that also sees the body's proprioception carry what finetuning the whole BFM found?
(direction or steering, `bfm` goals, prior visible)

The reference's encoder sees only the goal (direction: its direction in the heading frame and the speed, 3
numbers). Distilled toward the finetuned BFM, such an encoder removes only a quarter of the action gap
(docs/diagnostics.md): finetuning changes the gait phase by phase, and a goal-only token cannot follow the
phase. This probe gives the encoder the BFM's own self observation as well (the 358 numbers of `obs`,
appended to the task observation) and runs the same DAgger distillation as `ttdeploy train --oracle-policy`
(train/distill.py: 6 rounds of 64 envs x 150 steps, 400 Adam steps a round), then the deterministic
evaluation of the training runs (64 episodes, evaluation seed 10000 + seed) after every round.
`--input tokens` is the upper bound of any encoder: no encoder, every control step Adam fits each env's own
token (warm-started at its previous one) so that BFM(state, token) matches the finetuned BFM's action.

    python scripts/state_encoder_probe.py --oracle-policy results/bfm/finetune/seed0/direction \
        [--input state|goal|tokens] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from tt_deploy.models.checkpoints import resolve_bfm
from tt_deploy.models.config import EncoderConfig
from tt_deploy.models.task_encoder import TaskEncoder
from tt_deploy.rl.runner import to_torch
from tt_deploy.spec import SELF_OBS_DIM
from tt_deploy.train.distill import DistillConfig, distill_encoder
from tt_deploy.train.null_token import fit_null_token
from tt_deploy.train.oracles import PolicyOracle
from tt_deploy.train.policies import TaskTokenPolicy, _bfm_inputs, drop_hidden_tokens
from tt_deploy.train.task_token import TrainConfig, _make_env, evaluate_policy, resolve_goals


class WithSelfObs:
    """A TaskEnv whose task observation is [task features, self obs]: the encoder's wider input."""

    def __init__(self, env):
        self.env = env

    def __getattr__(self, name):
        return getattr(self.env, name)

    def _widen(self, step):
        return replace(step, task_obs=np.concatenate([step.task_obs, step.inputs["obs"]], axis=-1).astype(np.float32))

    def reset(self, *a, **kw):
        return self._widen(self.env.reset(*a, **kw))

    def step(self, actions):
        return self._widen(self.env.step(actions))


class GoalOnlyOracle:
    """The finetuned policy was trained on the goal-only task observation: hand it just those columns."""

    def __init__(self, oracle: PolicyOracle, width: int):
        self.oracle, self.width = oracle, width

    def describe(self):
        return self.oracle.describe()

    def label(self, env, step, base_action):
        return self.oracle.label(env, replace(step, task_obs=step.task_obs[:, : self.width]), base_action)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--oracle-policy", required=True, help="a finetune run directory (its best policy)")
    ap.add_argument("--input", choices=("state", "goal", "tokens"), default="state",
                    help="state: goal + self obs (this probe); goal: the reference's goal-only input (control); "
                         "tokens: a token fitted per env and step (the upper bound)")
    ap.add_argument("--token-iters", type=int, default=20, help="--input tokens: Adam steps a control step")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--iters", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    skill = json.loads(Path(args.oracle_policy, "run.json").read_text())["config"]["skill"]
    oracle = PolicyOracle(args.oracle_policy, skill=skill)
    bfm, info = resolve_bfm(None)
    bfm.freeze()
    cfg = TrainConfig(skill=skill, prior=True, goals="bfm", nthread=1, seed=args.seed)
    goals, _ = resolve_goals(cfg, info)
    wrap = WithSelfObs if args.input == "state" else (lambda e: e)

    def make(n, seed):
        return wrap(_make_env(cfg, n, seed=seed, goal_kwargs=goals))

    dcfg = DistillConfig(rounds=args.rounds, iters=args.iters)
    env = make(dcfg.envs, 30_000 + args.seed)
    width = env.env.task.obs_dim if args.input == "state" else env.task.obs_dim
    enc = TaskEncoder(EncoderConfig(obs_dim=width + (SELF_OBS_DIM if args.input == "state" else 0),
                                    token_dim=bfm.token_dim))
    policy = TaskTokenPolicy(bfm, enc, visible_groups=("obs", "historical_pose_obs", "terrain",
                                                       "masked_mimic_target_poses"))
    null, _ = fit_null_token(policy, make(32, 20_000 + args.seed), seed=args.seed)
    enc.neutral_start(null)

    def evaluate():
        policy.eval()
        return evaluate_policy(make(64, 10_000 + args.seed), lambda s: policy.act_deterministic(to_torch(s)).numpy())

    if args.input == "tokens":
        return per_state_tokens(policy, oracle, make(64, 10_000 + args.seed), null, args)
    t0 = time.perf_counter()
    base = evaluate()
    print(f"null token: success {base['success_rate']:.3f}, stride {base['stride_success_rate']:.3f}, "
          f"falls {base['fall_rate']:.3f}", flush=True)

    def log(row):
        print(f"round {row['round']}: loss {row['loss']:.3e}, success {row['eval_success_rate']:.3f}, "
              f"stride {row['eval_stride_success_rate']:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)

    out = distill_encoder(policy, GoalOnlyOracle(oracle, width), env, dcfg, seed=args.seed, evaluate=evaluate, log=log)
    final = evaluate()
    result = {"skill": skill, "input": args.input, "encoder_obs_dim": enc.config.obs_dim,
              "trainable_params": sum(p.numel() for p in enc.parameters()), "null_token_eval": base,
              "distill": out, "final_eval": final}
    print(json.dumps({k: v for k, v in result.items() if k != "distill"}, indent=1, default=float))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=float))


def per_state_tokens(policy, oracle, env, null, args) -> None:
    """Act with per-env tokens refitted every step toward the oracle's action; report success and action MSE."""
    bfm, n = policy.bfm, env.num_envs
    tokens = null.expand(n, -1).clone()
    prev = np.full(n, 10**9)
    stats = {"mse_null": [], "mse_fitted": [], "token_dist": []}

    def act(step):
        nonlocal tokens, prev
        progress = env.steps.copy()
        tokens[torch.from_numpy(progress < prev)] = null  # a new episode restarts at the null token
        prev = progress
        inputs = drop_hidden_tokens(_bfm_inputs(to_torch(step), policy.input_keys))
        target = torch.from_numpy(oracle.label(env, step, None)[0])
        with torch.enable_grad():  # evaluate_policy runs under no_grad
            tok = tokens.clone().requires_grad_(True)
            opt = torch.optim.Adam([tok], lr=0.05)
            for _ in range(args.token_iters):
                loss = (bfm(inputs, tok) - target).pow(2).mean(-1).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        bfm.zero_grad(set_to_none=True)
        tokens = tok.detach()
        out = bfm(inputs, tokens)
        stats["mse_fitted"].append(float((out - target).pow(2).mean()))
        stats["mse_null"].append(float((bfm(inputs, null.expand(n, -1)) - target).pow(2).mean()))
        stats["token_dist"].append(float((tokens - null).norm(dim=-1).mean()))
        return torch.clamp(out, -1, 1).numpy()

    res = evaluate_policy(env, act)
    res.update({k: float(np.mean(v)) for k, v in stats.items()}, null_norm=float(null.norm()), input="tokens",
               token_iters=args.token_iters)
    print(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
