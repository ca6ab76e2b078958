"""Verified ONNX Runtime sessions: backend choice, low-latency options, hash + I/O checks.

Torch-free (numpy + onnxruntime only). A `GraphSession` hashes the exact bytes it hands to
ONNX Runtime, so the graph that runs is the graph the manifest describes; it then checks the
graph's metadata (schema, role, skill, BFM hash) and its inputs/outputs against the manifest.
Execution providers are never switched silently: the provider a session actually got must be
the one asked for.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tt_deploy.errors import BundleError, MissingExtraError, UnknownNameError
from tt_deploy.runtime.graph_contract import BFM_KEY, ROLE_KEY, SCHEMA_KEY, SKILL_KEY
from tt_deploy.runtime.manifest import SCHEMA, GraphSpec, TensorSpec

log = logging.getLogger(__name__)

# backend name -> ONNX Runtime execution provider; `auto` tries native TensorRT ("trt", needs engines
# built for this GPU: trt_backend.auto_reason) and then these, in this order.
BACKENDS: dict[str, str] = {
    "trt": "TensorRT (native engines, tt_deploy.runtime.trt_backend)",
    "ort-trt": "TensorrtExecutionProvider",
    "ort-cuda": "CUDAExecutionProvider",
    "ort-cpu": "CPUExecutionProvider",
    "openvino": "OpenVINO CPU plugin (tt_deploy.runtime.openvino_backend; never picked by auto)",
}
ORT_BACKENDS = ("ort-trt", "ort-cuda", "ort-cpu")
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(bool)": "bool", "tensor(int64)": "int64"}


def _ort():
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - onnxruntime is a hard dependency
        raise MissingExtraError("the runtime needs onnxruntime: pip install onnxruntime") from exc
    return onnxruntime


def physical_cores() -> int:
    """Physical cores usable by this process (SMT siblings counted once); >= 1."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    cores = set()
    for c in cpus:
        base = Path(f"/sys/devices/system/cpu/cpu{c}/topology")
        try:
            cores.add(
                ((base / "physical_package_id").read_text().strip(), (base / "core_id").read_text().strip())
            )
        except OSError:
            cores.add(("cpu", str(c)))
    return max(1, len(cores))


@dataclass(frozen=True)
class SessionConfig:
    """ONNX Runtime options, chosen for batch-1 latency in a control loop (see docs/bundle.md).

    intra_op_threads: None = chosen per graph. A static (batch-1) graph on the CPU provider is timed at load
    with 1 thread and with all physical cores, interleaved (CALIBRATION_RUNS each), and keeps the faster: at
    batch 1 a small graph is dispatch-bound and a second thread only adds synchronisation (small fused reach
    graph, 2 cores: ~105 us a call slower with 2 threads), while a large one gains from it. Dynamic-batch
    graphs (throughput) take all physical cores. An int fixes the count. `GraphSession.intra_op_threads` says
    what each graph got; `ttdeploy bench` prints it.
    allow_spinning False: measured on 2 cores, spinning threads barely change p50 but push p99 from ~0.5 ms
    to 3-8 ms when the controller competes for the cores.
    """

    intra_op_threads: int | None = None
    inter_op_threads: int = 1
    allow_spinning: bool = False
    graph_optimization: str = "all"  # "disable" | "basic" | "extended" | "all"
    trt_precision: str | None = (
        None  # trt / ort-trt: engine precision; None = fastest built (trt), fp32 (ort-trt)
    )

    def session_options(self, threads: int | None = None):
        """ONNX Runtime SessionOptions; `threads` (a calibrated count) overrides intra_op_threads."""
        ort = _ort()
        levels = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        if self.graph_optimization not in levels:
            raise UnknownNameError("graph optimization level", self.graph_optimization, levels)
        so = ort.SessionOptions()
        so.graph_optimization_level = levels[self.graph_optimization]
        so.intra_op_num_threads = threads or self.intra_op_threads or physical_cores()
        so.inter_op_num_threads = self.inter_op_threads
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.allow_spinning else "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "0")
        so.log_severity_level = 3  # errors only; we report what matters ourselves
        return so


