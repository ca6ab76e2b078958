"""Task encoder: the only trainable part of a Task Tokens skill (ref: running norm + ReLU MLP -> 1 token)."""

from __future__ import annotations

import torch
from torch import nn

from tt_deploy.models.config import EncoderConfig
from tt_deploy.models.normalization import NormalizedMLP


class TaskEncoder(nn.Module):
    """(B, obs_dim) task observation -> (B, token_dim) task token for the BFM."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.net = NormalizedMLP(config.obs_dim, list(config.hidden), config.token_dim, config.norm_clamp)

    @property
    def norm(self):
        return self.net.norm

    @torch.no_grad()
    def neutral_start(self, token: torch.Tensor | None = None) -> TaskEncoder:
        """Zero the output layer's weights and set its bias to `token` (default 0): a fresh encoder then
        emits exactly that token for every observation and trains from there.

        A randomly initialised token (norm ~1.9 on the small BFM) knocks the frozen BFM over (stand 100 ->
        0 %); the null token (train/null_token.py) keeps prior-only's behaviour, and the output layer still
        gets gradients (from the hidden activations), so the rest of the encoder follows once it moves.
        """
        last = self.net.trunk[-1]
        last.weight.zero_()
        last.bias.zero_()
        if token is not None:
            last.bias.copy_(token.reshape(last.bias.shape))
        return self

    def forward(self, task_obs: torch.Tensor) -> torch.Tensor:
        return self.net(task_obs)
