"""Read ProtoMotions v3 MaskedMimic checkpoints and reproduce the original model in PyTorch.

A v3 run dir holds `last.ckpt` (the supervised agent's dict: `model` = MaskedMimicModel.state_dict()
beside trainer state) and `resolved_configs{,_inference}.yaml` (every dict leaf a string, written
by train_agent.py's clean_dict_for_storage; list items keep their types). The model is built
from lazy modules, so shapes alone do not give its layout: the config gives the module list of
each container (`_encoder`, `_prior`, `_trunk`: ModuleContainer of ObsProcessor / MLPWithConcat /
Transformer), key routing, reshapes, activations, head count and clamp; tensor shapes give
input widths, and every width the config states is checked against them.

Checked against NVlabs/ProtoMotions v3 (main, commit 607ca7a0): agents/supervised/
masked_mimic_model.py (prior -> z = mu + exp(0.5 logvar) * vae_noise -> trunk; no tanh),
agents/common/common.py (ObsProcessor, ModuleContainer, apply_module_operations),
agents/common/mlp.py (build_mlp: LayerNorm only after the first Linear), agents/common/
transformer.py (tokens in in_keys order, no positional encoding, key padding only for
input_and_mask_mapping, output token 0 then output_activation), agents/utils/normalization.py
(RunningMeanStd: (x - mean.float()) / sqrt(var.float() + 1e-5), clamp), base_agent/agent.py
(checkpoint dict). The module tree below mirrors the original's, so the state_dict loads
strictly under the original key names.

`resolved_configs*.pt` is never opened (pickled ProtoMotions classes; see safe_checkpoint.py).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tt_deploy.errors import CheckpointError, InputError
from tt_deploy.models.normalization import NORM_EPSILON, normalize
from tt_deploy.models.safe_checkpoint import check_file, load_checkpoint
from tt_deploy.spec import V3_VAE_NOISE

SOURCE = "protomotions-v3"
YAML_SIDECARS = ("resolved_configs_inference.yaml", "resolved_configs.yaml")  # the original prefers inference
PICKLED_SIDECARS = ("resolved_configs_inference.pt", "resolved_configs.pt")
MODEL_TARGET = "protomotions.agents.supervised.masked_mimic_model.MaskedMimicModel"
T_CONTAINER = "protomotions.agents.common.common.ModuleContainer"
T_OBS = "protomotions.agents.common.common.ObsProcessor"
T_MLP = "protomotions.agents.common.mlp.MLPWithConcat"
T_TRANSFORMER = "protomotions.agents.common.transformer.Transformer"
VAE_LATENT, VAE_NOISE = "vae_latent", V3_VAE_NOISE
CONTAINERS = ("_prior", "_trunk", "_encoder")  # forward order; the encoder is the training-only path
_ACTS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU, "silu": nn.SiLU, "mish": nn.Mish,
         "identity": nn.Identity}  # agents/utils/training.py get_activation_func  # fmt: skip
_FUNCTIONAL = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu}  # TransformerConfig.activation options
_MISSING = object()


# --- config: string leaves -> typed values ---------------------------------------------------------
class _Node:
    """A config mapping with its dotted path, read through typed getters (leaves are strings)."""

    def __init__(self, node, where: str, file: str):
        if not isinstance(node, Mapping):
            raise CheckpointError(f"{file}: {where} is not a mapping")
        self.node, self.where, self.file = node, where, file

    def raw(self, key: str, default=_MISSING):
        if key not in self.node:
            if default is _MISSING:
                raise CheckpointError(f"{self.file}: {self.where} has no {key!r}")
            return default
        v = self.node[key]
        return None if v == "None" else v

    def sub(self, key: str) -> _Node:
        return _Node(self.raw(key), f"{self.where}.{key}", self.file)

    def int(self, key: str, default=_MISSING) -> int:
        v = self.raw(key, default)
        if isinstance(v, str) and re.fullmatch(r"[+-]?\d+", v.strip()):
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool):
            raise CheckpointError(f"{self.file}: {self.where}.{key} = {v!r} is not an integer")
        return v

    def float(self, key: str, default=_MISSING) -> float | None:
        v = self.raw(key, default)
        if v is None:
            return None
        try:
            return float(v)
        except (TypeError, ValueError):
            raise CheckpointError(f"{self.file}: {self.where}.{key} = {v!r} is not a number") from None

    def bool(self, key: str, default=_MISSING) -> bool:
        v = self.raw(key, default)
        v = {"True": True, "False": False}.get(v, v) if isinstance(v, str) else v
        if not isinstance(v, bool):
            raise CheckpointError(f"{self.file}: {self.where}.{key} = {v!r} is not True/False")
        return v

    def str(self, key: str, default=_MISSING) -> str | None:
        v = self.raw(key, default)
        if v is not None and not isinstance(v, str):
            raise CheckpointError(f"{self.file}: {self.where}.{key} = {v!r} is not a string")
        return v

    def keys(self, key: str) -> tuple[str, ...]:
        v = self.raw(key, [])
        if not isinstance(v, list) or not all(isinstance(k, str) for k in v):
            raise CheckpointError(f"{self.file}: {self.where}.{key} = {v!r} is not a list of key names")
        return tuple(v)

    def list(self, key: str) -> list:
        v = self.raw(key, [])
        if not isinstance(v, list):
            raise CheckpointError(f"{self.file}: {self.where}.{key} is not a list")
        return v


@dataclass(frozen=True)
class Layer:
    units: int
    activation: str
    layer_norm: bool


@dataclass(frozen=True)
class ModuleSpec:
    """One entry of a ModuleContainer's `models` list, as far as the forward needs it."""

    kind: str  # "obs" | "mlp" | "transformer"
    where: str  # config path, e.g. agent.model.prior.models.4
    in_keys: tuple[str, ...]
    out_keys: tuple[str, ...]
    ops: tuple = ()  # ("reshape", (dims after batch)) | ("forward",)
    normalize: bool = False
    clamp: float | None = None
    layers: tuple[Layer, ...] = ()
    num_out: int | None = None
    out_act: str | None = None
    # transformer only
    d_model: int = 0
    heads: int = 0
    ff: int = 0
    num_layers: int = 0
    activation: str = "relu"
    mask_map: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ContainerSpec:
    name: str  # _prior / _trunk / _encoder (the state_dict prefix)
    in_keys: tuple[str, ...]
    out_keys: tuple[str, ...]
    modules: tuple[ModuleSpec, ...]


