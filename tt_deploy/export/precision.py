"""Reduced-precision copies of a skill's fused graphs, written beside the fp32 ones (`export --precision`).

Why: at batch 1 the fp32 graphs sit near their compute floor on a CPU, so what is left is lower precision -
and then the question whether the policy still behaves, which only the closed-loop gate
(`ttdeploy sim2sim --precision`) answers. fp32 stays the reference: a reduced-precision graph is an extra
file with its own manifest entry (hash, tool, version, settings, its error against fp32 on random inputs).

int8: ONNX Runtime's dynamic quantization (`quantize_dynamic`): MatMul weights stored as signed 8-bit
integers, activations quantized per call; LayerNormalization, Softmax, the attention mask and every other
op stay fp32 (the usual start, and what `quantize_dynamic` leaves alone). Measured on the embedded `small`
fused reach graph (2 shared cores, random inputs): 25 MatMuls quantized, max abs action difference 0.011,
p50 141 vs 196 us.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tt_deploy.errors import InputError
from tt_deploy.hashing import sha256_file
from tt_deploy.runtime import manifest as mf
from tt_deploy.runtime.parity import UNGATED_CASES, VERIFY_TIERS  # noqa: F401 - re-exported: export's tiers

REDUCED = tuple(p for p in mf.PRECISIONS if p != "fp32")
PARITY_SAMPLES = 64  # random input batches the recorded max abs difference to fp32 is measured on
SIM2SIM_TIERS = {"fp32": ("max", 1e-4), "int8": ("p99", 3e-2), "bf16": ("p99", 1e-2), "tf32": ("p99", 1e-2),
                 "fp16": ("p99", 1e-2)}


def check_precisions(precisions) -> tuple[str, ...]:
    """The reduced precisions asked for (fp32 is always exported); a typed error names the known ones."""
    out = []
    for p in precisions or ():
        if p not in mf.PRECISIONS:
            raise InputError(f"unknown ONNX precision {p!r}; known: {', '.join(mf.PRECISIONS)}")
        if p != "fp32" and p not in out:
            out.append(p)
    return tuple(out)


def _random_feeds(graph: mf.GraphSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    feeds = {}
    for t in graph.inputs:
        shape = [1 if isinstance(d, str) else d for d in t.shape]
        feeds[t.name] = rng.random(shape) < 0.5 if t.dtype == "bool" else rng.standard_normal(shape).astype(np.float32)
    return feeds


def max_abs_vs(reference: Path, reduced: Path, graph: mf.GraphSpec, samples: int = PARITY_SAMPLES) -> float:
    """Largest action difference between two graphs of the same I/O on `samples` seeded random inputs."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    ref, red = (ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"]) for p in (reference, reduced))
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(samples):
        feeds = _random_feeds(graph, rng)
        worst = max(worst, float(np.abs(ref.run(None, feeds)[0] - red.run(None, feeds)[0]).max()))
    return worst


def quantize_graph(src: Path, dst: Path, precision: str) -> dict:
    """Write the `precision` copy of the fp32 graph `src` to `dst`; returns the settings that made it."""
    if precision != "int8":
        raise InputError(f"no ONNX quantizer for {precision!r}; reduced ONNX precisions: {', '.join(REDUCED)}")
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=False, reduce_range=False)
    return {"tool": "onnxruntime.quantization.quantize_dynamic", "version": onnxruntime.__version__,
            "weight_type": "QInt8", "per_channel": False, "reduce_range": False,
            "fp32_kept": "LayerNormalization, Softmax, attention masking and every op but MatMul"}  # fmt: skip


def reduced_graphs(tmp: Path, fp32_graphs: list[mf.GraphSpec], precisions: tuple[str, ...]) -> list[mf.GraphSpec]:
    """For each reduced precision, a copy of every fused graph in `fp32_graphs` (static and dynamic)."""
    specs = []
    for precision in precisions:
        for g in (g for g in fp32_graphs if g.role == "fused" and g.precision == "fp32"):
            rel = f"{mf.skill_dir(g.skill)}/{mf.graph_file(g.role, g.batch == 'dynamic', precision)}"
            settings = quantize_graph(tmp / g.path, tmp / rel, precision)
            settings["max_abs_vs_fp32"] = max_abs_vs(tmp / g.path, tmp / rel, g)
            settings["parity_inputs"] = f"{PARITY_SAMPLES} seeded random batch-1 inputs"
            specs.append(mf.GraphSpec(rel, g.role, g.skill, g.batch, sha256_file(tmp / rel), g.inputs, g.outputs,
                                      None, precision=precision, quantization=settings))  # fmt: skip
    return specs
