"""Running mean/std normalisation, the reference (ProtoMotions v1) formula in one place.

normalize(x) = clamp((x - mean) / sqrt(var + 1e-5), -clamp, clamp). The statistics live in
buffers (mean, var, count) so they travel with the weights and are baked into exported graphs.
"""

from __future__ import annotations

import torch
from torch import nn

NORM_EPSILON = 1e-5
DEFAULT_CLAMP = 5.0


def normalize(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, clamp: float | None) -> torch.Tensor:
    """The formula itself; every normaliser (ours, an imported checkpoint's) calls this one."""
    y = (x - mean) / torch.sqrt(var + NORM_EPSILON)
    return y if clamp is None else torch.clamp(y, -clamp, clamp)


class RunningMeanStd(nn.Module):
    """Per-feature running statistics over every leading dimension of its input.

    Updated only by an explicit `update(x)` call (pretraining); a frozen BFM never calls it.
    """

    def __init__(self, num_features: int, clamp: float | None = DEFAULT_CLAMP):
        super().__init__()
        self.num_features = num_features
        self.clamp = clamp
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("var", torch.ones(num_features))
        self.register_buffer("count", torch.tensor(1e-4))

    @torch.no_grad()
    def update(self, x: torch.Tensor, weight: torch.Tensor | None = None) -> None:
        """Parallel-variance merge of a batch (..., F); `weight` (...,) selects rows (e.g. visible tokens)."""
        x = x.reshape(-1, self.num_features).double()
        if weight is not None:
            x = x[weight.reshape(-1).bool()]
        n = x.shape[0]
        if n == 0:
            return
        batch_mean = x.mean(0)
        batch_var = x.var(0, unbiased=False)
        total = self.count.double() + n
        delta = batch_mean - self.mean.double()
        new_mean = self.mean.double() + delta * n / total
        m2 = self.var.double() * self.count.double() + batch_var * n + delta**2 * self.count.double() * n / total
        self.mean.copy_(new_mean.float())
        self.var.copy_((m2 / total).float())
        self.count.copy_(total.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return normalize(x, self.mean, self.var, self.clamp)


def mlp(sizes: list[int], *, last_activation: bool = False) -> nn.Sequential:
    """ReLU MLP through `sizes` (in, hidden..., out); the output layer is linear unless asked."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or last_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class NormalizedMLP(nn.Module):
    """Running-norm followed by a ReLU MLP: the shape of every token encoder (ref)."""

    def __init__(self, in_dim: int, hidden: list[int], out_dim: int, clamp: float | None = DEFAULT_CLAMP):
        super().__init__()
        self.norm = RunningMeanStd(in_dim, clamp)
        self.trunk = mlp([in_dim, *hidden, out_dim])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.norm(x))
