"""Oracle-distilled start: DAgger a fresh task encoder toward a task oracle, through the frozen BFM, before PPO.

Each round the current encoder acts (deterministically, prior visible as in training) for `steps` control
steps of `envs` environments; every visited state is labelled by the oracle (train/oracles.py) with the
action the frozen BFM should take there; then Adam fits the encoder so that BFM(state, encoder(task obs))
matches the labels of all rounds so far (per-joint weights from the oracle). Only the encoder changes; the
BFM's hash is checked by the caller as for PPO. The rollouts are real environment steps and count toward the
run's budget.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from tt_deploy.errors import InputError
from tt_deploy.rl.runner import to_torch
from tt_deploy.spec import TASK_OBS_NAME
from tt_deploy.train.policies import TaskTokenPolicy, _bfm_inputs, drop_hidden_tokens


@dataclass(frozen=True)
class DistillConfig:
    rounds: int = 6
    envs: int = 64
    steps: int = 150  # control steps per round
    iters: int = 400  # encoder updates per round
    batch: int = 512
    lr: float = 1e-3

    def __post_init__(self):
        if min(self.rounds, self.envs, self.steps, self.iters, self.batch) < 1 or not self.lr > 0:
            raise InputError(f"oracle distillation settings must be positive; got {asdict(self)}")


def distill_encoder(policy: TaskTokenPolicy, oracle, env, cfg: DistillConfig, *, seed: int = 0,
                    evaluate=None, log=None) -> dict:
    """Run the rounds; `evaluate()` -> dict is called after each (if given), `log(row)` gets one row per round.
    Returns {"config", "oracle", "env_steps", "wall_seconds", "rounds": [...]}."""
    if env.num_envs != cfg.envs:
        raise InputError(f"distillation env has {env.num_envs} envs, config says {cfg.envs}")
    bfm, enc = policy.bfm, policy.encoder
    opt = torch.optim.Adam(enc.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(seed)
    obs_buf: dict[str, list[torch.Tensor]] = {}
    labels: list[torch.Tensor] = []
    weight = None
    rounds, env_steps, t0 = [], 0, time.perf_counter()
    step = env.reset()
    for r in range(cfg.rounds):
        enc.eval()
        for _ in range(cfg.steps):
            obs = to_torch(step)
            full = _bfm_inputs(obs, policy.input_keys)  # every slot: each minibatch drops its own hidden ones
            with torch.no_grad():
                inputs = drop_hidden_tokens(full)
                own = torch.clamp(bfm(inputs), -1, 1).numpy()  # the BFM under its prompt alone
                act = torch.clamp(bfm(inputs, enc(obs[TASK_OBS_NAME])), -1, 1).numpy()
            target, w = oracle.label(env, step, own)
            weight = torch.from_numpy(w)
            for k, v in {**full, TASK_OBS_NAME: obs[TASK_OBS_NAME]}.items():
                obs_buf.setdefault(k, []).append(v.clone())
            labels.append(torch.from_numpy(target))
            step = env.step(act)
            env_steps += env.num_envs
        data = {k: torch.cat(v) for k, v in obs_buf.items()}
        y = torch.cat(labels)
        enc.train()
        enc.norm.update(data[TASK_OBS_NAME])
        losses = []
        for _ in range(cfg.iters):
            idx = torch.randint(0, y.shape[0], (min(cfg.batch, y.shape[0]),), generator=gen)
            inputs = drop_hidden_tokens({k: v[idx] for k, v in data.items() if k != TASK_OBS_NAME})
            loss = ((bfm(inputs, enc(data[TASK_OBS_NAME][idx])) - y[idx]).pow(2) * weight).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        bfm.zero_grad(set_to_none=True)
        enc.eval()
        row = {"round": r + 1, "samples": int(y.shape[0]), "env_steps": env_steps,
               "wall_seconds": round(time.perf_counter() - t0, 2), "loss": float(np.mean(losses[-50:]))}
        if evaluate is not None:
            ev = evaluate()
            row.update({f"eval_{k}": ev[k] for k in ("success_rate", "ci_low", "ci_high", "return",
                                                     "stride_success_rate") if k in ev})
        rounds.append(row)
        if log is not None:
            log(row)
    return {"config": asdict(cfg), "oracle": oracle.describe(), "env_steps": env_steps,
            "wall_seconds": time.perf_counter() - t0, "rounds": rounds}
