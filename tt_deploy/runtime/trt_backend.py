"""Native TensorRT backend of SkillRuntime (`backend="trt"`): engines from `<bundle>/engines/`, no torch.

Per engine: one execution context, device buffers and pinned host buffers allocated once, all work
on one CUDA stream. For the static batch-1 deploy engines the per-step work (H2D copies of every
input, `execute_async_v3`, D2H copy of the actions) is captured once into a CUDA graph and replayed
on every `act`; a step is then: copy the caller's arrays into the pinned buffers, launch the graph,
synchronise, copy the actions out. Split mode chains the encoder and the BFM on the device: the
encoder's `task_token` output buffer *is* the BFM's `task_token` input buffer, and each resident
skill has its own captured graph (its encoder + the one shared BFM context), so `switch()` changes
which graph is launched and never rebuilds or reloads the BFM. Dynamic-batch (evaluation) engines
are enqueued directly (a CUDA graph is only valid for the shapes it was captured with).

Nothing in this file has run on a GPU; see docs/tensorrt.md for what is verified and how.

API facts and their sources:
- TensorRT 10 Python API reference (docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api):
  `trt.Runtime(logger).deserialize_cuda_engine(bytes)`, `engine.num_io_tensors`, `get_tensor_name(i)`,
  `get_tensor_mode(name)` (trt.TensorIOMode.INPUT/OUTPUT), `get_tensor_shape`, `get_tensor_dtype`,
  `get_tensor_profile_shape(name, profile)` -> (min, opt, max), `trt.nptype(dtype)`,
  `engine.create_execution_context()`, `context.set_input_shape(name, shape)`,
  `context.set_tensor_address(name, ptr)`, `context.execute_async_v3(stream_handle: int)` -> bool.
- TensorRT developer guide, "CUDA Graphs": run one enqueue before capturing so that deferred
  work (shape-dependent allocations) is not recorded; capture on a non-default stream.
- cuda-python `cuda.bindings.runtime` (checked against cuda-bindings 12.9 on CPU: signatures and the
  "(error, value)" tuple returns): cudaMalloc(size), cudaMallocHost(size), cudaFree, cudaFreeHost,
  cudaMemcpyAsync(dst, src, count, kind, stream), cudaStreamCreateWithFlags(cudaStreamNonBlocking),
  cudaStreamBeginCapture(stream, mode), cudaStreamEndCapture(stream) -> graph,
  cudaGraphInstantiate(graph, flags) -> exec, cudaGraphLaunch(exec, stream), cudaStreamSynchronize,
  cudaGetDeviceCount(), cudaGetDeviceProperties(dev).name. Older cuda-python exposes the same module as
  `cuda.cudart`; both are tried.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
from pathlib import Path

import numpy as np

from tt_deploy.errors import BundleError, InputError, MissingExtraError, TTDeployError
from tt_deploy.runtime import manifest as mf

log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "tt-deploy[gpu-cu12]"'
PRECISION_PREFERENCE = ("fp16", "tf32", "fp32")  # fastest first, when several engines fit


# --- optional imports ----------------------------------------------------------------------------
def _trt():
    try:
        import tensorrt
    except ImportError as exc:
        raise MissingExtraError(f"backend 'trt' needs TensorRT >= 10: {INSTALL_HINT}") from exc
    return tensorrt


_LOGGER = []  # the one trt.Logger of this process


def trt_logger(trt):
    """The process's one TensorRT logger, shared by every Builder, OnnxParser and Runtime: TensorRT keeps a
    single global logger pointer, so a per-object logger that is garbage-collected would leave it dangling."""
    if not _LOGGER:
        _LOGGER.append(trt.Logger(trt.Logger.WARNING))
    return _LOGGER[0]


def _cudart():
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError as exc:
            raise MissingExtraError(
                f"backend 'trt' needs cuda-python (cuda.bindings.runtime): {INSTALL_HINT}"
            ) from exc
    return cudart


def _ok(cudart, result, what: str):
    """Unpack a cuda-python `(err, *values)` tuple; TTDeployError naming the call and the CUDA error."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        raise TTDeployError(f"CUDA {what} failed: {getattr(err, 'name', err)}")
    return values[0] if len(values) == 1 else tuple(values) or None


