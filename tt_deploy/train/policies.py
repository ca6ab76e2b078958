"""Actor-critics for every training method, all on one BFM token interface.

- TaskTokenPolicy: frozen BFM + trainable task encoder (the Task Tokens method).
- FinetunePolicy: the same, but the whole BFM trains too (the paper's fine-tuning baseline).
- PureRLPolicy: an MLP from self-obs + task obs, no BFM (the pure-RL baseline).
The critic is always an MLP on its own normalised [self obs, extra features] (never deployed).
"""

from __future__ import annotations

import torch
from torch import nn

from tt_deploy.errors import InputError, UnknownNameError
from tt_deploy.models.bfm import BFM
from tt_deploy.models.normalization import RunningMeanStd, mlp
from tt_deploy.models.task_encoder import TaskEncoder
from tt_deploy.rl.ppo import ActorCritic
from tt_deploy.spec import ACTION_DIM, SELF_OBS_DIM, TASK_OBS_NAME, TOKEN_GROUPS
from tt_deploy.train.config import EXPLORATION


class Critic(nn.Module):
    """V(s) from the normalised concatenation of the named observation keys (flattened)."""

    def __init__(self, keys: dict[str, int], hidden: tuple[int, ...] = (512, 512)):
        super().__init__()
        self.keys = dict(keys)
        dim = sum(self.keys.values())
        self.norm = RunningMeanStd(dim, clamp=5.0)
        self.net = mlp([dim, *hidden, 1])

    def features(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([obs[k].reshape(obs[k].shape[0], -1).float() for k in self.keys], dim=-1)

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(self.norm(self.features(obs))).squeeze(-1)

    def update_norm(self, obs: dict[str, torch.Tensor]) -> None:
        self.norm.update(self.features(obs))


def _bfm_inputs(obs: dict[str, torch.Tensor], keys) -> dict[str, torch.Tensor]:
    return {k: obs[k] for k in keys if k in obs}


def drop_hidden_tokens(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same inputs without the tokens that are hidden in every sample of the batch.

    Exact (bfm.encode_tokens: a left-out token is a hidden one) and a training speed-up: a reach
    prior shows 1 of the 11 target-pose slots, so the BFM runs on 19 tokens instead of 29.
    """
    out = dict(inputs)
    for g in TOKEN_GROUPS:
        if g.mask_name is None or g.mask_name not in out or g.name not in out:
            continue
        mask = out[g.mask_name].reshape(out[g.mask_name].shape[0], -1)
        keep = mask.any(0)
        if bool(keep.all()):
            continue
        x = out[g.name].reshape(mask.shape[0], mask.shape[1], -1)
        out[g.name], out[g.mask_name] = x[:, keep], mask[:, keep]
    return out




class TaskTokenPolicy(ActorCritic):
    """Actor = frozen BFM fed the encoder's token; only encoder and critic train.

    explore="action": PPO's Gaussian is over the BFM's joint actions and the policy gradient flows
    through the frozen BFM into the encoder (the paper's set-up). explore="token": the Gaussian is
    over the task token and the BFM, part of the environment for PPO, maps the sampled token to
    joint actions (latent-space exploration, as high-level controllers over ASE/CALM/PULSE latents
    do). Why both: the embedded BFM's walk falls in 99 % of 10 s episodes under white joint noise of
    std 0.03 (9 % without), while token noise of std 1.0 per dimension leaves it at 12 %
    (docs/training.md); the token is where behaviour varies on the BFM's own manifold.
    """

    def __init__(self, bfm: BFM, encoder: TaskEncoder, *, visible_groups=None, critic_hidden=(512, 512),
                 train_bfm: bool = False, explore: str = "action", freeze_encoder_norm: bool = False):
        super().__init__()
        # an oracle-started encoder keeps the input statistics it was distilled with: while they kept moving,
        # the critic-only warm-up alone took a distilled reach encoder from 74 to 70 % (weights untouched)
        self.freeze_encoder_norm = bool(freeze_encoder_norm)
        if explore not in EXPLORATION:
            raise UnknownNameError("exploration space", explore, EXPLORATION)
        if explore == "token" and train_bfm:
            raise InputError("explore='token' leaves the BFM without a policy gradient: finetune explores in action space")
        self.bfm, self.encoder, self.train_bfm, self.explore = bfm, encoder, train_bfm, explore
        if explore == "token":
            self.action_dim, self.bounded = encoder.config.token_dim, False
        if not train_bfm:
            bfm.freeze()
        groups = visible_groups or ("obs", "historical_pose_obs", "terrain")
        self.visible_groups = tuple(g.name for g in TOKEN_GROUPS if g.name in groups)
        self.input_keys = tuple(k for g in TOKEN_GROUPS if g.name in groups for k in (g.name, g.mask_name) if k)
        self.critic = Critic({"obs": SELF_OBS_DIM, TASK_OBS_NAME: encoder.config.obs_dim}, critic_hidden)

    def train(self, mode: bool = True):
        super().train(mode)
        if not self.train_bfm:
            self.bfm.eval()  # frozen for real: normalisers and dropout never change
        return self

    def joint_action(self, obs, token):
        return self.bfm(drop_hidden_tokens(_bfm_inputs(obs, self.input_keys)), token)

    def action_mean(self, obs):
        token = self.encoder(obs[TASK_OBS_NAME])
        return token if self.explore == "token" else self.joint_action(obs, token)

    def env_action(self, obs, actions):
        return self.joint_action(obs, actions) if self.explore == "token" else actions

    def value(self, obs):
        return self.critic(obs)

    def actor_parameters(self):
        params = list(self.encoder.parameters())
        return params + (list(self.bfm.parameters()) if self.train_bfm else [])

    def critic_parameters(self):
        return list(self.critic.parameters())

    def update_normalizers(self, obs):
        if not self.freeze_encoder_norm:
            self.encoder.norm.update(obs[TASK_OBS_NAME])
        self.critic.update_norm(obs)


class PureRLPolicy(ActorCritic):
    """MLP policy from scratch on [self obs, task obs]: the no-foundation-model baseline."""

    def __init__(self, task_obs_dim: int, hidden=(512, 512, 256), critic_hidden=(512, 512), out_dim: int = ACTION_DIM):
        super().__init__()
        self.norm = RunningMeanStd(SELF_OBS_DIM + task_obs_dim)
        self.actor = mlp([SELF_OBS_DIM + task_obs_dim, *hidden, out_dim])
        with torch.no_grad():  # start as a statue: zero actions hold the rest pose
            self.actor[-1].weight.mul_(0.01)
            self.actor[-1].bias.zero_()
        self.critic = Critic({"obs": SELF_OBS_DIM, TASK_OBS_NAME: task_obs_dim}, critic_hidden)

    def _x(self, obs):
        return torch.cat([obs["obs"], obs[TASK_OBS_NAME]], dim=-1)

    def action_mean(self, obs):
        return self.actor(self.norm(self._x(obs)))

    def value(self, obs):
        return self.critic(obs)

    def actor_parameters(self):
        return list(self.actor.parameters())

    def critic_parameters(self):
        return list(self.critic.parameters())

    def update_normalizers(self, obs):
        self.norm.update(self._x(obs))
        self.critic.update_norm(obs)
