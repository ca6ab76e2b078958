"""The null token: the constant task token under which the frozen BFM acts as if it had no token.

Why: a task token always joins the BFM's attention, so even the zero token changes its actions
(embedded BFM, reach prior: action RMS difference 0.012 against an action RMS of 0.10, and reach success
43 -> 32 %, direction falls 9 -> 16 %). A fresh encoder whose output layer is zero except for this
bias (TaskEncoder.neutral_start) starts at prior-only's behaviour (measured 43.5 % vs 43.0 %, action
RMS difference 0.0013), so PPO improves on the prior instead of first recovering it.

The fit: states from a short prior-only rollout of the task, then Adam on one token vector minimising
the mean squared difference between BFM(state, token) and BFM(state) (no token).
"""

from __future__ import annotations

import torch

from tt_deploy.rl.runner import to_torch
from tt_deploy.tasks.env import TaskEnv
from tt_deploy.train.policies import TaskTokenPolicy, _bfm_inputs, drop_hidden_tokens


def _rollout_states(bfm, env: TaskEnv, steps: int, every: int) -> dict[str, torch.Tensor]:
    step, kept = env.reset(), []
    for t in range(steps):
        obs = to_torch(step)
        if t % every == 0:
            kept.append({k: v.clone() for k, v in obs.items()})
        with torch.no_grad():
            step = env.step(torch.clamp(bfm(obs), -1, 1).numpy())
    return {k: torch.cat([o[k] for o in kept]) for k in kept[0]}


def fit_null_token(policy: TaskTokenPolicy, env: TaskEnv, *, steps: int = 96, every: int = 3, iters: int = 200,
                   batch: int = 256, lr: float = 0.05, seed: int = 0) -> tuple[torch.Tensor, dict]:
    """(token (D,), stats) for policy.bfm on states of `env` driven by prior-only; the BFM is not changed."""
    bfm = policy.bfm
    obs = _rollout_states(bfm, env, steps, every)
    inputs = drop_hidden_tokens(_bfm_inputs(obs, policy.input_keys))
    with torch.no_grad():
        target = bfm(obs)
    n = target.shape[0]
    token = torch.zeros(bfm.token_dim, requires_grad=True)
    opt = torch.optim.Adam([token], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(iters):
        idx = torch.randint(0, n, (min(batch, n),), generator=gen)
        loss = (bfm({k: v[idx] for k, v in inputs.items()}, token.expand(len(idx), -1)) - target[idx]).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    bfm.zero_grad(set_to_none=True)
    token = token.detach()
    with torch.no_grad():
        rms = lambda x: float(x.pow(2).mean().sqrt())  # noqa: E731
        zero = bfm(inputs, torch.zeros(n, bfm.token_dim))
        fitted = bfm(inputs, token.expand(n, -1))
        stats = {"states": n, "action_rms": rms(target), "rms_diff_zero_token": rms(zero - target),
                 "rms_diff_null_token": rms(fitted - target), "norm": float(token.norm())}  # fmt: skip
    return token, stats
