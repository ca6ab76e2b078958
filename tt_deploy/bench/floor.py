"""The latency floor a graph cannot beat on this machine: a lower bound, and which of its terms binds.

floor = max of three terms, each measured here (issue #37):
- compute: the call's FLOPs at this machine's GEMM peak, the best of several probes with the model's kind
  of shapes (one 512^3 probe under load once read 9.8 GFLOP/s and put the "floor" above the measured p50);
- bandwidth: the weight bytes over the measured copy bandwidth, only when the weights exceed the last-level
  cache (the small BFM's 2 MB stay in cache: a "floor" from DRAM bandwidth moved 87 -> 209 us with load and
  bound nothing);
- dispatch: the nodes ONNX Runtime executes (after its own fusions, so never more than run) times the measured
  cost of one node of an otherwise empty graph: at batch 1 the small graph is bound by its ~114 nodes at
  ~1.1 us each, not by its ~16-19 us of arithmetic.
A measured p50 below its floor means the measurement is broken (timer, caching of results, a wrong count):
`judge` flags it invalid instead of printing a ratio below 1.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

# (m, k, n): square, batch-1 token rows of the small and paper widths, feed-forward and batch-64 shapes
GEMM_SHAPES = ((512, 512, 512), (32, 64, 256), (32, 512, 2048), (2048, 64, 256), (2048, 512, 512))
DISPATCH_NODES = 200  # nodes of the dispatch probe's chain


def last_level_cache_bytes() -> int | None:
    """The largest CPU cache of cpu0 in bytes (sysfs), None where the kernel does not say."""
    best = None
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            text = (index / "size").read_text().strip()
        except OSError:
            continue
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:].upper(), 1)
        try:
            size = int(text.rstrip("KkMmGg")) * scale
        except ValueError:
            continue
        best = size if best is None else max(best, size)
    return best


def gemm_peak(threads: int | None, shapes=GEMM_SHAPES, repeats: int = 15) -> float:
    """Best float32 GEMM FLOP/s over `shapes`, each the fastest of `repeats` calls of a one-MatMul ONNX Runtime
    session (MLAS, the CPU runtime's own GEMM; torch's reaches the same within 2 % at 1 thread here, and a robot
    install has no torch; the best of several is robust to load). threads None: ONNX Runtime's default."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    best = 0.0
    for m, k, n in shapes:
        a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])
        b = numpy_helper.from_array(rng.standard_normal((k, n), dtype=np.float32), "b")
        model = helper.make_model(helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["y"])], "gemm", [a], [y],
                                                    [b]), opset_imports=[helper.make_opsetid("", 17)])  # fmt: skip
        model.ir_version = 8
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads or 0
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        feed = {"a": rng.standard_normal((m, k), dtype=np.float32)}
        sess.run(None, feed)
        fastest = min(_ns(lambda s=sess, f=feed: s.run(None, f)) for _ in range(repeats))
        best = max(best, 2 * m * k * n / (fastest / 1e9))
    return best


def _ns(fn) -> int:
    t0 = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - t0


def _chain(nodes: int) -> bytes:
    """A graph of `nodes` Add nodes on a (1, 4) tensor, each with its own constant (nothing folds or fuses)."""
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    names = ["x", *(f"h{i}" for i in range(nodes - 1)), "y"]
    consts = [numpy_helper.from_array(np.full((1, 4), 1e-3 * (i + 1), np.float32), f"c{i}") for i in range(nodes)]
    body = [helper.make_node("Add", [names[i], f"c{i}"], [names[i + 1]]) for i in range(nodes)]
    model = helper.make_model(helper.make_graph(body, "chain", [x], [y], consts),
                              opset_imports=[helper.make_opsetid("", 17)])  # fmt: skip
    model.ir_version = 8
    return model.SerializeToString()


def dispatch_ns(threads: int = 1, nodes: int = DISPATCH_NODES, calls: int = 400) -> float:
    """ns ONNX Runtime spends per node of a graph whose nodes do almost nothing: (median call of a `nodes` chain
    minus that of a 1-node chain) / (nodes - 1), optimisations off so the chain keeps its length."""
    import onnxruntime as ort

    def median_ns(n: int) -> float:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(_chain(n), so, providers=["CPUExecutionProvider"])
        feed = {"x": np.zeros((1, 4), np.float32)}
        for _ in range(50):
            sess.run(None, feed)
        return float(np.median([_ns(lambda: sess.run(None, feed)) for _ in range(calls)]))

    return max(0.0, (median_ns(nodes) - median_ns(1)) / (nodes - 1))


def executed_nodes(onnx_path: str | os.PathLike, threads: int = 1) -> int:
    """Nodes ONNX Runtime runs for this graph on CPU after its graph optimisations (its fusions make this fewer
    than the file's nodes; counting the file's would let the dispatch term exceed what really runs)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="tt-floor-") as tmp:
        out = Path(tmp) / "optimized.onnx"
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.optimized_model_filepath = str(out)
        so.log_severity_level = 3  # its "hardware specific optimizations" warning is the point here
        ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        return len(onnx.load(str(out), load_external_data=False).graph.node)


@dataclass(frozen=True)
class Machine:
    """What the floor terms divide by, measured once per bench run."""

    bandwidth: float  # bytes/s, numpy copy (read + write)
    gemm_peak: float  # FLOP/s
    dispatch_ns: float  # per executed ONNX Runtime node
    llc_bytes: int | None  # last-level cache

    def record(self) -> dict:
        return asdict(self)


def floor_terms(machine: Machine, *, weight_bytes: int, flops: int | None, nodes: int | None) -> dict:
    """The three terms (us), the floor (their max) and which one binds; a term that does not apply is 0."""
    in_cache = machine.llc_bytes is not None and weight_bytes <= machine.llc_bytes
    terms = {
        "compute": flops / machine.gemm_peak * 1e6 if flops and machine.gemm_peak > 0 else 0.0,
        "bandwidth": 0.0 if in_cache else weight_bytes / machine.bandwidth * 1e6,
        "dispatch": nodes * machine.dispatch_ns / 1e3 if nodes else 0.0,
    }
    binds = max(terms, key=terms.get)
    return {**{f"floor_{k}_us": v for k, v in terms.items()}, "floor_us": terms[binds], "floor_binds": binds,
            "weights_in_cache": bool(in_cache), "executed_nodes": nodes}  # fmt: skip


def judge(p50_us: float, floor_us: float) -> dict:
    """p50 over the floor; a p50 below its lower bound is an invalid measurement, not a ratio below 1."""
    if floor_us <= 0:
        return {"over_floor": None, "floor_valid": True}
    valid = p50_us >= floor_us
    return {"over_floor": p50_us / floor_us if valid else None, "floor_valid": bool(valid)}