@functools.lru_cache(maxsize=None)
def provider_failure(provider: str) -> str | None:
    """Why an ONNX Runtime execution provider does not really run here (None: it does), once per process.

    Why not `get_available_providers()`: it lists what onnxruntime-gpu was built with, not what loads; the
    TensorRT EP needs libnvinfer and the CUDA EP a driver, and a session whose EP fails to load quietly runs on
    CPU. So this builds a one-node session on the provider and checks the provider it got."""
    ort = _ort()
    if provider not in ort.get_available_providers():
        return f"this onnxruntime has no {provider}"
    if provider == BACKENDS["ort-cpu"]:
        return None
    try:
        from onnx import TensorProto, helper
    except ImportError:  # a robot install may lack onnx: trust the list, say so
        log.info("no onnx package to build a probe graph; trusting onnxruntime's provider list for %s", provider)
        return None
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.log_severity_level = 4
    try:
        got = ort.InferenceSession(model.SerializeToString(), so, providers=[provider]).get_providers()
    except Exception as exc:  # noqa: BLE001 - any load failure is the answer
        return f"{provider} failed to create a session: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    if not got or got[0] != provider:
        return f"{provider} did not load (a session got {got[0] if got else 'no provider'}); check CUDA / TensorRT libraries"
    return None


def resolve_backend(backend: str, manifest=None) -> tuple[str, str]:
    """(backend name, provider). `auto`: native TensorRT > TensorRT EP > CUDA EP > CPU, by availability.

    Native TensorRT counts for `auto` only when its runtime, a GPU and engines for this GPU in the bundle
    (`manifest`) are all present. An explicit backend that is not available raises MissingExtraError
    with the install command; nothing falls back silently. The choice and the reasons are logged.
    """
    if backend == "auto":
        if manifest is not None:
            from tt_deploy.runtime.trt_backend import auto_reason

            reason = auto_reason(manifest)
            if reason is None:
                log.info("backend auto -> trt (native TensorRT engines)")
                return "trt", BACKENDS["trt"]
            log.info("backend auto: not using native TensorRT: %s", reason)
        for name in ORT_BACKENDS:
            reason = provider_failure(BACKENDS[name])
            if reason is None:
                log.info("backend auto -> %s", name)
                return name, BACKENDS[name]
            if BACKENDS[name] in _ort().get_available_providers():
                log.info("backend auto: not using %s: %s", name, reason)
    if backend not in BACKENDS:
        raise UnknownNameError("backend", backend, [*BACKENDS, "auto"])
    if backend == "openvino":
        from tt_deploy.runtime.openvino_backend import require

        require()  # MissingExtraError with the install command
        return "openvino", BACKENDS["openvino"]
    if backend == "trt":
        from tt_deploy.runtime.trt_backend import INSTALL_HINT, unavailable_reason

        reason = unavailable_reason()
        if reason is not None:
            raise MissingExtraError(
                f"backend 'trt' needs TensorRT, cuda-python and a CUDA GPU ({reason}); install with: {INSTALL_HINT}"
            )
        return "trt", BACKENDS["trt"]
    available = set(_ort().get_available_providers())
    provider = BACKENDS[backend]
    if provider not in available:
        raise MissingExtraError(
            f"backend {backend!r} needs {provider}, which this onnxruntime does not provide "
            f"(available: {', '.join(sorted(available))}); install onnxruntime-gpu / TensorRT "
            '(pip install "tt-deploy[gpu-cu12]") or pick another backend'
        )
    return backend, provider


def ort_trt_cache_dir(bundle_dir: Path, graph_sha256: str) -> Path:
    """The TensorRT EP's engine cache of one graph: <bundle>/engines/ort-trt/<sha256[:16]>.

    Why one per graph: the EP keys its cache on the model file name, input names and node output names,
    never the weights; a session built from bytes has no file name, so two skills with the same shapes
    (reach, direction) would share one engine and the second would silently run the first one's."""
    return Path(bundle_dir) / "engines" / "ort-trt" / graph_sha256[:16]


