"""Rollout storage for dict observations and GAE.

Observations are dicts of tensors (BFM input groups with bool masks, task_obs, ...), stored per
key as (T, N, ...) so multi-token groups keep their shape and masks stay bool.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class RolloutStorage:
    """Fixed-horizon on-policy buffer of T steps x N environments."""

    def __init__(self, horizon: int, num_envs: int, action_dim: int):
        self.horizon, self.num_envs = horizon, num_envs
        self.obs: dict[str, torch.Tensor] = {}
        self.actions = torch.zeros(horizon, num_envs, action_dim)
        self.log_probs = torch.zeros(horizon, num_envs)
        self.values = torch.zeros(horizon, num_envs)
        self.rewards = torch.zeros(horizon, num_envs)
        self.dones = torch.zeros(horizon, num_envs)
        self.advantages = torch.zeros(horizon, num_envs)
        self.returns = torch.zeros(horizon, num_envs)
        self.step = 0

    def add(self, obs: dict[str, torch.Tensor], actions, log_probs, values, rewards, dones) -> None:
        t = self.step
        for k, v in obs.items():
            if k not in self.obs:
                self.obs[k] = torch.zeros((self.horizon, *v.shape), dtype=v.dtype)
            self.obs[k][t].copy_(v)
        self.actions[t].copy_(actions)
        self.log_probs[t].copy_(log_probs)
        self.values[t].copy_(values)
        self.rewards[t].copy_(rewards)
        self.dones[t].copy_(dones)
        self.step += 1

    def clear(self) -> None:
        self.step = 0

    def compute_gae(self, last_values: torch.Tensor, gamma: float, lam: float) -> None:
        """Generalised advantage estimation; `dones` cut the bootstrap (timeouts are folded into rewards)."""
        gae = torch.zeros(self.num_envs)
        for t in reversed(range(self.horizon)):
            next_values = last_values if t == self.horizon - 1 else self.values[t + 1]
            not_done = 1.0 - self.dones[t]
            delta = self.rewards[t] + gamma * next_values * not_done - self.values[t]
            gae = delta + gamma * lam * not_done * gae
            self.advantages[t] = gae
        self.returns = self.advantages + self.values

    def minibatches(self, num_minibatches: int, generator: torch.Generator) -> Iterator[dict[str, torch.Tensor]]:
        """Shuffled minibatches over all T*N samples, as flat dicts."""
        total = self.horizon * self.num_envs
        size = total // num_minibatches
        perm = torch.randperm(total, generator=generator)
        flat_obs = {k: v.reshape(total, *v.shape[2:]) for k, v in self.obs.items()}
        flat = {
            "actions": self.actions.reshape(total, -1),
            "log_probs": self.log_probs.reshape(total),
            "values": self.values.reshape(total),
            "advantages": self.advantages.reshape(total),
            "returns": self.returns.reshape(total),
        }
        for i in range(num_minibatches):
            idx = perm[i * size : (i + 1) * size]
            batch = {k: v[idx] for k, v in flat.items()}
            batch["obs"] = {k: v[idx] for k, v in flat_obs.items()}
            yield batch
