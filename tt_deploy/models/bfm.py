"""The MaskedMimic v1 Behavior Foundation Model (prior + decoder), deployable part only.

Tokens: each input group of spec.TOKEN_GROUPS has its own running-norm + ReLU MLP token encoder
(shared across the tokens of a group); task tokens are already d-dim. A post-LN transformer
without positional encoding mixes them, output read at token 0 (the self observation, always
visible). Prior mean head -> z (inference uses the mean, no noise). Decoder input =
[normalised obs (358), raw terrain (256), MLP(z)] -> 69 actions (unclamped; clamp outside).

Hidden tokens get -inf attention logits as keys, so they carry no information at all: a group
that is absent from `inputs` is exactly equivalent to a fully hidden one, which is what lets a
skill's fused graph drop the groups it always hides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from tt_deploy.models.config import BFMConfig
from tt_deploy.models.normalization import NormalizedMLP, RunningMeanStd, mlp
from tt_deploy.spec import ACTION_DIM, SELF_OBS_DIM, TERRAIN_DIM, TOKEN_GROUPS


class SelfAttention(nn.Module):
    """Multi-head self-attention with nn.MultiheadAttention's parameter names (in_proj, out_proj).

    Written out with plain matmuls so that the ONNX graph is simple, TensorRT-friendly and the
    key mask semantics are explicit.
    """

    def __init__(self, d_model: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor, key_bias: torch.Tensor | None, first_query_only: bool = False) -> torch.Tensor:
        """x (B, T, d); key_bias (B, 1, 1, T): 0 for visible keys, -inf for hidden ones.

        first_query_only: attend from token 0 only -> (B, 1, d). Keys and values still come from
        every token; the other rows would be thrown away by the last layer anyway.
        """
        b, t, d = x.shape
        h, dh = self.num_heads, self.head_dim
        w, bias = self.in_proj_weight, self.in_proj_bias
        if first_query_only:
            # explicit slice ends: an open end exports as INT64_MAX, which TensorRT must narrow
            q = nn.functional.linear(x[:, 0:1], w[0:d], bias[0:d]).reshape(b, 1, h, dh).transpose(1, 2)
            kv = nn.functional.linear(x, w[d : 3 * d], bias[d : 3 * d]).reshape(b, t, 2, h, dh).permute(2, 0, 3, 1, 4)
            k, v = kv.unbind(0)
        else:
            qkv = nn.functional.linear(x, w, bias).reshape(b, t, 3, h, dh).permute(2, 0, 3, 1, 4)
            q, k, v = qkv.unbind(0)
        scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(dh))
        if key_bias is not None:
            scores = scores + key_bias
        out = torch.matmul(torch.softmax(scores, dim=-1), v)
        out = out.permute(0, 2, 1, 3).reshape(b, q.shape[2], d)
        return self.out_proj(out)


class EncoderLayer(nn.Module):
    """Post-LN transformer layer, nn.TransformerEncoderLayer names (self_attn, linear1/2, norm1/2)."""

    def __init__(self, d_model: int, num_heads: int, ff_dim: int):
        super().__init__()
        self.self_attn = SelfAttention(d_model, num_heads)
        self.linear1 = nn.Linear(d_model, ff_dim)
        self.linear2 = nn.Linear(ff_dim, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, key_bias: torch.Tensor | None, first_query_only: bool = False) -> torch.Tensor:
        residual = x[:, :1] if first_query_only else x
        x = self.norm1(residual + self.self_attn(x, key_bias, first_query_only))
        return self.norm2(x + self.linear2(torch.relu(self.linear1(x))))


class BFM(nn.Module):
    """Frozen-able MaskedMimic BFM. `forward(inputs, task_tokens)` -> (B, 69) raw actions."""

    def __init__(self, config: BFMConfig):
        super().__init__()
        self.config = config
        d = config.d_model
        self.token_encoders = nn.ModuleDict(
            {g.name: NormalizedMLP(g.feat_dim, list(config.token_hidden), d, config.norm_clamp) for g in TOKEN_GROUPS}
        )
        self.layers = nn.ModuleList(
            [EncoderLayer(d, config.num_heads, config.ff_dim) for _ in range(config.num_layers)]
        )
        self.prior_mu = mlp([d, *config.prior_hidden, config.latent_dim])
        self.decoder_obs_norm = RunningMeanStd(SELF_OBS_DIM, config.norm_clamp)
        self.latent_mlp = mlp([config.latent_dim, *config.latent_hidden, config.latent_dim])
        self.decoder = mlp([SELF_OBS_DIM + TERRAIN_DIM + config.latent_dim, *config.decoder_hidden, ACTION_DIM])

    @property
    def token_dim(self) -> int:
        return self.config.d_model

    def encode_tokens(
        self, inputs: Mapping[str, torch.Tensor], task_tokens: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Token sequence (B, T, d) and key bias (B, 1, 1, T) or None when everything is visible.

        Groups missing from `inputs` are left out (equivalent to hidden); a present maskable
        group whose mask is missing counts as visible. task_tokens: (B, d) or (B, k, d).
        A multi-token group may be given with fewer tokens than its full count (B, k, feat), e.g.
        only the slots a prompt can ever show: tokens share their group's encoder and there is no
        positional encoding, so leaving a token out is exactly the same as hiding it.
        """
        tokens, visible = [], []
        any_mask = False
        for g in TOKEN_GROUPS:
            if g.name not in inputs:
                continue
            x = inputs[g.name]
            x = x.reshape(x.shape[0], -1, g.feat_dim)
            tokens.append(self.token_encoders[g.name](x))
            if g.mask_name is not None and g.mask_name in inputs:
                visible.append(inputs[g.mask_name].reshape(x.shape[0], x.shape[1]).to(torch.bool))
                any_mask = True
            else:
                visible.append(torch.ones(x.shape[0], x.shape[1], dtype=torch.bool, device=x.device))
        if task_tokens is not None:
            tt = task_tokens if task_tokens.dim() == 3 else task_tokens.unsqueeze(1)
            tokens.append(tt)
            visible.append(torch.ones(tt.shape[0], tt.shape[1], dtype=torch.bool, device=tt.device))
        seq = torch.cat(tokens, dim=1)
        if not any_mask:
            return seq, None
        vis = torch.cat(visible, dim=1)
        zero = torch.zeros((), dtype=seq.dtype, device=seq.device)
        key_bias = torch.where(vis, zero, torch.full_like(zero, float("-inf")))
        return seq, key_bias[:, None, None, :]

    def prior_latent(self, inputs: Mapping[str, torch.Tensor], task_tokens: torch.Tensor | None = None):
        """Prior mean z (B, latent) from the transformer output at token 0."""
        x, key_bias = self.encode_tokens(inputs, task_tokens)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            # only token 0 is read out, so the last layer computes its row alone (same result,
            # ~6/8 of that layer's per-token work saved)
            x = layer(x, key_bias, first_query_only=i == last)
        return self.prior_mu(x[:, 0])

    def decode(self, obs: torch.Tensor, terrain: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(torch.cat([self.decoder_obs_norm(obs), terrain, self.latent_mlp(z)], dim=-1))

    def forward(self, inputs: Mapping[str, torch.Tensor], task_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 69) unclamped actions. inputs: graph-named tensors; obs and terrain required."""
        z = self.prior_latent(inputs, task_tokens)
        return self.decode(inputs["obs"], inputs["terrain"], z)

    def normalizers(self) -> list[RunningMeanStd]:
        return [m for m in self.modules() if isinstance(m, RunningMeanStd)]

    def freeze(self) -> BFM:
        """Eval mode and no gradients for the BFM's own weights (gradients still flow through it)."""
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