def provider_options(provider: str, bundle_dir: Path, config: SessionConfig, graph_sha256: str = "") -> dict[str, object]:
    """ONNX Runtime provider options (onnxruntime.ai TensorRT EP docs: trt_engine_cache_enable/_path,
    trt_timing_cache_enable/_path, trt_fp16_enable). TensorRT EP: engines in `ort_trt_cache_dir`, the timing
    cache beside them in engines/ort-trt/timing; both directories are created here (the EP creates only the
    last path component). CUDA EP: TF32 off unless tf32 is asked, so its "fp32" is fp32."""
    if provider == BACKENDS["ort-cuda"]:
        return {"use_tf32": 1 if config.trt_precision == "tf32" else 0}
    if provider != BACKENDS["ort-trt"]:
        return {}
    engines = ort_trt_cache_dir(bundle_dir, graph_sha256 or "unhashed")
    timing = engines.parent / "timing"
    try:
        engines.mkdir(parents=True, exist_ok=True)
        timing.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BundleError(f"cannot create the TensorRT EP caches under {Path(bundle_dir) / 'engines'} "
                          f"({exc.strerror or exc}); use a writable copy of the bundle or another backend") from exc
    return {
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(engines),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(timing),
        "trt_fp16_enable": config.trt_precision == "fp16",
    }


def execution_providers(provider: str, bundle_dir: Path, config: SessionConfig, graph_sha256: str) -> list:
    """The providers list for a session: the one asked for, and after the TensorRT EP the CUDA EP for nodes
    TensorRT does not take (the session's first provider is still checked to be the one asked for)."""
    options = provider_options(provider, bundle_dir, config, graph_sha256)
    providers = [(provider, options)] if options else [provider]
    if provider == BACKENDS["ort-trt"]:
        providers.append((BACKENDS["ort-cuda"], provider_options(BACKENDS["ort-cuda"], bundle_dir, config)))
    return providers


def _shape_matches(expected: tuple, actual: list) -> bool:
    if len(expected) != len(actual):
        return False
    return all(
        (isinstance(e, str) and not isinstance(a, int)) or (e == a)
        for e, a in zip(expected, actual, strict=True)
    )


def _check_io(kind: str, expected: tuple[TensorSpec, ...], actual, path: Path) -> None:
    got = [(a.name, list(a.shape), _ORT_DTYPES.get(a.type, a.type)) for a in actual]
    want = [(t.name, list(t.shape), t.dtype) for t in expected]
    ok = len(got) == len(want) and all(
        g[0] == w[0] and g[2] == w[2] and _shape_matches(tuple(w[1]), g[1])
        for g, w in zip(got, want, strict=True)
    )
    if not ok:
        raise BundleError(
            f"{path}: graph {kind} {got} do not match the manifest {want}; the file was modified or "
            "belongs to another bundle - re-export the bundle"
        )


def read_verified(path: Path, sha256: str) -> bytes:
    """A bundle file's bytes, refused unless they hash to the manifest's sha256 (the bytes hashed are the bytes
    loaded)."""
    if not path.is_file():
        raise BundleError(f"bundle file missing: {path}; re-export the skill with `ttdeploy export`")
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise BundleError(
            f"{path}: sha256 {actual[:12]}... does not match the manifest ({sha256[:12]}...); "
            "the file is truncated or modified - re-export the bundle"
        )
    return data


def check_metadata(meta: dict[str, str], spec: GraphSpec, bfm_sha256: str, path: Path) -> None:
    """The graph's own ONNX metadata must name the schema, role, skill and BFM the manifest lists it with.

    Only these four at load (a few string compares): the rest of the contract it carries (graph_contract.py) is
    `ttdeploy verify`'s to check, since the graph's sha256, checked before this, already ties it to the manifest."""
    want = {SCHEMA_KEY: SCHEMA, ROLE_KEY: spec.role, SKILL_KEY: spec.skill or "", BFM_KEY: bfm_sha256}
    wrong = {k: meta.get(k) for k, v in want.items() if meta.get(k) != v}
    if wrong:
        raise BundleError(f"{path}: metadata {wrong} does not match the manifest; re-export the bundle")


CALIBRATION_RUNS = 40  # per thread count, interleaved, after 5 warm-up runs each (small fused graph: ~25 ms)


