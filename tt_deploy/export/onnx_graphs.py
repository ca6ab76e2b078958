"""Export wrappers and the one parametrised ONNX export path for bfm / encoder / fused graphs.

Exporter choice: `torch.onnx.export(..., dynamo=False)` (TorchScript tracing) followed by
`onnxscript.optimizer.optimize`. Why: tracing takes ~0.5 s per graph against 7-12 s for the
dynamo exporter (which also only implements opset >= 18 and down-converts), `input_names` /
`output_names` / `dynamic_axes` give exactly the v1 I/O names with one symbolic "batch" axis,
and after the onnxscript optimizer the graph is as small as dynamo's (e.g. 102 nodes for the
small BFM), with LayerNorm as one `LayerNormalization` op (opset >= 17). Torch marks the
TorchScript exporter deprecated; switching is one argument here (`dynamo=True`) and the
parity tests are the guard.

Static (batch-1) bfm / fused graphs are traced from `lean_graph.LeanBFMGraph` instead of the
training model (`traced_form`): the same function in a 2-D layout with folded constants, about
half the nodes (small fused reach 124 -> 69), because batch-1 latency is per-node dispatch. Their
parity is still measured against the BFMGraph itself. Dynamic-batch graphs trace the BFM as is.

Every graph ends in the final clamp to [-ACTION_CLAMP, ACTION_CLAMP], so runtime outputs are
final actions. Groups not listed in `groups` are simply not inputs: the BFM treats an absent
group exactly like a fully hidden one, so a specialised (fused) graph is output-identical.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from tt_deploy.errors import TTDeployError
from tt_deploy.models.bfm import BFM
from tt_deploy.models.task_encoder import TaskEncoder
from tt_deploy.runtime.manifest import BATCH_DIM, TensorSpec
from tt_deploy.spec import (
    ACTION_CLAMP,
    ACTIONS_NAME,
    TASK_OBS_NAME,
    TASK_TOKEN_NAME,
    TOKEN_GROUP_BY_NAME,
    TOKEN_GROUPS,
    group_input_names,  # noqa: F401 - re-exported
)

log = logging.getLogger(__name__)

MIN_OPSET = 17  # first opset with LayerNormalization as a single op
EXPORTER = (
    "torch.onnx.export(dynamo=False) + onnxscript.optimizer.optimize; static batch-1 bfm/fused graphs traced "
    "from the lean 2-D form (tt_deploy.export.lean_graph)"
)
# fp32 error ONNX Runtime vs PyTorch accepted at export time, relative to the output's scale:
# max abs error / max(1, max |output|). Actions live in [-1, 1], so for them it is the plain 1e-5
# abs; a trained encoder's token can reach tens, where fp32 rounding alone exceeds 1e-5 abs.
PARITY_TOL = 1e-5
ALL_GROUPS: tuple[str, ...] = tuple(g.name for g in TOKEN_GROUPS)


class BFMGraph(nn.Module):
    """Positional-argument wrapper: (kept groups + masks..., last) -> (B, 69) clamped actions.

    `last` is `task_token` (B, d) for bfm.onnx, or `task_obs` (B, task_obs_dim) when an encoder
    is given (fused.onnx: encoder feeding the BFM in one graph).
    """

    def __init__(self, bfm: BFM, groups: Sequence[str] = ALL_GROUPS, encoder: TaskEncoder | None = None):
        super().__init__()
        unknown = sorted(set(groups) - set(ALL_GROUPS))
        if unknown or "obs" not in groups or "terrain" not in groups:
            raise TTDeployError(
                f"groups must include obs and terrain and be among {list(ALL_GROUPS)}; got {groups}"
            )
        self.bfm, self.encoder = bfm, encoder
        self.groups = tuple(g for g in ALL_GROUPS if g in groups)
        self.names = group_input_names(groups)

    @property
    def input_names(self) -> list[str]:
        return [*self.names, TASK_OBS_NAME if self.encoder is not None else TASK_TOKEN_NAME]

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        inputs = dict(zip(self.names, args[:-1], strict=True))
        token = self.encoder(args[-1]) if self.encoder is not None else args[-1]
        return torch.clamp(self.bfm(inputs, token), -ACTION_CLAMP, ACTION_CLAMP)


def reference_actions(graph: BFMGraph, inputs: dict[str, np.ndarray], task_obs: np.ndarray) -> np.ndarray:
    """(n, 69) clamped reference actions; `graph` decides which groups are read (absent = hidden)."""
    with torch.inference_mode():
        args = [torch.from_numpy(np.ascontiguousarray(inputs[k])) for k in graph.names]
        return graph(*args, torch.from_numpy(task_obs)).numpy()


class EncoderGraph(nn.Module):
    """(B, task_obs_dim) task observation -> (B, d) task token; normalisation is inside the encoder."""

    def __init__(self, encoder: TaskEncoder):
        super().__init__()
        self.encoder = encoder
        self.input_names = [TASK_OBS_NAME]

    def forward(self, task_obs: torch.Tensor) -> torch.Tensor:
        return self.encoder(task_obs)


def example_inputs(
    names: Sequence[str], batch: int, last_dim: int, gen: torch.Generator
) -> tuple[torch.Tensor, ...]:
    """Random tracing inputs for `names` (group / mask names, then task_token or task_obs)."""
    out = []
    masks = {g.mask_name: g for g in TOKEN_GROUPS if g.mask_name}
    for n in names:
        if n in TOKEN_GROUP_BY_NAME:
            g = TOKEN_GROUP_BY_NAME[n]
            shape = (batch, g.feat_dim) if g.n_tokens == 1 else (batch, g.n_tokens, g.feat_dim)
            out.append(torch.randn(*shape, generator=gen))
        elif n in masks:
            out.append(torch.rand(batch, masks[n].n_tokens, generator=gen) < 0.5)
        else:
            out.append(torch.randn(batch, last_dim, generator=gen))
    return tuple(out)


def tensor_specs(values: Sequence[onnx.ValueInfoProto]) -> tuple[TensorSpec, ...]:
    """Manifest TensorSpecs read back from an ONNX graph's inputs or outputs."""
    specs = []
    for v in values:
        tt = v.type.tensor_type
        shape = tuple(d.dim_param if d.dim_param else int(d.dim_value) for d in tt.shape.dim)
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name
        specs.append(TensorSpec(v.name, shape, dtype))
    return tuple(specs)


