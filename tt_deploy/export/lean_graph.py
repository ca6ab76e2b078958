"""Static batch-1 export form of `BFMGraph`: the same inputs, outputs and numbers in about half the ONNX nodes.

Why: at batch 1 ONNX Runtime is dispatch-bound (~1.1 us per node against ~16-19 us of arithmetic for the small
fused reach graph), and the traced training model spends most of its nodes on layout: Linears on 3-D tensors
as MatMul+Add, per-head Reshape/Transpose/Split/Squeeze, batch-axis Unsqueeze/Gather, one Sub/Div/Clip per
normaliser. `LeanBFMGraph` computes the same function in a 2-D (tokens, features) layout with its constants
folded once at build time (in float64, rounded once to float32), so that nearly every step is one node. It
exists only to be traced: `export_graph` uses it for static BFMGraphs and holds its ONNX graph to PARITY_TOL
against the BFMGraph it was built from. models/bfm.py (the training model) is untouched.

The rewrites, each exact in real arithmetic (fp32 rounding moves by ~1e-7 relative):
- one normaliser: every group's input, the task observation and (when its statistics differ from the obs
  token's) the decoder's obs input go through ONE `normalization.normalize` (Sub, Div, Clip) over their
  concatenation, then a Split: the BFM's own formula and fp32 operations, element for element. The obs token
  and the decoder share the normalised obs when their statistics are equal (the shipped BFM's are).
- tokens are rows of a (T, d) matrix, so every Linear is one Gemm with its bias.
- residual adds ride in Gemm's C input: a full layer's input is carried shifted by its attention output bias
  bo (folded into the bias that produces it: the token MLPs' last Gemm, the previous LayerNorm's beta), the
  qkv bias is compensated (b - W bo), and the out projection adds the shifted input as C. Likewise the FFN:
  norm1's beta carries linear2's bias, linear1's bias is compensated, linear2 adds norm1's output as C.
- full layers produce q, k, v transposed from one Gemm (W @ x^T, the q rows scaled by 1/sqrt(dh)), reshape
  to (3h, dh, T) and split on axis 0 (no Squeeze); scores are computed as keys x queries, so the key mask is
  a (T, 1) column, Softmax runs over axis 1 and the head outputs come out as (d, T), which the out projection
  reads with transA (one Transpose per layer is left: k).
- the last layer (only token 0's row is read out) never projects the other tokens: with one query q,
  score_j = q . (Wk x_j + bk) = (Wk^T q) . x_j + const, and the constant cancels in the softmax; so
  u_h = Wk_h^T q_h comes from token 0, scores for every key and head are one Gemm x @ U^T with the mask
  bias as C, and since each head's weights sum to 1 its output is Wv_h (sum_j a_hj x_j) + bv_h: one Gemm
  a^T @ x, then Wv and Wo, with token 0 + (Wo bv + bo) as C (token 0 picked by a one-hot Gemm that adds that
  bias on the way). For small models Wq.Wk and Wo.Wv are folded into one Gemm each (FOLD_MAX_EXTRA_WEIGHTS).
- the prior head's last Linear and the latent MLP's first are one Linear (no activation between them), and
  the latent MLP's last Linear is folded into the decoder's first on its latent columns.
No dynamic shapes, no Slice, no INT64_MAX: TensorRT-friendly like the traced graphs.

Measured (fused reach graph with the prior prompt's group; 1 thread, sequential, interleaved blocks on 2
loaded cores): embedded small BFM 124 -> 69 ONNX nodes (ONNX Runtime's optimised graph 125 -> 56), p50 0.73x
the traced graph, max abs 4e-7 against PyTorch; paper 196 -> 117 nodes, p50 0.87x (weight-bound). onnxslim
on top changes nothing (69 -> 69; on the traced graph it adds nodes, 124 -> 131).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from tt_deploy.errors import TTDeployError
from tt_deploy.export.onnx_graphs import ALL_GROUPS, BFMGraph
from tt_deploy.models.bfm import BFM, EncoderLayer
from tt_deploy.models.normalization import RunningMeanStd, normalize
from tt_deploy.models.task_encoder import TaskEncoder
from tt_deploy.spec import ACTION_CLAMP, SELF_OBS_DIM, TASK_OBS_NAME, TOKEN_GROUP_BY_NAME, TOKEN_GROUPS

DECODER_OBS = "decoder_obs"  # normaliser segment of the decoder's obs input, when its stats differ


class _Gemm(torch.autograd.Function):
    """y = op(a) @ op(b) (+ c), exported as ONE ONNX Gemm with transA / transB (torch would emit Transposes)."""

    @staticmethod
    def forward(ctx, a, b, c, trans_a: bool, trans_b: bool):
        y = (a.t() if trans_a else a) @ (b.t() if trans_b else b)
        return y if c is None else y + c

    @staticmethod
    def symbolic(g, a, b, c, trans_a: bool, trans_b: bool):
        args = (a, b) if c is None or c.node().mustBeNone() else (a, b, c)
        return g.op("Gemm", *args, transA_i=int(trans_a), transB_i=int(trans_b))


def gemm(a, b, c=None, *, trans_a: bool = False, trans_b: bool = False) -> torch.Tensor:
    return _Gemm.apply(a, b, c, trans_a, trans_b)


def _f64(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(torch.float64)


def _const(module: nn.Module, name: str, value: torch.Tensor) -> torch.Tensor:
    """Register a float32 buffer (an initializer of the graph) and return it."""
    module.register_buffer(name, value.detach().to(torch.float32).contiguous())
    return getattr(module, name)


def _linears(seq: nn.Sequential) -> list[tuple[torch.Tensor, torch.Tensor, bool]]:
    """(W, b, ReLU after) of each Linear of a ReLU MLP (normalization.mlp), in float64."""
    mods = list(seq)
    out = []
    for i, m in enumerate(mods):
        if isinstance(m, nn.Linear):
            relu = i + 1 < len(mods) and isinstance(mods[i + 1], nn.ReLU)
            out.append((_f64(m.weight), _f64(m.bias), relu))
        elif not isinstance(m, nn.ReLU):
            raise TTDeployError(f"lean graph: unexpected {type(m).__name__} in an MLP")
    return out


def _merge_linear_runs(layers):
    """Compose consecutive Linears with no activation between them: W2 (W1 x + b1) + b2 = (W2 W1) x + W2 b1 + b2."""
    out = [layers[0]]
    for w, b, relu in layers[1:]:
        pw, pb, prelu = out[-1]
        if prelu:
            out.append((w, b, relu))
        else:
            out[-1] = (w @ pw, w @ pb + b, relu)
    return out


class GemmChain(nn.Module):
    """(W, b, relu) layers as one Gemm (+ Relu) each; `shift` is added to the last bias (what the consumer's
    input carries, see FullAttention)."""

    def __init__(self, layers, shift: torch.Tensor | None = None):
        super().__init__()
        self.relu = []
        for i, (w, b, relu) in enumerate(layers):
            if shift is not None and i == len(layers) - 1:
                b = b + shift
            _const(self, f"w{i}", w)
            _const(self, f"b{i}", b)
            self.relu.append(relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, relu in enumerate(self.relu):
            x = F.linear(x, getattr(self, f"w{i}"), getattr(self, f"b{i}"))
            x = torch.relu(x) if relu else x
        return x


class ConcatNormalizer(nn.Module):
    """normalize() of several inputs at once: flatten, concatenate, one Sub/Div/Clip, split back.

    Segments with different clamps get one normaliser each (Clip's bounds are scalars)."""

    def __init__(self, segments: Sequence[tuple[str, str, int, RunningMeanStd]]):
        """segments: (segment name, input name, token count, normaliser), all with the same clamp."""
        super().__init__()
        self.segments = [(name, inp, n, norm.num_features) for name, inp, n, norm in segments]
        self.clamp = segments[0][3].clamp
        if any(s[3].clamp != self.clamp for s in segments):
            raise TTDeployError("lean graph: a ConcatNormalizer's segments must share one clamp")
        _const(self, "mean", torch.cat([s[3].mean.repeat(s[2]) for s in segments]))
        _const(self, "var", torch.cat([s[3].var.repeat(s[2]) for s in segments]))

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        flat = [inputs[inp].reshape(1, n * f) if inputs[inp].dim() != 2 else inputs[inp]
                for _, inp, n, f in self.segments]  # fmt: skip
        x = flat[0] if len(flat) == 1 else torch.cat(flat, dim=1)
        y = normalize(x, self.mean, self.var, self.clamp)
        parts = [y] if len(flat) == 1 else torch.split(y, [n * f for _, _, n, f in self.segments], dim=1)
        out = {}
        for (name, _, n, f), p in zip(self.segments, parts, strict=True):
            out[name] = p.reshape(n, f) if n != 1 else p  # token rows for the group's Gemm
        return out


def _ln_params(norm: nn.LayerNorm, shift: torch.Tensor | None):
    beta = _f64(norm.bias) + (shift if shift is not None else 0.0)
    return _f64(norm.weight), beta, norm.eps


class FFN(nn.Module):
    """norm1 -> linear1 -> ReLU -> linear2 (+ norm1's output as Gemm C) -> norm2 (beta carrying `out_shift`)."""

    def __init__(self, layer: EncoderLayer, out_shift: torch.Tensor | None):
        super().__init__()
        w1, b1 = _f64(layer.linear1.weight), _f64(layer.linear1.bias)
        w2, b2 = _f64(layer.linear2.weight), _f64(layer.linear2.bias)
        g1, beta1, self.eps1 = _ln_params(layer.norm1, b2)  # norm1's output carries linear2's bias ...
        _const(self, "g1", g1)
        _const(self, "beta1", beta1)
        _const(self, "w1", w1)
        _const(self, "b1", b1 - w1 @ b2)  # ... which linear1 takes back out
        _const(self, "w2", w2)
        g2, beta2, self.eps2 = _ln_params(layer.norm2, out_shift)
        _const(self, "g2", g2)
        _const(self, "beta2", beta2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: residual + attention output (rows, d)."""
        d = x.shape[-1]
        y = F.layer_norm(x, (d,), self.g1, self.beta1, self.eps1)
        h = torch.relu(F.linear(y, self.w1, self.b1))
        return F.layer_norm(gemm(h, self.w2, y, trans_b=True), (d,), self.g2, self.beta2, self.eps2)


class Scores(nn.Module):
    """The attention scores plus the key bias, in a module scope of their own: ONNX node names follow the
    scope, and tensorrt_build pins these nodes to FP32 by name (a `<name>_*` prefix match, so a pinned
    `self_attn/MatMul` must not sit beside an unpinned `self_attn/MatMul_1`)."""

    def __init__(self, last: bool):
        super().__init__()
        self.last = last

    def forward(self, a: torch.Tensor, b: torch.Tensor, key_bias: torch.Tensor | None) -> torch.Tensor:
        """Full layer: a = k^T (h, dh, T), b = q^T -> (h, keys, queries). Last: a = x (T, d), b = U -> (keys, h)."""
        if self.last:
            return gemm(a, b, key_bias, trans_b=True)
        scores = torch.matmul(a.transpose(1, 2), b)
        return scores if key_bias is None else scores + key_bias


class KeyBias(nn.Module):
    """(T, 1) key bias column from the kept groups' masks: 0 for visible keys, -inf for hidden ones."""

    def __init__(self, groups, masked):
        super().__init__()
        self.groups, self.masked = groups, masked

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        visible, ones = [], 0
        for g in self.groups:
            if g not in self.masked:
                ones += g.n_tokens
                continue
            if ones:
                visible.append(torch.ones(1, ones, dtype=torch.bool))
                ones = 0
            m = inputs[g.mask_name]
            visible.append(m if m.dtype == torch.bool else m.to(torch.bool))
        visible.append(torch.ones(1, ones + 1, dtype=torch.bool))  # + the task token
        vis = torch.cat(visible, dim=1)
        zero = torch.zeros(())
        return torch.where(vis, zero, torch.full_like(zero, float("-inf"))).reshape(vis.shape[1], 1)


def attention_shift(layer: EncoderLayer) -> torch.Tensor:
    """What the producer of a full layer's input adds to it: the layer's attention output bias (module doc)."""
    return _f64(layer.self_attn.out_proj.bias)


class FullAttention(nn.Module):
    """Self-attention for every token's row: x' (T, d) = x + bo in, x + attention(x) (T, d) out."""

    def __init__(self, layer: EncoderLayer):
        super().__init__()
        attn = layer.self_attn
        self.h, self.dh = attn.num_heads, attn.head_dim
        d = self.h * self.dh
        w, b = _f64(attn.in_proj_weight).clone(), _f64(attn.in_proj_bias).clone()
        scale = 1.0 / math.sqrt(self.dh)
        w[:d] *= scale
        b[:d] *= scale
        _const(self, "w_qkv", w)
        _const(self, "b_qkv", (b - w @ attention_shift(layer)).reshape(3 * d, 1))  # the input arrives shifted
        _const(self, "w_o", _f64(attn.out_proj.weight))
        self.scores = Scores(last=False)

    def forward(self, x: torch.Tensor, key_bias: torch.Tensor | None) -> torch.Tensor:
        """x (T, d) shifted by bo; key_bias (T, 1) or None."""
        t, h, dh = x.shape[0], self.h, self.dh
        qkv = gemm(self.w_qkv, x, self.b_qkv, trans_b=True).reshape(3 * h, dh, t)  # (3h, dh, T)
        q, k, v = torch.split(qkv, [h, h, h], dim=0)  # each (h, dh, T)
        scores = self.scores(k, q, key_bias)  # (h, keys, queries)
        out = torch.matmul(v, torch.softmax(scores, dim=1)).reshape(h * dh, t)  # (d, queries)
        return gemm(out, self.w_o, x, trans_a=True, trans_b=True)  # + x' = residual + bo


# Fold Wq.Wk and Wo.Wv in the last layer only while the weights that adds ((2h - 4) d^2 floats: h d^2 per fold
# against d^2 + d^2 unfolded) cost less to read than the 4 nodes it saves (~1.1 us each, ~256 KB of cached
# weights). Small BFM (d 64, 4 heads): +16 k floats, folded (73 -> 69 nodes, same p50). Paper (d 512): +1 M
# floats (4 MB of a 51 MB graph); unfolded measured p50 0.87x the traced graph against 0.91x folded.
FOLD_MAX_EXTRA_WEIGHTS = 1 << 16


class LastAttention(nn.Module):
    """Self-attention for token `query_index`'s row only (BFM first_query_only), without projecting the other
    tokens: x (T, d) in, x0 + attention(x)_0 (1, d) out (see module doc). `folded`: Wq.Wk and Wo.Wv are
    single matrices (FOLD_MAX_EXTRA_WEIGHTS), else q -> U and the head outputs -> Wo go through per-head
    MatMuls with the original weights."""

    def __init__(self, layer: EncoderLayer, n_tokens: int, query_index: int):
        super().__init__()
        attn = layer.self_attn
        h, dh = self.h, self.dh = attn.num_heads, attn.head_dim
        d = h * dh
        w, b = _f64(attn.in_proj_weight), _f64(attn.in_proj_bias)
        wq, wk, wv = w[:d].reshape(h, dh, d), w[d : 2 * d].reshape(h, dh, d), w[2 * d :].reshape(h, dh, d)
        bq, bv = b[:d].reshape(h, dh), b[2 * d :]
        wo, bo = _f64(attn.out_proj.weight), _f64(attn.out_proj.bias)
        scale = 1.0 / math.sqrt(dh)
        out_bias = wo @ bv + bo  # each head's weights sum to 1: bv passes through the weighted sum unchanged
        pick = torch.zeros(1, n_tokens, dtype=torch.float64)
        pick[0, query_index] = 1.0
        _const(self, "pick", pick)
        _const(self, "out_bias", out_bias)
        self.folded = (2 * h - 4) * d * d <= FOLD_MAX_EXTRA_WEIGHTS
        if self.folded:  # u = x0 @ w_u^T + b_u, rows (head, feature): u_h = scale Wk_h^T (Wq_h x0 + bq_h)
            w_q = scale * torch.einsum("hed,hef->hfd", wq, wk).reshape(h * d, d)
            b_q = scale * torch.einsum("he,hef->hf", bq, wk).reshape(h * d)
            wo_h = wo.reshape(d, h, dh).permute(1, 0, 2)  # (h, d_out, dh)
            _const(self, "w_o", torch.einsum("hoe,hef->ohf", wo_h, wv).reshape(d, h * d))  # Wo_h Wv_h
        else:  # q (1, d) -> per head (1, dh) @ Wk_h -> u_h; mixed_h @ Wv_h^T -> the head outputs -> Wo
            w_q, b_q = scale * w[:d], scale * b[:d]
            _const(self, "w_k", wk)  # (h, dh, d)
            _const(self, "w_v", wv.transpose(1, 2))  # (h, d, dh)
            _const(self, "w_o", wo)
        _const(self, "w_q", w_q)
        _const(self, "b_q", b_q - w_q @ out_bias)  # the picked row arrives with out_bias added
        self.scores = Scores(last=True)

    def forward(self, x: torch.Tensor, key_bias: torch.Tensor | None) -> torch.Tensor:
        """x (T, d), not shifted; key_bias (T, 1) or None."""
        h, dh, d = self.h, self.dh, x.shape[1]
        x0 = gemm(self.pick, x, self.out_bias)  # the residual row, the output bias already added
        q = F.linear(x0, self.w_q, self.b_q)
        u = q if self.folded else torch.matmul(q.reshape(h, 1, dh), self.w_k)
        weights = torch.softmax(self.scores(x, u.reshape(h, d), key_bias), dim=0)  # (keys, h)
        mixed = gemm(weights, x, trans_a=True)  # (h, d), per head: sum_j a_hj x_j
        heads = mixed if self.folded else torch.matmul(mixed.reshape(h, 1, d), self.w_v)
        return gemm(heads.reshape(1, -1), self.w_o, x0, trans_b=True)


class Layer(nn.Module):
    """One post-LN encoder layer: self_attn (FullAttention or LastAttention), then the FFN."""

    def __init__(self, self_attn: nn.Module, ffn: FFN):
        super().__init__()
        self.self_attn, self.ffn = self_attn, ffn

    def forward(self, x: torch.Tensor, key_bias: torch.Tensor | None) -> torch.Tensor:
        return self.ffn(self.self_attn(x, key_bias))


def _layers(bfm: BFM, n_tokens: int) -> nn.ModuleList:
    """Full layers, each handing the next full layer its input shift through norm2; then the last layer."""
    full, last = list(bfm.layers[:-1]), bfm.layers[-1]
    out_shifts = ([attention_shift(nxt) for nxt in full[1:]] + [None])[: len(full)]
    layers = [Layer(FullAttention(a), FFN(a, shift)) for a, shift in zip(full, out_shifts, strict=True)]
    return nn.ModuleList([*layers, Layer(LastAttention(last, n_tokens, query_index=0), FFN(last, None))])


class LeanBFMGraph(nn.Module):
    """BFMGraph's function at batch 1 in export-friendly form: same positional inputs, names and output.

    Built from a BFM (+ optional TaskEncoder: fused role, last input task_obs; else task_token) and the kept
    groups, exactly like BFMGraph (export parity is measured against that BFMGraph). Holds only folded
    constants, none of the BFM's modules.
    """

    def __init__(self, bfm: BFM, groups: Sequence[str] = ALL_GROUPS, encoder: TaskEncoder | None = None):
        super().__init__()
        like = BFMGraph(bfm, groups, encoder)  # validates `groups`; its names are ours
        self.names, self.input_names = list(like.names), list(like.input_names)
        self.has_encoder = encoder is not None
        self.groups = [g for g in TOKEN_GROUPS if g.name in groups]
        masked = [g for g in self.groups if g.mask_name is not None and g.mask_name in self.names]
        self.key_bias = KeyBias(self.groups, masked) if masked else None  # no mask input: all visible
        self.d = bfm.config.d_model
        # the shift the first layer's input carries (none when the first layer is also the last)
        shift0 = attention_shift(bfm.layers[0]) if len(bfm.layers) > 1 else None

        segments = [(g.name, g.name, g.n_tokens, bfm.token_encoders[g.name].norm) for g in self.groups]
        if self.has_encoder:
            segments.append((TASK_OBS_NAME, TASK_OBS_NAME, 1, encoder.net.norm))
        self.shared_obs = _same_stats(bfm.token_encoders["obs"].norm, bfm.decoder_obs_norm)
        if not self.shared_obs:
            segments.append((DECODER_OBS, "obs", 1, bfm.decoder_obs_norm))
        by_clamp: dict = {}
        for s in segments:
            by_clamp.setdefault(s[3].clamp, []).append(s)
        self.norms = nn.ModuleList([ConcatNormalizer(segs) for segs in by_clamp.values()])

        self.tokens = nn.ModuleDict({g.name: GemmChain(_linears(bfm.token_encoders[g.name].trunk), shift0)
                                     for g in self.groups})  # fmt: skip
        self.task = GemmChain(_linears(encoder.net.trunk), shift0) if self.has_encoder else None
        no_shift = self.has_encoder or shift0 is None  # bfm role: the task token input gets the shift added
        self.register_buffer("task_shift", None if no_shift else shift0.to(torch.float32))
        self.layers = _layers(bfm, sum(g.n_tokens for g in self.groups) + 1)  # + the task token
        self.prior, self.dec_first, self.decoder = _head(bfm)

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        inputs = dict(zip(self.names, args[:-1], strict=True))
        if self.has_encoder:
            inputs[TASK_OBS_NAME] = args[-1]
        normed: dict[str, torch.Tensor] = {}
        for norm in self.norms:
            normed.update(norm(inputs))
        rows = [self.tokens[g.name](normed[g.name]) for g in self.groups]
        if self.has_encoder:
            task = self.task(normed[TASK_OBS_NAME])
        else:
            task = args[-1]
            if tuple(task.shape) != (1, self.d):  # the graph's task_token input; the token count is built in
                raise TTDeployError(f"lean graph: task_token must be (1, {self.d}); got {tuple(task.shape)}")
            task = task if self.task_shift is None else task + self.task_shift
        x = torch.cat([*rows, task], dim=0)  # (T, d)
        key_bias = self.key_bias(inputs) if self.key_bias is not None else None
        for layer in self.layers:
            x = layer(x, key_bias)
        obs = normed["obs" if self.shared_obs else DECODER_OBS]
        h = self.dec_first(torch.cat([obs, inputs["terrain"], self.prior(x)], dim=1))
        return torch.clamp(self.decoder(h), -ACTION_CLAMP, ACTION_CLAMP)


def _same_stats(a: RunningMeanStd, b: RunningMeanStd) -> bool:
    return a.clamp == b.clamp and torch.equal(a.mean, b.mean) and torch.equal(a.var, b.var)


def _head(bfm: BFM) -> tuple[nn.Module, GemmChain, GemmChain]:
    """(prior + latent MLP up to its last ReLU, the decoder's first Linear, the rest of the decoder).

    prior_mu -> latent_mlp has no activation between them, so their facing Linears are one; the latent MLP's
    last Linear moves into the decoder's first one, on the latent columns of its [obs, terrain, latent] input."""
    chain = _merge_linear_runs(_linears(bfm.prior_mu) + _linears(bfm.latent_mlp))
    w_last, b_last, _ = chain[-1]
    dec = _linears(bfm.decoder)
    w1, b1, relu1 = dec[0]
    split = SELF_OBS_DIM + TOKEN_GROUP_BY_NAME["terrain"].feat_dim
    if w1.shape[1] != split + w_last.shape[0]:
        raise TTDeployError("lean graph: the decoder input is not [obs, terrain, latent]")
    w1_latent = w1[:, split:]
    first = (torch.cat([w1[:, :split], w1_latent @ w_last], dim=1), b1 + w1_latent @ b_last, relu1)
    # without any ReLU in prior + latent, the decoder's first Gemm reads the transformer output itself
    prior = GemmChain(chain[:-1]) if len(chain) > 1 else nn.Identity()
    return prior, GemmChain([first]), GemmChain(dec[1:])


__all__ = ["LeanBFMGraph", "gemm"]