@dataclass(frozen=True)
class V3Spec:
    containers: tuple[ContainerSpec, ...]  # prior, trunk[, encoder]
    latent_dim: int
    noise_type: str | None
    action_transform: str | None  # env side (env.action_config); not part of the model
    config_file: str

    def container(self, name: str) -> ContainerSpec | None:
        return next((c for c in self.containers if c.name == name), None)


def _act(v, where: str, file: str, options=_ACTS) -> str:
    if not isinstance(v, str) or v.lower() not in options:
        raise CheckpointError(f"{file}: {where} = {v!r}; supported: {', '.join(options)}")
    return v.lower()


def _ops(n: _Node) -> tuple:
    out = []
    for j, op in enumerate(n.list("module_operations")):
        where = f"{n.where}.module_operations.{j}"
        # {} is ModuleOperationForwardConfig; SphereProjectionConfig would dump as {} too (MaskedMimic has none)
        if op == {}:
            out.append(("forward",))
        elif isinstance(op, Mapping) and set(op) == {"new_shape"} and isinstance(op["new_shape"], list):
            dims = op["new_shape"]
            if not dims or dims[0] != "batch_size":
                raise CheckpointError(
                    f"{n.file}: {where}.new_shape = {dims!r}: only [batch_size, ...] is supported"
                )
            try:
                rest = tuple(int(d) for d in dims[1:])
            except (TypeError, ValueError):
                raise CheckpointError(
                    f"{n.file}: {where}.new_shape = {dims!r} has a non-integer size"
                ) from None
            out.append(("reshape", rest))
        else:
            raise CheckpointError(
                f"{n.file}: {where} = {op!r}: only reshape (new_shape) and forward ({{}}) are supported"
            )
    return tuple(out)


def _module_spec(n: _Node) -> ModuleSpec:
    target = n.str("_target_")
    ins, outs = n.keys("in_keys"), n.keys("out_keys")
    if len(outs) != 1 or not ins:
        raise CheckpointError(
            f"{n.file}: {n.where} needs in_keys and exactly one out_key (got {list(ins)} -> {list(outs)})"
        )
    if target == T_TRANSFORMER:
        mapping = n.raw("input_and_mask_mapping", None) or {}
        if not isinstance(mapping, Mapping) or not all(k in ins and v in ins for k, v in mapping.items()):
            raise CheckpointError(
                f"{n.file}: {n.where}.input_and_mask_mapping = {mapping!r} must map in_keys to in_keys"
            )
        n.float("dropout", 0.0)  # inactive in eval, as at the original's inference
        d = n.int("latent_dim")
        tok = n.int("transformer_token_size", d)
        if tok != d:
            raise CheckpointError(
                f"{n.file}: {n.where}: transformer_token_size {tok} != latent_dim {d} (tokens enter unprojected)"
            )
        out_act = n.str("output_activation", None)
        return ModuleSpec(
            "transformer", n.where, ins, outs, d_model=d, heads=n.int("num_heads"), ff=n.int("ff_size"),
            num_layers=n.int("num_layers"), activation=_act(n.raw("activation", "relu"), n.where + ".activation", n.file, _FUNCTIONAL),
            out_act=None if out_act is None else _act(out_act, n.where + ".output_activation", n.file),
            mask_map=tuple(mapping.items()),
        )  # fmt: skip
    if target not in (T_OBS, T_MLP):
        raise CheckpointError(
            f"{n.file}: {n.where}._target_ = {target!r} is not supported (ObsProcessor, MLPWithConcat, Transformer)"
        )
    normalize = n.bool("normalize_obs", False)
    ops = _ops(n) if target == T_OBS or "module_operations" in n.node else (("forward",),)
    common = dict(ops=ops, normalize=normalize, clamp=n.float("norm_clamp_value", 5.0) if normalize else None)
    if target == T_OBS:
        return ModuleSpec("obs", n.where, ins, outs, **common)
    layers = []
    for j, lay in enumerate(n.list("layers")):
        ln = _Node(lay, f"{n.where}.layers.{j}", n.file)
        layers.append(
            Layer(
                ln.int("units"),
                _act(ln.raw("activation", "relu"), ln.where + ".activation", n.file),
                ln.bool("use_layer_norm", False) and j == 0,
            )
        )  # build_mlp: LayerNorm only at i == 0
    out_act = n.str("output_activation", None)
    return ModuleSpec("mlp", n.where, ins, outs, layers=tuple(layers), num_out=n.int("num_out"),
                      out_act=None if out_act is None else _act(out_act, n.where + ".output_activation", n.file),
                      **common)  # fmt: skip