def _trace_to_onnx(module: nn.Module, args, names: list[str], path: Path, dynamic: bool, opset: int) -> None:
    axes = {n: {0: BATCH_DIM} for n in [*names, module_output_name(module)]} if dynamic else None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # legacy exporter notice
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            module, args, str(path), dynamo=False, input_names=names,
            output_names=[module_output_name(module)], opset_version=opset, dynamic_axes=axes,
            do_constant_folding=True,
        )  # fmt: skip


def traced_form(module: nn.Module, dynamic: bool) -> nn.Module:
    """What is traced for `module`: a static (batch-1) BFMGraph as its LeanBFMGraph (lean_graph.py: the same
    function in about half the nodes, which is what batch-1 latency pays for), anything else as itself.

    Dynamic-batch graphs keep the traced training model: the lean form's 2-D (tokens, features) layout
    is batch 1 by construction."""
    if dynamic or not isinstance(module, BFMGraph):
        return module
    from tt_deploy.export.lean_graph import LeanBFMGraph  # imports this module

    return LeanBFMGraph(module.bfm, module.groups, module.encoder).eval()


def module_output_name(module: nn.Module) -> str:
    return TASK_TOKEN_NAME if isinstance(module, EncoderGraph) else ACTIONS_NAME


def export_graph(
    module: nn.Module, path: str | Path, *, dynamic: bool, opset: int, last_dim: int, metadata: dict[str, str]
) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...], float]:
    """Export `module` (BFMGraph / EncoderGraph) to `path`; returns (inputs, outputs, parity max abs).

    What is traced is `traced_form(module, dynamic)` (a static BFMGraph: its lean form); parity is against
    `module`.

    Static graphs have batch 1 baked in; dynamic ones a symbolic "batch" axis (traced at batch 2
    so nothing specialises on 1). The file is optimised, stamped with `metadata` (ONNX
    metadata_props, so the contract travels with the file), fully checked, and run once in ONNX
    Runtime against PyTorch; TTDeployError if they differ by more than PARITY_TOL.
    """
    if opset < MIN_OPSET:
        raise TTDeployError(f"opset must be >= {MIN_OPSET} (LayerNormalization as one op); got {opset}")
    import onnxscript.optimizer

    path = Path(path)
    module = module.eval()
    names = list(module.input_names)
    args = example_inputs(names, 2 if dynamic else 1, last_dim, torch.Generator().manual_seed(0))
    with torch.no_grad():
        _trace_to_onnx(traced_form(module, dynamic), args, names, path, dynamic, opset)
        model = onnxscript.optimizer.optimize(onnx.load(str(path)))
        for k, v in sorted(metadata.items()):
            model.metadata_props.add(key=k, value=v)
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, str(path))
        err = ort_parity(path, module, args)  # against `module` itself, whichever form was traced
    if not err <= PARITY_TOL:
        raise TTDeployError(f"{path.name}: ONNX Runtime differs from PyTorch by {err:.2e} (relative to the "
                            f"output scale) > {PARITY_TOL:.0e}")
    log.info(
        "exported %s (%s batch, opset %d), parity max abs %.2e",
        path.name,
        "dynamic" if dynamic else "static",
        opset,
        err,
    )
    return tensor_specs(model.graph.input), tensor_specs(model.graph.output), err


def ort_parity(path: str | Path, module: nn.Module, args: Sequence[torch.Tensor]) -> float:
    """Max abs difference between ONNX Runtime (CPU, all optimisations) and PyTorch on `args`,
    divided by max(1, max |PyTorch output|) (see PARITY_TOL)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = list(module.input_names)
    if [i.name for i in sess.get_inputs()] != names:  # the tracer drops unused inputs silently
        raise TTDeployError(
            f"{Path(path).name}: graph inputs {[i.name for i in sess.get_inputs()]} != {names}"
        )
    feeds = {n: a.numpy() for n, a in zip(names, args, strict=True)}
    got = sess.run(None, feeds)[0]
    with torch.no_grad():
        ref = module(*args).numpy()
    return float(np.abs(got - ref).max() / max(1.0, float(np.abs(ref).max())))
