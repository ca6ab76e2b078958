"""A ProtoMotions v3 MaskedMimic as one ONNX graph with the original input names (issue #34).

Inputs are the original get_inference_in_keys() order plus `vae_noise`, each (batch, flat width) float32,
`masked_mimic_target_masks` bool, so a user feeds what their ProtoMotions env produces. The output `actions`
is the model's RAW action (the original env applies its action transform, tanh in the released configs,
before the PD targets; the graph's metadata names it); `vae_noise` zeros gives
the prior mean (`actions_mean` of the fixture). `previous_actions` is state the caller carries between
steps: the last raw action, zeros at episode start.

The graph has no task-token input: it runs the imported model exactly as the original does.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from tt_deploy.errors import TTDeployError
from tt_deploy.export.onnx_graphs import MIN_OPSET, PARITY_TOL, tensor_specs
from tt_deploy.models.protomotions_v3 import V3MaskedMimic
from tt_deploy.runtime.manifest import BATCH_DIM, TensorSpec
from tt_deploy.spec import V3_ACTIONS, V3_BOOL_INPUTS, V3_PREVIOUS_ACTIONS

log = logging.getLogger(__name__)


class V3Graph(nn.Module):
    """Positional wrapper for tracing: inputs in `input_names` order -> raw actions (batch, action_dim)."""

    def __init__(self, model: V3MaskedMimic):
        super().__init__()
        self.model = model.eval()
        self.input_names = list(model.input_names)

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.model.outputs(dict(zip(self.input_names, args, strict=True)))["action"]


def example_inputs(model: V3MaskedMimic, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Random tracing inputs, one per input name, at the model's flat widths."""
    out = []
    for name in model.input_names:
        width = int(np.prod(model.shapes[name]))
        if name in V3_BOOL_INPUTS:
            out.append(torch.rand(batch, width, generator=gen) < 0.5)
        else:
            out.append(torch.randn(batch, width, generator=gen))
    return tuple(out)


def export_v3(model: V3MaskedMimic, path: str | Path, *, dynamic: bool = False, opset: int = 17,
              metadata: dict[str, str] | None = None) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...], float]:
    """Export `model` to `path`; returns (inputs, outputs, parity max abs of ONNX Runtime vs PyTorch)."""
    if opset < MIN_OPSET:
        raise TTDeployError(f"opset must be >= {MIN_OPSET} (LayerNormalization as one op); got {opset}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = V3Graph(model)
    names = graph.input_names
    args = example_inputs(model, 2 if dynamic else 1, torch.Generator().manual_seed(0))
    axes = {n: {0: BATCH_DIM} for n in [*names, V3_ACTIONS]} if dynamic else None
    meta = {"tt-deploy.source": "protomotions-v3", "tt-deploy.action_transform": str(model.spec.action_transform),
            "tt-deploy.state": f"{V3_PREVIOUS_ACTIONS} <- {V3_ACTIONS} (zeros at episode start)",
            "tt-deploy.vae_noise": "zeros = the prior mean; or one N(0, I) draw per episode", **(metadata or {})}
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused encoder-layer kernel has no ONNX export
    try:
        return _export(graph, args, names, path, axes, opset, meta)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def _export(graph: V3Graph, args, names, path: Path, axes, opset: int, meta: dict):
    import onnxruntime as ort
    import onnxscript.optimizer

    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # legacy exporter notice
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(graph, args, str(path), dynamo=False, input_names=names, output_names=[V3_ACTIONS],
                          opset_version=opset, dynamic_axes=axes, do_constant_folding=True)  # fmt: skip
        onnx_model = onnxscript.optimizer.optimize(onnx.load(str(path)))
        for k, v in sorted(meta.items()):
            onnx_model.metadata_props.add(key=k, value=v)
        onnx.checker.check_model(onnx_model, full_check=True)
        onnx.save(onnx_model, str(path))
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        if [i.name for i in sess.get_inputs()] != names:  # the tracer drops unused inputs silently
            raise TTDeployError(f"{path.name}: graph inputs {[i.name for i in sess.get_inputs()]} != {names}")
        got = sess.run(None, {n: a.numpy() for n, a in zip(names, args, strict=True)})[0]
        ref = graph(*args).numpy()
    err = float(np.abs(got - ref).max() / max(1.0, float(np.abs(ref).max())))
    if not err <= PARITY_TOL:
        raise TTDeployError(f"{path.name}: ONNX Runtime differs from PyTorch by {err:.2e} > {PARITY_TOL:.0e}")
    log.info("exported %s (%s batch), parity %.2e", path.name, "dynamic" if axes else "static", err)
    return tensor_specs(onnx_model.graph.input), tensor_specs(onnx_model.graph.output), err


GRAPH_FILES = {"static": "protomotions_v3.onnx", "dynamic": "protomotions_v3.batch.onnx"}
SUMMARY_FILE = "protomotions_v3.json"


def export_v3_dir(ckpt: str | Path, out: str | Path, config: str | Path | None = None, opset: int = 17) -> dict:
    """Read a v3 checkpoint (models/protomotions_v3.py: nothing pickled runs) and write its batch-1 and
    dynamic-batch graphs plus SUMMARY_FILE (what was read, the graphs' I/O and hashes) into `out`."""
    import json

    from tt_deploy.atomic import atomic_path, atomic_write_text
    from tt_deploy.hashing import sha256_file
    from tt_deploy.models.protomotions_v3 import load_v3
    from tt_deploy.runtime.manifest import to_dict

    model, summary = load_v3(ckpt, config)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    graphs = {}
    for batch, name in GRAPH_FILES.items():
        with atomic_path(out / name) as tmp:
            inputs, outputs, err = export_v3(model, tmp, dynamic=batch == "dynamic", opset=opset,
                                             metadata={"tt-deploy.source_sha256": sha256_file(summary["checkpoint"])})
        graphs[batch] = {"path": name, "sha256": sha256_file(out / name), "export_parity_max_abs": err,
                         "inputs": to_dict(inputs), "outputs": to_dict(outputs)}
    record = {**summary, "source_sha256": sha256_file(summary["checkpoint"]), "graphs": graphs,
              "state": {V3_PREVIOUS_ACTIONS: f"the last raw {V3_ACTIONS}, zeros at episode start",
                        "vae_noise": "zeros (the prior mean) by default; the original draws N(0, I) once per episode"}}
    atomic_write_text(out / SUMMARY_FILE, json.dumps(record, indent=2) + "\n")
    return record
