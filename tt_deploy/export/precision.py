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

REDUCED = tuple(p for p in mf.PRECISIONS if p != "fp32")
PARITY_SAMPLES = 64  # random input batches the recorded max abs difference to fp32 is measured on
# Per precision, which open-loop error statistic (over every sample and joint) a check holds to which bound.
# fp32: the max (verify on its own inputs 1e-5; sim2sim on closed-loop states 1e-4, docs/sim2sim.md). int8: its
# error is everywhere ~1e-2 with rare larger joints (shipped reach skill, default grid, 8 x 5 s: p99
# 0.011-0.014 per cell, max 0.039-0.073, on the graphs traced before the lean form), so the p99 is held to 3e-2
# and the closed loop decides. The lean static graph's int8 copy (export/lean_graph.py), 256 random inputs: p99
# 0.0163, max 0.041 (the traced graph's: 0.0149, 0.042); its closed-loop gate (shipped reach, default grid,
# 32 x 10 s): 13/13 cells, p99 0.015-0.018 per cell, max 0.08-0.14; bf16 on the lean graphs, same grid: 13/13,
# p99 0.0021-0.0023, max 0.009-0.013. bf16 (OpenVINO,
# the same runs): p99 0.0019-0.0022, max 0.007-0.012: its p99 is held to 1e-2.
# tf32 / fp16 (TensorRT): PROVISIONAL, never measured (no GPU here). Both keep 10 mantissa bits, bf16 keeps 7 and
# measured a p99 of 0.002, so bf16's tier bounds them; a GPU run of `ttdeploy verify --backend trt` and
# `sim2sim --precision fp16 --backend trt` should replace these with measured tiers.
VERIFY_TIERS = {"fp32": ("max", 1e-5), "int8": ("p99", 3e-2), "bf16": ("p99", 1e-2), "tf32": ("p99", 1e-2),
                "fp16": ("p99", 1e-2)}
# verify cases a precision's tier does not gate (reported all the same). int8's activations are quantized per
# tensor per call, so the `extreme` case (every value at +-50, far outside any state a robot reaches) costs
# their resolution: p99 0.08 / max 0.16 on the shipped reach skill, where every other case stays at p99 <= 0.017
UNGATED_CASES = {"fp32": (), "int8": ("extreme",), "bf16": ("extreme",),  # bf16 there: p99 0.0104, max 0.019
                 "tf32": ("extreme",), "fp16": ("extreme",)}  # fp16 overflows past 65504: +-50 inputs may get there
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
