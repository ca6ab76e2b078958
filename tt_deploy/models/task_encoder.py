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
    def neutral_start(self) -> TaskEncoder:
        """Zero the output layer, so a fresh encoder's token is exactly 0 and trains from there.

        A randomly initialised token (norm ~1.9 on the small BFM) knocks the frozen BFM over (stand 100 ->
        0 %); a zero token keeps the prior's behaviour (docs/training.md), and the output layer still gets
        gradients (from the hidden activations), so the rest of the encoder follows once it moves.
        """
        last = self.net.trunk[-1]
        last.weight.zero_()
        last.bias.zero_()
        return self

    def forward(self, task_obs: torch.Tensor) -> torch.Tensor:
        return self.net(task_obs)