def _faster(a, b, spec: GraphSpec) -> bool:
    """Whether session `a` runs the static graph `spec` faster than `b` (median of CALIBRATION_RUNS interleaved
    runs on zero inputs: the graph's cost does not depend on the values)."""
    feeds = {t.name: np.zeros(tuple(int(d) for d in t.shape), np.dtype(t.dtype)) for t in spec.inputs}
    out = [spec.outputs[0].name]
    times = {id(a): [], id(b): []}
    for k in range(CALIBRATION_RUNS + 5):
        for sess in (a, b) if k % 2 else (b, a):
            t0 = time.perf_counter_ns()
            sess.run(out, feeds)
            if k >= 5:
                times[id(sess)].append(time.perf_counter_ns() - t0)
    return float(np.median(times[id(a)])) < float(np.median(times[id(b)]))


class GraphSession:
    """One bundle graph loaded into ONNX Runtime after its hash, metadata and I/O were checked; a GraphRunner
    (runtime/base.py) for a fused graph, and the encoder or head of a ChainedRunner.

    `run(feeds)` returns the first output as a new array; `run_into(feeds, out)` writes it into
    the caller's preallocated, C-contiguous `out` through an IOBinding (no output allocation).
    """

    def __init__(
        self, bundle_dir: Path, spec: GraphSpec, provider: str, config: SessionConfig, bfm_sha256: str,
        content: str = "",
    ) -> None:
        path = Path(bundle_dir) / content / spec.path  # content: the manifest's version dir
        self.spec, self.path = spec, path
        data = read_verified(path, spec.sha256)
        providers = execution_providers(provider, bundle_dir, config, spec.sha256)
        calibrate = (config.intra_op_threads is None and provider == "CPUExecutionProvider" and spec.batch == "static"
                     and physical_cores() > 1)  # fmt: skip
        self.intra_op_threads = 1 if calibrate else config.intra_op_threads or physical_cores()
        try:
            self.session = _ort().InferenceSession(data, config.session_options(self.intra_op_threads),
                                                   providers=providers)  # fmt: skip
        except Exception as exc:  # onnxruntime raises several private pybind types for bad models
            raise BundleError(f"{path} is not a loadable ONNX graph ({exc}); re-export the bundle") from exc
        actual = self.session.get_providers()
        if not actual or actual[0] != provider:
            raise BundleError(
                f"{path}: onnxruntime gave providers {actual}, not {provider}; refusing to fall back"
            )
        check_metadata(self.session.get_modelmeta().custom_metadata_map, spec, bfm_sha256, path)
        _check_io("inputs", spec.inputs, self.session.get_inputs(), path)
        _check_io("outputs", spec.outputs, self.session.get_outputs(), path)
        if calibrate:  # only a graph that passed every check is run
            wide = _ort().InferenceSession(data, config.session_options(physical_cores()), providers=providers)
            if _faster(wide, self.session, spec):
                self.session, self.intra_op_threads = wide, physical_cores()
        self.input_names = tuple(t.name for t in spec.inputs)
        self.inputs, self.outputs, self.graphs = spec.inputs, spec.outputs, (spec.path,)  # a GraphRunner
        self.output_name = spec.outputs[0].name
        self._binding = self.session.io_binding()

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run([self.output_name], feeds)[0]

    def bound_runner(self, feeds: dict[str, np.ndarray], out: np.ndarray) -> Callable[[], None]:
        """A no-argument call that runs this graph from the fixed buffers `feeds` into `out`, bound once.

        Why: for a batch-1 encoder, binding input and output on every call cost ~10 us of ~26 us; the
        caller refills the buffers in place instead (they must stay alive and keep their shapes).
        CPU execution provider only: a GPU provider copies a bound CPU input to the device at bind
        time, so refilling the host buffer would never reach it: there every call rebinds (run_into).
        """
        if self.session.get_providers()[0] != "CPUExecutionProvider":
            return functools.partial(self.run_into, feeds, out)
        binding = self.session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, value)
        binding.bind_output(self.output_name, "cpu", 0, out.dtype, out.shape, out.ctypes.data)
        return functools.partial(self.session.run_with_iobinding, binding)

    def run_into(self, feeds: dict[str, np.ndarray], out: np.ndarray) -> np.ndarray:
        b = self._binding
        for name, value in feeds.items():
            b.bind_cpu_input(name, value)
        b.bind_output(self.output_name, "cpu", 0, out.dtype, out.shape, out.ctypes.data)
        self.session.run_with_iobinding(b)
        return out