def parse_config(cfg: Mapping, file: str = "resolved_configs.yaml") -> V3Spec:
    """The model layout from a resolved_configs YAML (already yaml.safe_load-ed)."""
    model = _Node(_Node(cfg, "", file).raw("agent"), "agent", file).sub("model")
    target = model.str("_target_")
    if target != MODEL_TARGET:
        raise CheckpointError(f"{file}: agent.model._target_ = {target!r}; only {MODEL_TARGET} is supported")
    containers = []
    for name in CONTAINERS:
        key = name[1:]
        if key not in model.node and name == "_encoder":
            continue
        c = model.sub(key)
        if c.str("_target_") != T_CONTAINER:
            raise CheckpointError(f"{file}: {c.where}._target_ must be {T_CONTAINER}")
        mods = tuple(
            _module_spec(_Node(m, f"{c.where}.models.{i}", file)) for i, m in enumerate(c.list("models"))
        )
        spec = ContainerSpec(name, c.keys("in_keys"), c.keys("out_keys"), mods)
        avail = set(spec.in_keys)
        for m in mods:
            missing = [k for k in m.in_keys if k not in avail]
            if missing:
                raise CheckpointError(
                    f"{file}: {m.where} reads {missing[0]!r}, which no earlier module or container input gives"
                )
            avail |= set(m.out_keys)
        if any(k not in avail for k in spec.out_keys):
            raise CheckpointError(f"{file}: {c.where}.out_keys {list(spec.out_keys)} are not all produced")
        containers.append(spec)
    prior, trunk = containers[0], containers[1]
    if len(prior.out_keys) != 2 or VAE_LATENT not in trunk.in_keys or len(trunk.out_keys) != 1:
        raise CheckpointError(
            f"{file}: expected prior -> (mu, logvar) and trunk(..., {VAE_LATENT}) -> action"
        )
    vae = model.sub("vae")
    env = _Node(cfg, "", file).raw("env", None)
    act_cfg = (env or {}).get("action_config") if isinstance(env, Mapping) else None
    transform = act_cfg.get("action_transform") if isinstance(act_cfg, Mapping) else None
    return V3Spec(tuple(containers), vae.int("vae_latent_dim"), vae.str("vae_noise_type", None),
                  None if transform == "None" else transform, file)  # fmt: skip


# --- the modules (names mirror the original, so its state_dict loads strictly) ------------------
class RunningStats(nn.Module):
    """RunningMeanStd at inference: float64 buffers, cast to float32 before use as the original does."""

    def __init__(self, dim: int, clamp: float | None):
        super().__init__()
        self.clamp = clamp
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(dim, dtype=torch.float64))
        self.register_buffer("count", torch.ones((), dtype=torch.long))  # unused at inference

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return normalize(x, self.mean.float(), self.var.float(), self.clamp)


class NormObs(nn.Module):
    """NormObsBase: holds `running_obs_norm` only when normalize_obs is set."""

    def __init__(self, dim: int | None, clamp: float | None):
        super().__init__()
        if dim is not None:
            self.running_obs_norm = RunningStats(dim, clamp)

    def forward(self, x):
        return self.running_obs_norm(x) if hasattr(self, "running_obs_norm") else x


def _cat(td: Mapping, keys) -> torch.Tensor:
    xs = [td[k] for k in keys]
    xs = [x if x.is_floating_point() else x.float() for x in xs]  # bool masks: what torch.cat promotes to
    return xs[0] if len(xs) == 1 else torch.cat(xs, dim=-1)


def _apply_ops(x: torch.Tensor, ops, norm: nn.Module | None, model: nn.Module | None):
    """common.apply_module_operations for reshape and forward."""
    batch = x.shape[0]
    for op in ops:
        if op[0] == "reshape":
            x = x.reshape(batch, *op[1])
        else:
            shape = x.shape
            if len(shape) > 2:
                x = x.reshape(-1, shape[-1])
            if norm is not None:
                x = norm(x)
            if len(shape) > 2:
                x = x.reshape(*shape[:-1], -1)
            if model is not None:
                x = model(x)
    return x


class ObsProcessor(nn.Module):
    def __init__(self, spec: ModuleSpec, norm_dim: int | None):
        super().__init__()
        self.spec = spec
        self.norm = NormObs(norm_dim, spec.clamp) if spec.normalize else None

    def forward(self, td: dict) -> None:
        td[self.spec.out_keys[0]] = _apply_ops(_cat(td, self.spec.in_keys), self.spec.ops, self.norm, None)