def unavailable_reason() -> str | None:
    """Why the native TensorRT backend cannot run here (None = tensorrt, cuda-python and a GPU are present)."""
    try:
        _trt()
    except MissingExtraError:
        return "tensorrt is not installed"
    return cuda_failure()


def cuda_failure() -> str | None:
    """Why cuda-python sees no usable CUDA device (None: it sees one)."""
    try:
        cudart = _cudart()
    except MissingExtraError:
        return "cuda-python is not installed"
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess or not count:
        return f"no CUDA device ({getattr(err, 'name', err)})"
    return None


def gpu_name(device: int = 0) -> str:
    """CUDA device name, e.g. "NVIDIA GeForce RTX 4090" (part of the engine cache key)."""
    cudart = _cudart()
    props = _ok(cudart, cudart.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    name = props.name
    return (name.decode() if isinstance(name, bytes) else str(name)).rstrip("\x00").strip()


# --- engine selection (pure python) --------------------------------------------------------------
def select_engine(
    manifest: mf.BundleManifest,
    graph: mf.GraphSpec,
    tensorrt_version: str,
    gpu: str,
    precision: str | None = None,
    batch: int | None = None,
) -> mf.EngineSpec:
    """The recorded engine for `graph` built by this TensorRT on this GPU (from this exact ONNX), whose
    optimisation profile admits `batch` rows (None: any profile).

    precision None: the fastest available (fp16 > tf32 > fp32). BundleError with the build command otherwise.
    """
    fits = [
        e
        for e in manifest.engines
        if e.graph == graph.path
        and e.onnx_sha256 == graph.sha256
        and e.tensorrt == tensorrt_version
        and e.gpu == gpu
        and (batch is None or all(p.min[0] <= batch <= p.max[0] for p in e.profile))
    ]
    order = [precision] if precision else list(PRECISION_PREFERENCE)
    for p in order:
        for e in fits:
            if e.precision == p:
                return e
    skill = f" --skill {graph.skill}" if graph.skill else ""
    have = sorted({(e.precision, e.tensorrt, e.gpu) for e in manifest.engines if e.graph == graph.path})
    raise BundleError(
        f"no TensorRT engine for {graph.path} ({precision or 'any precision'}, "
        f"{'any batch' if batch is None else f'batch {batch}'}, TensorRT {tensorrt_version}, {gpu}); "
        f"recorded: {have or 'none'}; build it with `ttdeploy export{skill} --format trt"
        + (f" --precision {precision}" if precision else "")
        + "`"
    )


def auto_reason(manifest: mf.BundleManifest) -> str | None:
    """Why `auto` must skip native TensorRT for this bundle (None = usable: runtime present and engines built here)."""
    reason = unavailable_reason()
    if reason is not None:
        return reason
    version, gpu = _trt().__version__, gpu_name()
    if not any(e.tensorrt == version and e.gpu == gpu for e in manifest.engines):
        return f"the bundle has no engines for TensorRT {version} on {gpu}"
    return None


# --- buffers and engines -------------------------------------------------------------------------
class _Tensor:
    """One engine I/O tensor: device buffer (owned or shared) + pinned host buffer viewed as numpy."""

    def __init__(self, cudart, name: str, shape: tuple[int, ...], dtype: np.dtype, device_ptr: int | None):
        self.name, self.shape, self.dtype = name, shape, np.dtype(dtype)
        self.nbytes = int(np.prod(shape)) * self.dtype.itemsize
        self.owns_device = device_ptr is None
        self.device = (
            _ok(cudart, cudart.cudaMalloc(self.nbytes), "cudaMalloc") if device_ptr is None else device_ptr
        )
        self.host_ptr = _ok(cudart, cudart.cudaMallocHost(self.nbytes), "cudaMallocHost")
        raw = (ctypes.c_ubyte * self.nbytes).from_address(int(self.host_ptr))
        self.host = np.frombuffer(raw, self.dtype).reshape(shape)  # pinned; reused every step

    def free(self, cudart) -> None:
        cudart.cudaFreeHost(self.host_ptr)
        if self.owns_device:
            cudart.cudaFree(self.device)


class TrtEngine:
    """A deserialized engine with its context and buffers on `stream`.

    shared: device pointers to use for some I/O tensors instead of allocating (split-mode chaining).
    """

    def __init__(self, data: bytes, stream, *, shared: dict[str, int] | None = None, name: str = "engine"):
        trt, self.cudart = _trt(), _cudart()
        self.name, self.stream = name, stream
        self.engine = trt.Runtime(trt_logger(trt)).deserialize_cuda_engine(data)
        if self.engine is None:
            raise BundleError(
                f"{name}: TensorRT could not deserialize the engine (other TensorRT version or GPU?)"
            )
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise BundleError(f"{name}: TensorRT could not create an execution context (out of GPU memory?)")
        self.inputs, self.outputs, self.dynamic = [], [], False
        try:  # a failure part-way frees what was allocated: device buffers are not garbage-collected
            self._allocate(trt, shared)
        except BaseException:
            self.free()
            raise
        self.max_batch = self.inputs[0].shape[0]
        self.by_name = {t.name: t for t in (*self.inputs, *self.outputs)}

    def _allocate(self, trt, shared) -> None:
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        for n in names:
            if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT:
                shape = tuple(self.engine.get_tensor_shape(n))
                if -1 in shape:
                    self.dynamic = True
                    shape = tuple(self.engine.get_tensor_profile_shape(n, 0)[2])  # max of profile 0
                self._set_shape(n, shape)
                self.inputs.append(self._tensor(trt, n, shape, shared))
        for n in names:
            if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT:
                shape = tuple(self.context.get_tensor_shape(n))  # resolved for the max input shapes
                self.outputs.append(self._tensor(trt, n, shape, shared))

    def _set_shape(self, name: str, shape) -> None:
        if not self.context.set_input_shape(name, shape):  # False: outside the engine's profile
            raise InputError(f"{self.name}: input {name} shape {tuple(shape)} is outside the engine's profile")

    def _tensor(self, trt, name: str, shape, shared) -> _Tensor:
        t = _Tensor(
            self.cudart, name, shape, trt.nptype(self.engine.get_tensor_dtype(name)), (shared or {}).get(name)
        )
        self.context.set_tensor_address(name, int(t.device))
        return t

    def enqueue(self, n: int, h2d: set[str], d2h: set[str]) -> None:
        """H2D copies of `h2d` inputs (first n rows), execute, D2H of `d2h` outputs, all on the stream."""
        cudart, kind = self.cudart, self.cudart.cudaMemcpyKind
        for t in self.inputs:
            if self.dynamic:
                self._set_shape(t.name, (n, *t.shape[1:]))
            if t.name in h2d:
                size = t.nbytes // t.shape[0] * n
                _ok(
                    cudart,
                    cudart.cudaMemcpyAsync(
                        t.device, t.host_ptr, size, kind.cudaMemcpyHostToDevice, self.stream
                    ),
                    "H2D",
                )
        if not self.context.execute_async_v3(int(self.stream)):
            raise TTDeployError(f"{self.name}: TensorRT execute_async_v3 failed")
        for t in self.outputs:
            if t.name in d2h:
                size = t.nbytes // t.shape[0] * n
                _ok(
                    cudart,
                    cudart.cudaMemcpyAsync(
                        t.host_ptr, t.device, size, kind.cudaMemcpyDeviceToHost, self.stream
                    ),
                    "D2H",
                )

    def free(self) -> None:
        for t in (*self.inputs, *self.outputs):
            t.free(self.cudart)
        self.inputs, self.outputs = [], []
        self.context = self.engine = None


class _Step:
    """A chain of (engine, h2d, d2h) enqueues on one stream; captured into a CUDA graph when static."""

    def __init__(self, stream, chain: list[tuple[TrtEngine, set[str], set[str]]], capture: bool):
        self.cudart, self.stream, self.chain = _cudart(), stream, chain
        self.graph = self.exec = None
        if capture:
            self._enqueue(1)  # warm-up outside capture (TensorRT guide: deferred work must not be captured)
            self.sync()
            c = self.cudart
            _ok(
                c,
                c.cudaStreamBeginCapture(stream, c.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal),
                "capture",
            )
            try:
                self._enqueue(1)
            finally:  # always leave capture mode: a stream left capturing fails every later call
                graph = _ok(c, c.cudaStreamEndCapture(stream), "cudaStreamEndCapture")
            self.graph = graph
            self.exec = _ok(c, c.cudaGraphInstantiate(self.graph, 0), "cudaGraphInstantiate")

    def _enqueue(self, n: int) -> None:
        for engine, h2d, d2h in self.chain:
            engine.enqueue(n, h2d, d2h)

    def run(self, n: int) -> None:
        if self.exec is not None and n == 1:
            _ok(self.cudart, self.cudart.cudaGraphLaunch(self.exec, self.stream), "cudaGraphLaunch")
        else:
            self._enqueue(n)
        self.sync()

    def sync(self) -> None:
        _ok(self.cudart, self.cudart.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")

    def free(self) -> None:
        if self.exec is not None:
            self.cudart.cudaGraphExecDestroy(self.exec)
            self.cudart.cudaGraphDestroy(self.graph)
        self.exec = self.graph = None


class TrtGraphSession:
    """One or two engines behind the GraphRunner interface (runtime/base.py), as GraphSession is for ONNX Runtime.

    Fused: one engine. Split head (`device_chained`): the BFM engine plus one encoder per skill whose
    task-token output buffer is the BFM's task-token input; `run_skill(skill, feeds, out)` runs both.
    """

    def __init__(self, spec: mf.GraphSpec, engine: TrtEngine, stream, *, token_name: str | None = None):
        self.spec, self.engine, self.stream = spec, engine, stream
        self.input_names = tuple(t.name for t in spec.inputs)
        self.inputs, self.outputs, self.graphs = spec.inputs, spec.outputs, (spec.path,)  # a GraphRunner when fused
        self.output_name = spec.outputs[0].name
        self.device_chained = token_name is not None
        self.token_name = token_name
        feeds = set(self.input_names) - {token_name}
        self._out = engine.by_name[self.output_name]
        self._steps: dict[str | None, _Step] = {}
        self._encoders: dict[str, TrtEngine] = {}
        if not self.device_chained:
            self._steps[None] = _Step(
                stream, [(engine, feeds, {self.output_name})], capture=not engine.dynamic
            )

    def add_encoder(self, skill: str, encoder: TrtEngine) -> None:
        """Split mode: chain `encoder` (built with this BFM's token buffer as its output) before the BFM."""
        obs = {t.name for t in encoder.inputs}
        feeds = set(self.input_names) - {self.token_name}
        chain = [(encoder, obs, set()), (self.engine, feeds, {self.output_name})]
        self._encoders[skill] = encoder
        self._steps[skill] = _Step(self.stream, chain, capture=not self.engine.dynamic)

    def _stage(self, engine: TrtEngine, feeds: dict[str, np.ndarray]) -> int:
        n = next(iter(feeds.values())).shape[0]
        if n > engine.max_batch:
            raise InputError(
                f"batch {n} exceeds the engine's profile max {engine.max_batch}; rebuild with a larger profile"
            )
        for name, value in feeds.items():
            engine.by_name[name].host[:n] = value
        return n

    def _finish(self, n: int, out: np.ndarray | None) -> np.ndarray:
        result = self._out.host[:n]
        if out is None:
            return result.copy()
        np.copyto(out, result)
        return out

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.run_into(feeds, None)

    def run_into(self, feeds: dict[str, np.ndarray], out: np.ndarray | None) -> np.ndarray:
        n = self._stage(self.engine, feeds)
        self._steps[None].run(n)
        return self._finish(n, out)

    def run_skill(self, skill: str, feeds: dict[str, np.ndarray], out: np.ndarray | None) -> np.ndarray:
        encoder = self._encoders[skill]
        enc_names = {t.name for t in encoder.inputs}
        n = self._stage(self.engine, {k: v for k, v in feeds.items() if k not in enc_names})
        self._stage(encoder, {k: v for k, v in feeds.items() if k in enc_names})
        self._steps[skill].run(n)
        return self._finish(n, out)

    def free(self) -> None:
        for step in self._steps.values():
            step.free()
        for enc in self._encoders.values():
            enc.free()
        self.engine.free()


class TrtChainedRunner:
    """Split mode's GraphRunner for one skill: its encoder engine and the BFM engine, chained on the device
    (the encoder writes the token straight into the BFM's input buffer: `TrtGraphSession.run_skill`)."""

    def __init__(self, head: TrtGraphSession, skill: str, encoder_spec: mf.GraphSpec):
        self.head, self.skill = head, skill
        self.inputs = tuple(t for t in head.spec.inputs if t.name != head.token_name) + tuple(encoder_spec.inputs)
        self.input_names = tuple(t.name for t in self.inputs)
        self.outputs = head.spec.outputs
        self.graphs = (encoder_spec.path, head.spec.path)

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.head.run_skill(self.skill, feeds, None)

    def run_into(self, feeds: dict[str, np.ndarray], out: np.ndarray) -> np.ndarray:
        return self.head.run_skill(self.skill, feeds, out)


class TrtBackend:
    """All engines of a SkillRuntime: `sessions`, one GraphRunner per skill - a fused engine each, or in split
    mode one BFM engine (`head`) chained after each skill's encoder engine."""

    def __init__(
        self,
        bundle_dir: Path,
        manifest: mf.BundleManifest,
        skills,
        *,
        mode: str,
        dynamic: bool,
        precision: str | None,
    ):
        trt, cudart = _trt(), _cudart()
        self.cudart, self.bundle_dir, self.manifest = cudart, Path(bundle_dir), manifest
        self.version, self.gpu, self.precision = trt.__version__, gpu_name(), precision
        self.stream = _ok(
            cudart, cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking), "cudaStreamCreate"
        )
        self.head: TrtGraphSession | None = None
        self.sessions: dict[str, object] = {}
        if mode == "split":
            bfm_spec = manifest.graph("bfm", None, dynamic)
            bfm = TrtEngine(self._engine_bytes(bfm_spec), self.stream, name=bfm_spec.path)
            self.head = TrtGraphSession(bfm_spec, bfm, self.stream, token_name=manifest.task_token_name)
            token_ptr = int(bfm.by_name[manifest.task_token_name].device)
            for s in skills:
                spec = manifest.graph("encoder", s, dynamic)
                shared = {manifest.task_token_name: token_ptr}  # encoder output == BFM token input
                encoder = TrtEngine(self._engine_bytes(spec), self.stream, shared=shared, name=spec.path)
                if (
                    encoder.by_name[manifest.task_token_name].nbytes
                    > bfm.by_name[manifest.task_token_name].nbytes
                ):
                    raise BundleError(
                        f"{spec.path}: engine profile is larger than the BFM engine's; rebuild both"
                    )
                self.head.add_encoder(s, encoder)
                self.sessions[s] = TrtChainedRunner(self.head, s, spec)
        else:
            for s in skills:
                spec = manifest.graph("fused", s, dynamic)
                self.sessions[s] = TrtGraphSession(
                    spec, TrtEngine(self._engine_bytes(spec), self.stream, name=spec.path), self.stream
                )
        log.info("TensorRT backend: %s engines on %s (TensorRT %s)", mode, self.gpu, self.version)

    def _engine_bytes(self, graph: mf.GraphSpec) -> bytes:
        batch = None if any(isinstance(d, str) for t in graph.inputs for d in t.shape[:1]) else 1
        e = select_engine(self.manifest, graph, self.version, self.gpu, self.precision, batch=batch)
        path = self.bundle_dir / e.path
        data = path.read_bytes() if path.is_file() else None
        if data is None or hashlib.sha256(data).hexdigest() != e.sha256:  # the bytes hashed are the bytes loaded
            raise BundleError(
                f"engine {path} is missing or modified; rebuild with `ttdeploy export --format trt`"
            )
        return data

    def close(self) -> None:
        for s in self.sessions.values():
            if isinstance(s, TrtGraphSession):
                s.free()
        if self.head is not None:
            self.head.free()
        self.sessions.clear()
        self.head = None
        if self.stream is not None:
            self.cudart.cudaStreamDestroy(self.stream)
            self.stream = None


__all__ = [
    "TrtBackend",
    "TrtEngine",
    "TrtGraphSession",
    "select_engine",
    "unavailable_reason",
    "auto_reason",
    "gpu_name",
]
