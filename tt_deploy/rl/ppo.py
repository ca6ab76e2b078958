"""A compact PPO with a fixed-std Gaussian policy and separate actor/critic learning rates.

Why not rsl-rl-lib: its PPO (v5) builds actor and critic from 1-D observation groups that it
concatenates, drives both with one optimiser and one learning rate, and brings tensordict. Our
actor consumes a dict of multi-token groups with bool masks through a frozen BFM, and the
reference trains the task encoder at 2e-5 and the critic at 1e-4. The algorithm below is the
standard clipped-surrogate PPO (rsl_rl / cleanrl shape: act -> store -> GAE -> epochs of
minibatch updates), ~150 lines.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from tt_deploy.rl.config import PPOConfig
from tt_deploy.rl.storage import RolloutStorage
from tt_deploy.spec import ACTION_DIM

# Observation key of an optional per-sample policy-gradient weight (1 = the policy's own sampled action
# was executed, 0 = another one was, e.g. a demonstrator's): its samples still train the critic.
SAMPLE_WEIGHT = "sample_weight"

class ActorCritic(nn.Module):
    """What PPO needs from a policy: a mean action, a value, and which parameters train.

    PPO's "action" is whatever the Gaussian is over (`action_dim` wide); `env_action` maps it to the
    simulator's joint action. They are the same thing unless a policy explores in a latent space
    (TaskTokenPolicy with explore="token": the sampled variable is the task token, the BFM turns it
    into joint actions). `bounded`: the action mean should stay inside [-1, 1] (the bound loss).
    """

    action_dim: int = ACTION_DIM
    bounded: bool = True

    def env_action(self, obs: dict[str, torch.Tensor], actions: torch.Tensor) -> torch.Tensor:
        return actions

    def act_deterministic(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The joint action the deployed policy takes (no exploration noise), clamped to [-1, 1]."""
        return torch.clamp(self.env_action(obs, self.action_mean(obs)), -1.0, 1.0)

    def action_mean(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:  # (B, A)
        raise NotImplementedError

    def value(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:  # (B,)
        raise NotImplementedError

    def actor_parameters(self) -> list[nn.Parameter]:
        raise NotImplementedError

    def critic_parameters(self) -> list[nn.Parameter]:
        raise NotImplementedError

    def update_normalizers(self, obs: dict[str, torch.Tensor]) -> None:
        """Update running statistics that are allowed to change (never a frozen BFM's)."""


def gaussian_log_prob(actions: torch.Tensor, mean: torch.Tensor, std: float) -> torch.Tensor:
    var = std * std
    return (-((actions - mean) ** 2) / (2 * var) - math.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)


class PPO:
    """Clipped-surrogate PPO over an ActorCritic with a fixed exploration std."""

    def __init__(self, policy: ActorCritic, config: PPOConfig, seed: int = 0):
        self.policy, self.cfg = policy, config
        self.actor_opt = torch.optim.Adam(policy.actor_parameters(), lr=config.actor_lr) if policy.actor_parameters() else None
        self.critic_opt = torch.optim.Adam(policy.critic_parameters(), lr=config.critic_lr)
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def act(self, obs: dict[str, torch.Tensor], deterministic: bool = False):
        """Sample actions; returns (actions, log_probs, values, means)."""
        mean = self.policy.action_mean(obs)
        if deterministic:
            actions = mean
        else:
            noise = torch.randn(mean.shape, generator=self.generator)
            actions = mean + self.cfg.action_std * noise
        return actions, gaussian_log_prob(actions, mean, self.cfg.action_std), self.policy.value(obs), mean

    def update(self, storage: RolloutStorage, train_actor: bool = True) -> dict[str, float]:
        cfg = self.cfg
        stats = {"policy_loss": 0.0, "value_loss": 0.0, "clip_frac": 0.0, "approx_kl": 0.0, "bound_loss": 0.0,
                 "aux_loss": 0.0}
        n, t_actor = 0, 0.0
        for _ in range(cfg.epochs):
            for mb in storage.minibatches(cfg.num_minibatches, self.generator):
                if self.actor_opt is not None:
                    self.actor_opt.zero_grad(set_to_none=True)
                self.critic_opt.zero_grad(set_to_none=True)
                # actor and critic graphs are disjoint: two backward passes equal one on the sum,
                # and timing the actor's alone is the profile of the policy (BFM) forward/backward
                t0 = time.perf_counter()
                on = mb["obs"].get(SAMPLE_WEIGHT)  # 0 where the executed action was not the policy's
                adv = mb["advantages"]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                mean = self.policy.action_mean(mb["obs"])
                log_prob = gaussian_log_prob(mb["actions"], mean, cfg.action_std)
                log_ratio = log_prob - mb["log_probs"] if on is None else (log_prob - mb["log_probs"]) * on
                ratio = torch.exp(log_ratio)
                surrogate = torch.min(ratio * adv, torch.clamp(ratio, 1 - cfg.clip, 1 + cfg.clip) * adv)
                if on is None:
                    policy_loss = -surrogate.mean()
                else:
                    policy_loss = -(surrogate * on).sum() / on.sum().clamp(min=1.0)
                if self.policy.bounded:
                    bound_loss = (torch.relu(mean - 1.0) ** 2 + torch.relu(-1.0 - mean) ** 2).sum(-1).mean()
                else:
                    bound_loss = torch.zeros(())
                actor_loss = policy_loss + cfg.bound_coef * bound_loss
                aux_loss = self.auxiliary_loss(mb["obs"], mean)
                if aux_loss is not None:
                    actor_loss = actor_loss + aux_loss
                if actor_loss.requires_grad and train_actor:
                    actor_loss.backward()
                t_actor += time.perf_counter() - t0
                value = self.policy.value(mb["obs"])
                value_loss = (value - mb["returns"]).pow(2).mean()
                (cfg.value_coef * value_loss).backward()
                if self.actor_opt is not None and train_actor:
                    nn.utils.clip_grad_norm_(self.policy.actor_parameters(), cfg.max_grad_norm)
                    self.actor_opt.step()
                nn.utils.clip_grad_norm_(self.policy.critic_parameters(), cfg.max_grad_norm)
                self.critic_opt.step()
                with torch.no_grad():
                    stats["policy_loss"] += policy_loss.item()
                    stats["value_loss"] += value_loss.item()
                    stats["bound_loss"] += bound_loss.item()
                    stats["aux_loss"] += aux_loss.item() if aux_loss is not None else 0.0
                    stats["clip_frac"] += ((ratio - 1).abs() > cfg.clip).float().mean().item()
                    stats["approx_kl"] += -log_ratio.mean().item()
                n += 1
        return {**{k: v / max(n, 1) for k, v in stats.items()}, "t_update_actor": t_actor}

    def auxiliary_loss(self, obs: dict[str, torch.Tensor], mean: torch.Tensor) -> torch.Tensor | None:
        """An extra actor loss added to the surrogate; none here (a subclass adds one, e.g. behaviour cloning)."""
        return None

    def state_dict(self) -> dict:
        return {
            "actor_opt": self.actor_opt.state_dict() if self.actor_opt else None,
            "critic_opt": self.critic_opt.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        if self.actor_opt is not None and state.get("actor_opt") is not None:
            self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.generator.set_state(state["generator"])