class MLPWithConcat(nn.Module):
    def __init__(self, spec: ModuleSpec, in_dim: int):
        super().__init__()
        self.spec = spec
        self.norm = NormObs(in_dim if spec.normalize else None, spec.clamp)
        layers, d = [], in_dim
        for lay in spec.layers:
            layers.append(nn.Linear(d, lay.units))
            if lay.layer_norm:
                layers.append(nn.LayerNorm(lay.units))
            layers.append(_ACTS[lay.activation]())
            d = lay.units
        layers.append(nn.Linear(d, spec.num_out))
        self.mlp = nn.Sequential(*layers)
        self.out_act = _ACTS[spec.out_act]() if spec.out_act else None

    def forward(self, td: dict) -> None:
        y = _apply_ops(_cat(td, self.spec.in_keys), self.spec.ops, self.norm, self.mlp)
        td[self.spec.out_keys[0]] = y if self.out_act is None else self.out_act(y)


class Transformer(nn.Module):
    """transformer.Transformer: concat tokens, pad masked keys, encoder, token 0, output activation."""

    def __init__(self, spec: ModuleSpec):
        super().__init__()
        self.spec = spec
        masks = {m for _, m in spec.mask_map}
        self.token_keys = tuple(k for k in spec.in_keys if k not in masks)
        layer = nn.TransformerEncoderLayer(spec.d_model, spec.heads, spec.ff, dropout=0.0,
                                           activation=_FUNCTIONAL[spec.activation], batch_first=True)  # fmt: skip
        # no nested tensors: the same numbers (the fixture passes either way), and the ONNX exporter has no
        # aten::_nested_tensor_from_mask
        self.seqTransEncoder = nn.TransformerEncoder(layer, num_layers=spec.num_layers, enable_nested_tensor=False)
        self.out_act = _ACTS[spec.out_act]() if spec.out_act else None

    def forward(self, td: dict) -> None:
        mapping = dict(self.spec.mask_map)
        toks, pads = [], []
        for k in self.token_keys:
            t = td[k] if td[k].dim() == 3 else td[k].unsqueeze(1)
            toks.append(t)
            n = t.shape[1]
            if k in mapping:  # obs masks are 1 = valid; the encoder wants True = ignore
                m = td[mapping[k]].logical_not()
                m = m.unsqueeze(1) if m.dim() == 1 else m
                if m.shape[1] > n:
                    m = m.all(dim=-1, keepdim=True).expand(-1, n)
                elif m.shape[1] < n:
                    m = m.expand(-1, n)
                pads.append(m)
            else:
                pads.append(torch.zeros(t.shape[0], n, dtype=torch.bool, device=t.device))
        out = self.seqTransEncoder(torch.cat(toks, dim=1), src_key_padding_mask=torch.cat(pads, dim=1))
        out = out[:, 0, :]
        td[self.spec.out_keys[0]] = out if self.out_act is None else self.out_act(out)


class Container(nn.Module):
    def __init__(self, spec: ContainerSpec, models: list[nn.Module]):
        super().__init__()
        self.spec = spec
        self.models = nn.ModuleList(models)

    def forward(self, td: dict) -> dict:
        for m in self.models:
            m(td)
        return td


# --- shapes: per-sample input widths, solved from the tensors where the config cannot tell ------------
def _numel(shape) -> int:
    return math.prod(shape) if shape else 1


def _reshaped(shape, dims) -> tuple:
    n, known = _numel(shape), [d for d in dims if d != -1]
    if dims.count(-1) > 1 or (known and n % _numel(known)) or (-1 not in dims and _numel(dims) != n):
        raise ValueError(f"cannot reshape {shape} to {dims}")
    return tuple(n // _numel(known) if d == -1 else d for d in dims)


def _solve_flat(ops, row: int) -> int | None:
    """Per-sample features of a flat input whose forward row is `row` (None when ops hide it)."""
    pre = ops[: next((i for i, op in enumerate(ops) if op[0] == "forward"), len(ops))]
    if not pre:
        return row
    dims = pre[-1][1]
    if dims and dims[-1] == -1 and dims.count(-1) == 1:
        return row * _numel(dims[:-1])
    return _numel(dims) if -1 not in dims and dims[-1] == row else None


class _Shapes:
    """Per-sample shapes of tensordict keys: given, traced forward, or solved from one unknown."""

    def __init__(self, given: Mapping[str, tuple]):
        self.s = {k: tuple(v) for k, v in given.items()}
        self.alias: dict[str, tuple[str, tuple]] = {}  # out_key -> (flat source key, ops) of pure reshapes

    def set(self, key: str, shape: tuple) -> None:
        shape = tuple(int(d) for d in shape)
        if key in self.s and self.s[key] != shape:
            raise CheckpointError(
                f"{key!r} has per-sample shape {self.s[key]} in one module and {shape} in another"
            )
        self.s[key] = shape
        if key in self.alias:  # back-solve the flat input of a reshape-only ObsProcessor
            src, ops = self.alias.pop(key)
            got = (_numel(shape),)
            try:
                for op in ops:
                    got = _reshaped(got, op[1]) if op[0] == "reshape" else got
            except ValueError:
                got = None
            if got != shape:
                raise CheckpointError(f"{key!r} must be {shape}, which its reshape of {src!r} cannot give")
            self.set(src, (_numel(shape),))

    def cat(self, keys) -> tuple | None:
        if any(k not in self.s for k in keys):
            return None
        shapes = [self.s[k] for k in keys]
        lead = shapes[0][:-1]
        if any(s[:-1] != lead for s in shapes):
            raise CheckpointError(
                f"cannot concatenate {dict(zip(keys, shapes, strict=True))}: leading dims differ"
            )
        return (*lead, sum(s[-1] for s in shapes))

    def solve(self, spec: ModuleSpec, row: int) -> None:
        """Give the one unknown input of `spec` the width that makes its forward row equal `row`."""
        unknown = [k for k in spec.in_keys if k not in self.s]
        if len(unknown) != 1:
            return
        (u,) = unknown
        known = [self.s[k] for k in spec.in_keys if k != u]
        if not known:
            flat = _solve_flat(spec.ops, row)
            if flat is not None:
                self.set(u, (flat,))
            return
        lead = known[0][:-1]
        if lead == () and any(op[0] == "reshape" for op in spec.ops):
            flat = _solve_flat(spec.ops, row)  # flat inputs concatenated, then reshaped
            if flat is not None:
                self.set(u, (flat - sum(s[-1] for s in known),))
            return
        self.set(u, (*lead, row - sum(s[-1] for s in known)))


def _trace(shapes: _Shapes, spec: ModuleSpec, out_width: int | None) -> tuple[int, tuple] | None:
    """(forward row, output shape) of a module whose inputs are all known, else None."""
    shape = shapes.cat(spec.in_keys)
    if shape is None:
        return None
    row = None
    try:
        for op in spec.ops:
            if op[0] == "reshape":
                shape = _reshaped(shape, op[1])
            else:
                row = shape[-1]
                if out_width is not None:
                    shape = (*shape[:-1], out_width)
    except ValueError as exc:
        raise CheckpointError(f"{spec.where}: {exc}") from None
    return (shape[-1] if row is None else row), shape


# --- building from the config and the tensors ---------------------------------------------------
def _want(sd: Mapping | None, key: str, shape: tuple, what: str) -> None:
    if sd is None:
        return
    if key not in sd:
        raise CheckpointError(f"missing key {key!r} in the v3 model state dict ({what})")
    if tuple(sd[key].shape) != tuple(shape):
        raise CheckpointError(f"{key} has shape {tuple(sd[key].shape)}, but {what} gives {tuple(shape)}")


def _row_from_tensors(sd: Mapping | None, p: str) -> int | None:
    """The forward row width the tensors imply: normaliser stats, else the first Linear's inputs."""
    if sd is None:
        return None
    for key in (f"{p}norm.running_obs_norm.mean", f"{p}mlp.0.weight"):
        if key in sd:
            t = sd[key]
            return int(t.shape[-1] if key.endswith("weight") else t.numel())
    return None


def _build_container(spec: ContainerSpec, sd: Mapping | None, shapes: _Shapes) -> Container:
    models = []
    for i, m in enumerate(spec.modules):
        p = f"{spec.name}.models.{i}."
        if m.kind == "transformer":
            for k in (k for k in m.in_keys if k not in dict(m.mask_map).values()):
                if k not in shapes.s:
                    raise CheckpointError(f"{m.where}: the width of token input {k!r} is unknown")
                if shapes.s[k][-1] != m.d_model:
                    raise CheckpointError(
                        f"{m.where}: token {k!r} is {shapes.s[k][-1]} wide, latent_dim is {m.d_model}"
                    )
            for tok, mask in m.mask_map:
                n = shapes.s[tok][0] if len(shapes.s[tok]) == 2 else 1
                if mask not in shapes.s:
                    shapes.set(mask, (n,))
            d, L = m.d_model, f"{p}seqTransEncoder.layers."
            if sd is not None:
                found = sorted({int(k[len(L) :].split(".")[0]) for k in sd if k.startswith(L)})
                if found != list(range(m.num_layers)):
                    raise CheckpointError(f"{L}* has layers {found}, {m.where}.num_layers is {m.num_layers}")
            if d % m.heads:
                raise CheckpointError(f"{m.where}: latent_dim {d} is not divisible by num_heads {m.heads}")
            for j in range(m.num_layers):
                _want(sd, f"{L}{j}.self_attn.in_proj_weight", (3 * d, d), f"{m.where}.latent_dim")
                _want(sd, f"{L}{j}.linear1.weight", (m.ff, d), f"{m.where}.ff_size")
            shapes.set(m.out_keys[0], (d,))
            models.append(Transformer(m))
            continue
        row_t = _row_from_tensors(sd, p)
        traced = _trace(shapes, m, m.num_out)
        if traced is None and row_t is not None:
            shapes.solve(m, row_t)
            traced = _trace(shapes, m, m.num_out)
        if traced is None:
            if (
                m.kind == "obs" and not m.normalize and len(m.in_keys) == 1
            ):  # reshape only: its reader solves it
                shapes.alias[m.out_keys[0]] = (m.in_keys[0], m.ops)
                models.append(ObsProcessor(m, None))
                continue
            raise CheckpointError(
                f"{m.where}: cannot tell the width of {[k for k in m.in_keys if k not in shapes.s]}"
            )
        row, out = traced
        if row_t is not None and row_t != row:
            raise CheckpointError(f"{p}: the tensors take {row_t} features, the inputs give {row}")
        if m.normalize:
            for name in ("mean", "var"):
                _want(sd, f"{p}norm.running_obs_norm.{name}", (row,), f"{m.where} input width")
        if m.kind == "obs":
            models.append(ObsProcessor(m, row))
        else:
            d, j = row, 0
            for lay in m.layers:
                _want(sd, f"{p}mlp.{j}.weight", (lay.units, d), f"{m.where} units {lay.units}")
                j, d = j + (3 if lay.layer_norm else 2), lay.units
            _want(sd, f"{p}mlp.{j}.weight", (m.num_out, d), f"{m.where}.num_out")
            models.append(MLPWithConcat(m, row))
        shapes.set(m.out_keys[0], out)
    for k in spec.out_keys:
        if k not in shapes.s:
            raise CheckpointError(f"{spec.name}: the width of output {k!r} is unknown")
    return Container(spec, models)


class V3MaskedMimic(nn.Module):
    """MaskedMimicModel's inference path (and its privileged encoder path), by the original names.

    forward(**inputs) -> (action, action_mean): the raw action with the given `vae_noise` (the
    original's `action`; the env applies tanh) and with vae_noise = 0 (the prior mean).
    `input_names` is the original get_inference_in_keys() order plus `vae_noise`.
    """

    def __init__(self, spec: V3Spec, sd: Mapping[str, torch.Tensor] | None = None,
                 input_dims: Mapping[str, tuple] | None = None):  # fmt: skip
        super().__init__()
        self.spec = spec
        shapes = _Shapes(input_dims or {})
        built = {}
        for c in spec.containers:
            if c.name == "_trunk":
                prior = spec.container("_prior")
                mu = shapes.s[prior.out_keys[0]]
                if mu != (spec.latent_dim,):
                    raise CheckpointError(
                        f"prior {prior.out_keys[0]} is {mu}, agent.model.vae.vae_latent_dim is {spec.latent_dim}"
                    )
                shapes.set(VAE_LATENT, mu)
            built[c.name] = _build_container(c, sd, shapes)
        for name in CONTAINERS:
            if name in built:
                setattr(self, name, built[name])
        self.shapes = dict(shapes.s)
        prior, trunk = spec.container("_prior"), spec.container("_trunk")
        self.input_names = tuple(
            dict.fromkeys([*prior.in_keys, *(k for k in trunk.in_keys if k != VAE_LATENT), VAE_NOISE])
        )
        self.shapes[VAE_NOISE] = (spec.latent_dim,)
        missing = [k for k in self.input_names if k not in self.shapes]
        if missing:
            raise CheckpointError(f"the width of input {missing[0]!r} is unknown")
        self.action_dim = self.shapes[trunk.out_keys[0]][-1]
        if sd is not None:
            self._load(sd)
        self.eval()

    def _load(self, sd: Mapping[str, torch.Tensor]) -> None:
        ours = self.state_dict()
        extra = sorted(set(sd) - set(ours))
        missing = sorted(set(ours) - set(sd))
        if extra:
            raise CheckpointError(
                f"unexpected key {extra[0]!r} in the v3 model state dict ({len(extra)} unmapped)"
            )
        if missing:
            raise CheckpointError(
                f"missing key {missing[0]!r} in the v3 model state dict ({len(missing)} missing)"
            )
        for k, t in sd.items():
            if tuple(t.shape) != tuple(ours[k].shape):
                raise CheckpointError(f"{k} has shape {tuple(t.shape)}, expected {tuple(ours[k].shape)}")
        self.load_state_dict(sd, strict=True)

    def _inputs(self, inputs: Mapping, names) -> dict:
        td = {}
        for k in names:
            if k not in inputs:
                raise InputError(f"missing input {k!r} (the model takes {', '.join(names)})")
            x = torch.as_tensor(inputs[k])
            x = x.float() if x.is_floating_point() else x  # the model is float32; bool masks stay bool
            if (
                x.dim() < 2
                or tuple(x.shape[1:]) != (_numel(self.shapes[k]),)
                and tuple(x.shape[1:]) != self.shapes[k]
            ):
                raise InputError(
                    f"input {k!r} has shape {tuple(x.shape)}, expected (batch, {_numel(self.shapes[k])})"
                )
            td[k] = x
        if len({int(x.shape[0]) for x in td.values()}) > 1:  # int(): shapes are tensors while tracing
            raise InputError(f"inputs disagree on the batch size: { {k: int(x.shape[0]) for k, x in td.items()} }")
        return td

    def outputs(self, inputs: Mapping, privileged: bool = False) -> dict[str, torch.Tensor]:
        """Every output of MaskedMimicModel.forward (privileged=True) or forward_inference, + action_mean."""
        names = list(self.input_names)
        if privileged:
            names += [k for k in self._encoder.spec.in_keys if k not in names]
        td = self._inputs(inputs, names)
        mu_key, logvar_key = self._prior.spec.out_keys
        self._prior(td)
        mu, logvar = td[mu_key], td[logvar_key]
        out = {
            "latent_mu": mu,
            "latent_logvar": logvar,
            "latent": mu + torch.exp(0.5 * logvar) * td[VAE_NOISE],
        }
        out["action"] = self._decode(td, out["latent"])
        out["action_mean"] = self._decode(td, mu)
        if privileged:
            self._encoder(td)
            e_mu, e_logvar = (td[k] for k in self._encoder.spec.out_keys)
            out["privileged_latent_mu"], out["privileged_latent_logvar"] = mu + e_mu, e_logvar
            out["privileged_latent"] = mu + e_mu + torch.exp(0.5 * e_logvar) * td[VAE_NOISE]
            out["privileged_action"] = self._decode(td, out["privileged_latent"])
        return out

    def _decode(self, td: dict, z: torch.Tensor) -> torch.Tensor:
        td[VAE_LATENT] = z
        self._trunk(td)
        return td[self._trunk.spec.out_keys[0]]

    def forward(self, *args, **kwargs):
        if len(args) > len(self.input_names):
            raise InputError(f"{len(args)} positional inputs, the model takes {len(self.input_names)}")
        named = dict(zip(self.input_names, args, strict=False)) | kwargs
        out = self.outputs(named)
        return out["action"], out["action_mean"]


# --- files: checkpoint, sidecars, versions --------------------------------------------------------
def find_checkpoint(path: str | os.PathLike) -> Path:
    """`path` itself, or the run dir's last.ckpt (or its only *.ckpt)."""
    path = Path(path)
    if path.is_dir():
        if (path / "last.ckpt").exists():
            return path / "last.ckpt"
        ckpts = sorted(path.glob("*.ckpt"))
        if len(ckpts) != 1:
            raise CheckpointError(
                f"{path}: expected last.ckpt (or one *.ckpt) in the run dir, found {len(ckpts)}"
            )
        return ckpts[0]
    return check_file(path)


def find_config(ckpt: Path, config: str | os.PathLike | None = None) -> Path:
    """The YAML config beside the checkpoint; never the pickled .pt (executing it would be needed)."""
    if config is not None:
        config = Path(config)
        if config.suffix == ".pt":
            raise CheckpointError(
                f"{config} is a pickle of ProtoMotions classes and is never opened; pass its YAML sidecar ({config.with_suffix('.yaml').name})"
            )
        if not config.is_file():
            raise CheckpointError(f"config not found: {config}")
        return config
    for name in YAML_SIDECARS:
        if (ckpt.parent / name).is_file():
            return ckpt.parent / name
    pts = [n for n in PICKLED_SIDECARS if (ckpt.parent / n).exists()]
    if pts:
        raise CheckpointError(
            f"{ckpt.parent} has {pts[0]} but no {YAML_SIDECARS[1]}: the .pt is pickled ProtoMotions classes and is "
            "never opened; the YAML sidecar train_agent.py writes beside it is needed (copy it there or pass --config)"
        )
    raise CheckpointError(f"no {' or '.join(YAML_SIDECARS)} beside {ckpt} (pass --config)")


def load_config(path: Path) -> dict:
    import yaml

    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CheckpointError(f"{path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(cfg, dict) or "agent" not in cfg:
        raise CheckpointError(f"{path}: expected a ProtoMotions v3 resolved config with an 'agent' section")
    return cfg


def _version_of(data: Mapping) -> str:
    if "actor" in data:
        return "v1"
    model = data.get("model")
    keys = list(model) if isinstance(model, Mapping) else []
    if any(k.startswith(("_prior.models.", "_trunk.models.")) for k in keys):
        return "v3"
    if (
        any(k.startswith(("_prior._trunk.", "_prior._mu_head.", "_trunk.")) for k in keys)
        or "optimizer" in data
    ):
        return "v2"
    if keys:
        return "v3-other"
    return "unknown"


def _load(ckpt: Path):
    """The checkpoint, refusing one whose weights entry held objects (they were skipped, not run)."""
    loaded = load_checkpoint(ckpt)
    for key in ("model", "actor"):
        if key in loaded.skipped:
            raise CheckpointError(
                f"{ckpt}: '{key}' is not a state dict of tensors (it names {loaded.skipped[key]}; nothing was executed)"
            )
    return loaded


def detect_version(path: str | os.PathLike) -> tuple[str, Path]:
    """("v1" | "v2" | "v3", checkpoint path) from the checkpoint's layout; anything else fails."""
    ckpt = find_checkpoint(path)
    version = _version_of(_load(ckpt).data)
    if version not in ("v1", "v2", "v3"):
        raise CheckpointError(f"{ckpt}: not a ProtoMotions MaskedMimic checkpoint ({version} layout)")
    return version, ckpt


def detect(path: str | os.PathLike, config: str | os.PathLike | None = None) -> dict:
    """Which ProtoMotions version wrote `path` (a run dir or a checkpoint), with a summary of its model."""
    ckpt = find_checkpoint(path)
    loaded = _load(ckpt)
    version = _version_of(loaded.data)
    base = {
        "version": version,
        "checkpoint": str(ckpt),
        "loader": loaded.loader,
        "skipped_entries": loaded.skipped,
    }
    if version == "v1":
        from tt_deploy.models import protomotions

        cfg = (
            config
            if config is not None
            else (ckpt.parent / "config.yaml" if (ckpt.parent / "config.yaml").is_file() else None)
        )
        bfm, skills, meta = protomotions._import(ckpt, cfg)
        c = bfm.config.to_dict()
        return {**base, "supported": True, "config": str(cfg) if cfg else None, "summary": {
            "d_model": c["d_model"], "num_layers": c["num_layers"], "num_heads": c["num_heads"], "ff_dim": c["ff_dim"],
            "latent_dim": c["latent_dim"], "token_hidden": list(c["token_hidden"]), "skills": sorted(skills),
            "parameters": sum(p.numel() for p in bfm.parameters()),
            "provenance": {"sizes": "tensors", "num_heads": meta["num_heads_from"]}}}  # fmt: skip
    if version == "v2":
        return {**base, "supported": False, "reason": "ProtoMotions v2 checkpoints are not supported yet "
                "(VaeDeterministicOutputModel: _prior._trunk/_mu_head keys, Hydra config.yaml)"}  # fmt: skip
    if version != "v3":
        why = (
            "a v3 model that is not MaskedMimic"
            if version == "v3-other"
            else "no 'actor' or 'model' state dict"
        )
        raise CheckpointError(
            f"{ckpt}: not a ProtoMotions MaskedMimic checkpoint ({why}; entries: {sorted(loaded.data)[:8]})"
        )
    _, summary = _load_v3(ckpt, loaded, config)
    return {**base, "supported": True, "config": summary["config"], "summary": summary}


def load_v3(path: str | os.PathLike, config: str | os.PathLike | None = None) -> tuple[V3MaskedMimic, dict]:
    """(V3MaskedMimic with the checkpoint's tensors, summary) from a v3 run dir or its last.ckpt."""
    ckpt = find_checkpoint(path)
    loaded = _load(ckpt)
    version = _version_of(loaded.data)
    if version != "v3":
        hint = {"v1": "read it with tt_deploy.models.protomotions (import-bfm)", "v2": "v2 not supported yet"}
        raise CheckpointError(
            f"{ckpt} is a ProtoMotions {version} checkpoint, not v3 ({hint.get(version, 'not MaskedMimic')})"
        )
    return _load_v3(ckpt, loaded, config)


def _load_v3(ckpt: Path, loaded, config) -> tuple[V3MaskedMimic, dict]:
    cfg_path = find_config(ckpt, config)
    spec = parse_config(load_config(cfg_path), cfg_path.name)
    sd = loaded.data.get("model")
    if not isinstance(sd, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()
    ):
        raise CheckpointError(f"{ckpt}: 'model' is not a state dict of tensors")
    model = V3MaskedMimic(spec, sd)
    return model, summarize(model, ckpt, cfg_path, loaded)


def summarize(model: V3MaskedMimic, ckpt: Path, cfg_path: Path, loaded) -> dict:
    spec = model.spec
    prior = spec.container("_prior")
    tr = next(m for m in prior.modules if m.kind == "transformer")
    mapping = dict(tr.mask_map)
    masks = set(mapping.values())
    groups = [{"token": k, "tokens": model.shapes[k][0] if len(model.shapes[k]) == 2 else 1,
               "key_padding": mapping.get(k)} for k in tr.in_keys if k not in masks]  # fmt: skip
    mlps = {
        m.out_keys[0]: [lay.units for lay in m.layers]
        for c in spec.containers
        for m in c.modules
        if m.kind == "mlp"
    }
    deploy = sum(p.numel() for n in ("_prior", "_trunk") for p in getattr(model, n).parameters())
    return {
        "version": "v3", "source": SOURCE, "checkpoint": str(ckpt), "config": str(cfg_path),
        "loader": loaded.loader, "skipped_entries": loaded.skipped,
        "epoch": loaded.data.get("epoch"), "step_count": loaded.data.get("step_count"),
        "d_model": tr.d_model, "num_layers": tr.num_layers, "num_heads": tr.heads, "ff_size": tr.ff,
        "latent_dim": spec.latent_dim, "action_dim": model.action_dim, "mlp_hidden": mlps,
        "token_groups": groups, "num_tokens": sum(g["tokens"] for g in groups),
        "inputs": {k: _numel(model.shapes[k]) for k in model.input_names},
        "parameters": sum(p.numel() for p in model.parameters()), "parameters_inference": deploy,
        "norm_clamp": sorted({m.clamp for c in spec.containers for m in c.modules if m.normalize}, key=str),
        "vae_noise_type": spec.noise_type, "action_transform": spec.action_transform,
        "provenance": {
            "d_model, ff_size, num_layers, MLP units, latent_dim": "config, checked against the tensor shapes",
            "num_heads, activations, token order, key padding, reshapes (token counts)": "config only (shapes cannot tell)",
            "input widths": "tensor shapes (normaliser stats and first-Linear widths)",
            "norm clamp": "config (norm_clamp_value)", "norm eps": f"ProtoMotions RunningMeanStd default {NORM_EPSILON} (NormObsBase never passes one: not in the config)",
            "action transform": "config (env.action_config; applied by the env, not the model)",
        },
    }  # fmt: skip
