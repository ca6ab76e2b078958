"""TensorRT engines from bundle graphs, as composable build stages (Polygraphy style), plus an engine cache.

    EngineBytes(NetworkFromOnnx(path), CreateConfig(policy, workspace, profile, pinned), timing_cache)()

The decisions are plain Python, importable and tested without tensorrt: the precision policy
(`precision_policy`), which ONNX nodes an FP16 build keeps in FP32 (`fp32_pinned_nodes`), the
optimisation profile shapes (`profile_shapes`) and the engine cache key (`engine_cache_key`). Only
the stages' `__call__` import tensorrt. Nothing here has run on a GPU (see docs/tensorrt.md).

TensorRT API facts used below, and where they come from (TensorRT 10 Python API reference,
docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api, unless noted):
- `trt.Builder(logger).create_network(0)`: explicit batch is the only mode in TensorRT 10 (the
  EXPLICIT_BATCH flag is deprecated and ignored), so flags = 0 gives a weakly-typed explicit-batch net.
- `trt.OnnxParser(network, logger).parse(bytes)` -> bool; `parser.num_errors`, `parser.get_error(i)`.
- `builder.create_builder_config()`, `config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, bytes)`,
  `config.set_flag / clear_flag(trt.BuilderFlag.FP16 | TF32 | OBEY_PRECISION_CONSTRAINTS)`; TF32 is
  enabled by default in a new IBuilderConfig, so an "fp32" build must clear it (IBuilderConfig docs).
- `layer.precision = trt.float32`, `layer.set_output_type(i, trt.float32)` are honoured only with
  OBEY_PRECISION_CONSTRAINTS (or PREFER_...) in weakly-typed networks (developer guide, "Reduced
  Precision"). `INormalizationLayer.compute_precision` (C++ setComputePrecision, TensorRT 10 API) keeps
  LayerNorm's internal accumulation in FP32; the ILayer -> INormalizationLayer downcast is done by
  assigning `__class__`, as Polygraphy's `trt.util` does for layer attributes.
- `builder.create_optimization_profile()`, `profile.set_shape(name, min, opt, max)`,
  `config.add_optimization_profile(profile)`.
- `config.create_timing_cache(bytes)`, `config.set_timing_cache(cache, ignore_mismatch=False)`,
  `config.get_timing_cache().serialize()` (Polygraphy `backend/trt/config.py` does the same round trip).
- `builder.build_serialized_network(network, config)` -> IHostMemory or None on failure.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx

from tt_deploy.errors import BundleError, InputError, MissingExtraError, TTDeployError, UnknownNameError
from tt_deploy.runtime import manifest as mf

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "tf32", "fp16")
ENGINE_DIR = "engines"
INDEX_FILE = "index.json"
ENGINE_SCHEMA = "tt-deploy.engines/1"
KEY_SCHEMA = "tt-deploy.engine-key/1"
INSTALL_HINT = 'pip install "tt-deploy[gpu-cu12]"'


# --- precision policy ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PrecisionPolicy:
    """Builder flags (trt.BuilderFlag member names) to set/clear, and whether LayerNorm/Softmax are pinned."""

    precision: str
    set_flags: tuple[str, ...]
    clear_flags: tuple[str, ...]
    pin_fp32: bool


def precision_policy(precision: str) -> PrecisionPolicy:
    """fp32: TF32 cleared (it is on by default). tf32: TF32 matmuls. fp16: FP16 kernels allowed, with
    LayerNorm, Softmax and the reductions/score chain feeding them pinned to FP32 (obeyed, not preferred:
    an FP16 LayerNorm after attention overflows, and a silently ignored pin is worse than a failed build)."""
    if precision == "fp32":
        return PrecisionPolicy("fp32", (), ("TF32",), False)
    if precision == "tf32":
        return PrecisionPolicy("tf32", ("TF32",), (), False)
    if precision == "fp16":
        return PrecisionPolicy("fp16", ("FP16", "OBEY_PRECISION_CONSTRAINTS"), ("TF32",), True)
    raise UnknownNameError("precision", precision, PRECISIONS)


_PIN_OPS = frozenset({"LayerNormalization", "Softmax"})
_REDUCE_OPS = frozenset(
    {"ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL2", "ReduceMax", "ReduceLogSumExp"}
)
# Walking back from a Softmax input through these stays inside "the scores" (scale, mask, reshape).
_SCORE_CHAIN = frozenset(
    {"Add", "Sub", "Mul", "Div", "Where", "Neg", "Reshape", "Transpose", "Cast", "Sqrt", "Pow"}
)
_MATMULS = frozenset({"MatMul", "Gemm"})


def fp32_pinned_nodes(model: onnx.ModelProto) -> tuple[str, ...]:
    """ONNX node names an FP16 engine keeps in FP32, in graph order.

    Every LayerNormalization and Softmax; for each Softmax, the chain computing its input back to and
    including the attention-score MatMul (QK^T, its scale and the additive mask - where FP16 overflows);
    and every reduction with the Pow/Sqrt around it (a LayerNorm decomposed by an older opset).
    """
    nodes = list(model.graph.node)
    producer = {o: n for n in nodes for o in n.output}
    pinned: set[str] = set()
    for n in nodes:
        if n.op_type in _PIN_OPS or n.op_type in _REDUCE_OPS:
            pinned.add(n.name)
        if n.op_type == "Softmax":
            _pin_score_chain(n, producer, pinned)
        if n.op_type in _REDUCE_OPS:
            for i in n.input[:1]:
                p = producer.get(i)
                if p is not None and p.op_type in ("Pow", "Mul"):
                    pinned.add(p.name)
        if n.op_type == "Sqrt" and any(
            producer.get(i) is not None and producer[i].op_type in _REDUCE_OPS for i in n.input
        ):
            pinned.add(n.name)
    unnamed = [n.op_type for n in nodes if n.name in pinned and not n.name]
    if unnamed:
        raise TTDeployError(
            f"cannot pin unnamed {unnamed} nodes to FP32; re-export the bundle (names are set by the exporter)"
        )
    return tuple(n.name for n in nodes if n.name in pinned)


def _pin_score_chain(softmax: onnx.NodeProto, producer: dict, pinned: set[str], depth: int = 8) -> None:
    frontier = list(softmax.input[:1])
    for _ in range(depth):
        nxt = []
        for t in frontier:
            p = producer.get(t)
            if p is None:
                continue
            if p.op_type in _MATMULS:
                pinned.add(p.name)  # the scores themselves; stop here
            elif p.op_type in _SCORE_CHAIN:
                pinned.add(p.name)
                nxt += [i for i in p.input if i]
        frontier = nxt


# --- optimisation profiles -----------------------------------------------------------------------
@dataclass(frozen=True)
class BatchProfile:
    """min/opt/max batch of the evaluation (.batch) engines; deploy engines are static batch 1."""

    min: int = 1
    opt: int = 32
    max: int = 256

    def __post_init__(self) -> None:
        if not (isinstance(self.min, int) and 1 <= self.min <= self.opt <= self.max):
            raise InputError(
                f"batch profile needs 1 <= min <= opt <= max; got {self.min}, {self.opt}, {self.max}"
            )


def profile_shapes(
    inputs: Sequence[mf.TensorSpec], batch: BatchProfile | None
) -> tuple[mf.ProfileShape, ...]:
    """One ProfileShape per graph input. batch None: every dim must be static (min = opt = max);
    otherwise the symbolic `batch` axis 0 gets (min, opt, max) and any other symbolic dim is an error."""
    out = []
    for t in inputs:
        dims = list(t.shape)
        symbolic = [i for i, d in enumerate(dims) if not isinstance(d, int)]
        if batch is None and symbolic:
            raise BundleError(
                f"input {t.name!r} has dynamic dims {dims}; a deploy (batch-1) engine needs static shapes"
            )
        if batch is not None and symbolic not in ([0], []):
            raise BundleError(f"input {t.name!r}: only axis 0 may be dynamic for a batch profile; got {dims}")
        if batch is None or not symbolic:
            shape = tuple(int(d) for d in dims)
            out.append(mf.ProfileShape(t.name, shape, shape, shape))
        else:
            rest = tuple(int(d) for d in dims[1:])
            out.append(mf.ProfileShape(t.name, (batch.min, *rest), (batch.opt, *rest), (batch.max, *rest)))
    return tuple(out)


# --- engine cache --------------------------------------------------------------------------------
def engine_cache_key(
    onnx_sha256: str, tensorrt_version: str, gpu_name: str, precision: str, profile: Sequence[mf.ProfileShape]
) -> str:
    """Hex sha256 over everything an engine depends on: graph bytes, TensorRT version, GPU, precision, profile."""
    if precision not in PRECISIONS:
        raise UnknownNameError("precision", precision, PRECISIONS)
    blob = {
        "schema": KEY_SCHEMA,
        "onnx_sha256": onnx_sha256,
        "tensorrt": tensorrt_version,
        "gpu": gpu_name,
        "precision": precision,
        "profile": [mf.to_dict(p) for p in profile],
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


def engine_path(graph_path: str, precision: str, key: str) -> str:
    """Bundle-relative engine file: engines/<graph path with / -> ->.<precision>.<key[:16]>.engine."""
    stem = graph_path.removesuffix(".onnx").replace("/", "-")
    return f"{ENGINE_DIR}/{stem}.{precision}.{key[:16]}.engine"


def timing_cache_path(bundle_dir: str | Path, tensorrt_version: str, gpu_name: str) -> Path:
    """Timing caches are per TensorRT version and GPU; one file each, shared by every build of the bundle."""
    tag = hashlib.sha256(f"{tensorrt_version}|{gpu_name}".encode()).hexdigest()[:12]
    return Path(bundle_dir) / ENGINE_DIR / f"timing-{tag}.cache"


def read_index(bundle_dir: str | Path) -> tuple[mf.EngineSpec, ...]:
    """Engines listed in <bundle>/engines/index.json (empty when there is none)."""
    path = Path(bundle_dir) / ENGINE_DIR / INDEX_FILE
    if not path.is_file():
        return ()
    data = json.loads(path.read_text())
    if data.get("schema") != ENGINE_SCHEMA:
        raise BundleError(
            f"{path}: schema {data.get('schema')!r} != {ENGINE_SCHEMA!r}; rebuild with --format trt"
        )
    return tuple(mf.from_dict(mf.EngineSpec, e, f"{path}[{i}]") for i, e in enumerate(data["engines"]))


def record_engines(bundle_dir: str | Path, engines: Sequence[mf.EngineSpec]) -> mf.BundleManifest:
    """Merge `engines` into engines/index.json and manifest.json (same path replaces); returns the manifest."""
    bundle_dir = Path(bundle_dir)
    with mf.bundle_lock(bundle_dir):  # an export may be replacing the manifest meanwhile
        manifest = mf.read_manifest(bundle_dir)
        merged = {e.path: e for e in (*manifest.engines, *engines)}
        valid = tuple(
            sorted((e for e in merged.values() if (bundle_dir / e.path).is_file()), key=lambda e: e.path)
        )
        (bundle_dir / ENGINE_DIR).mkdir(exist_ok=True)
        index = {"schema": ENGINE_SCHEMA, "engines": [mf.to_dict(e) for e in valid]}
        mf._write_json_atomic(bundle_dir / ENGINE_DIR / INDEX_FILE, index)
        updated = dataclasses.replace(manifest, engines=valid)
        mf.write_manifest(bundle_dir, updated)
    return updated


def cached_engine(bundle_dir: Path, manifest: mf.BundleManifest, key: str) -> mf.EngineSpec | None:
    """The recorded engine with `key` whose file is present and intact, else None."""
    for e in manifest.engines:
        if (
            e.key == key
            and (bundle_dir / e.path).is_file()
            and mf.sha256_file(bundle_dir / e.path) == e.sha256
        ):
            return e
    return None


# --- build stages (need tensorrt) ----------------------------------------------------------------
def tensorrt():
    """The tensorrt module, or MissingExtraError with the install command."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise MissingExtraError(
            f"--format trt needs TensorRT (tensorrt>=10) and a CUDA GPU: {INSTALL_HINT}"
        ) from exc
    return trt


def require_tensorrt() -> None:
    """MissingExtraError (with the install command) unless tensorrt, cuda-python and a CUDA GPU are present."""
    from tt_deploy.runtime.trt_backend import unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        raise MissingExtraError(
            f"--format trt needs TensorRT, cuda-python and a CUDA GPU ({reason}): {INSTALL_HINT}"
        )


def _logger(trt):
    from tt_deploy.runtime.trt_backend import trt_logger

    return trt_logger(trt)


class NetworkFromOnnx:
    """Stage 1: (builder, network, parser) from an ONNX file; TTDeployError listing the parser's errors."""

    def __init__(self, onnx_path: str | Path):
        self.onnx_path = Path(onnx_path)

    def __call__(self):
        trt = tensorrt()
        builder = trt.Builder(_logger(trt))
        network = builder.create_network(0)  # TensorRT 10: explicit batch always (flag deprecated)
        parser = trt.OnnxParser(network, _logger(trt))
        if not parser.parse(self.onnx_path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise TTDeployError(
                f"TensorRT could not parse {self.onnx_path}: {errors} (run `ttdeploy export --lint`)"
            )
        return builder, network, parser


def pin_layers_fp32(trt, network, node_names: Sequence[str]) -> list[str]:
    """Set FP32 precision + output types on the layers of `node_names` and every Normalization/Softmax/
    Reduce layer; returns the pinned layer names. Layers are matched by type and by the ONNX node name
    the parser gives them (its name, a `<node>_*` suffix, or the TensorRT 10 layer metadata)."""
    names = set(node_names)
    types = {trt.LayerType.NORMALIZATION, trt.LayerType.SOFTMAX, trt.LayerType.REDUCE}
    floats = {trt.float32, trt.float16}
    pinned = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        meta = getattr(layer, "metadata", "") or ""
        by_name = layer.name in names or any(layer.name.startswith(n + "_") or n in meta for n in names)
        if layer.type not in types and not by_name:
            continue
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            if layer.get_output(j).dtype in floats:
                layer.set_output_type(j, trt.float32)
        if layer.type == trt.LayerType.NORMALIZATION:
            layer.__class__ = trt.INormalizationLayer
            layer.compute_precision = trt.float32
        pinned.append(layer.name)
    return pinned


class CreateConfig:
    """Stage 2: IBuilderConfig from a precision policy, workspace, one optimisation profile, timing cache."""

    def __init__(
        self,
        policy: PrecisionPolicy,
        workspace_mb: int,
        profile: Sequence[mf.ProfileShape],
        pinned_nodes: Sequence[str] = (),
        timing_cache: bytes | None = None,
    ):
        if workspace_mb < 1:
            raise InputError(f"workspace must be >= 1 MB; got {workspace_mb}")
        self.policy, self.workspace_mb, self.profile = policy, workspace_mb, tuple(profile)
        self.pinned_nodes, self.timing_cache = tuple(pinned_nodes), timing_cache

    def __call__(self, builder, network):
        trt = tensorrt()
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace_mb << 20)
        for flag in self.policy.clear_flags:
            config.clear_flag(getattr(trt.BuilderFlag, flag))
        for flag in self.policy.set_flags:
            config.set_flag(getattr(trt.BuilderFlag, flag))
        if self.policy.pin_fp32:
            pinned = pin_layers_fp32(trt, network, self.pinned_nodes)
            if self.pinned_nodes and not pinned:
                raise TTDeployError(
                    "FP16 policy matched no TensorRT layer to pin to FP32; refusing an unpinned build"
                )
            log.info("pinned %d layers to FP32", len(pinned))
        profile = builder.create_optimization_profile()
        for p in self.profile:
            profile.set_shape(p.name, p.min, p.opt, p.max)
        if config.add_optimization_profile(profile) < 0:  # the index, -1 when the profile is invalid
            raise TTDeployError(f"TensorRT refused the optimisation profile {self.profile}")
        cache = config.create_timing_cache(self.timing_cache or b"")
        if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
            raise TTDeployError("TensorRT refused the timing cache (another TensorRT version?); delete it to rebuild")
        return config


class EngineBytes:
    """Stage 3: serialized engine bytes; saves the (merged) timing cache to `timing_cache_file` after the build."""

    def __init__(self, network: NetworkFromOnnx, config: CreateConfig, timing_cache_file: Path | None = None):
        self.network, self.config, self.timing_cache_file = network, config, timing_cache_file

    def __call__(self) -> bytes:
        builder, network, _parser = self.network()
        config = self.config(builder, network)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise TTDeployError(
                f"TensorRT failed to build {self.network.onnx_path} (see the TensorRT log above)"
            )
        if self.timing_cache_file is not None:
            data = bytes(memoryview(config.get_timing_cache().serialize()))
            self.timing_cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.timing_cache_file.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(self.timing_cache_file)
        return bytes(memoryview(serialized))


# --- bundle level --------------------------------------------------------------------------------
def graphs_for(
    manifest: mf.BundleManifest, skills: Sequence[str], modes: Sequence[str]
) -> list[mf.GraphSpec]:
    """GraphSpecs to build: fused graphs for "fused"; bfm + encoders for "split"; static and batch each."""
    out = []
    for g in (g for g in manifest.graphs if g.precision == "fp32"):  # TensorRT sets its own precision
        if g.role == "fused" and "fused" in modes and g.skill in skills:
            out.append(g)
        elif "split" in modes and (g.role == "bfm" or (g.role == "encoder" and g.skill in skills)):
            out.append(g)
    return out


def build_bundle_engines(
    bundle_dir: str | Path,
    skills: Sequence[str] | None = None,
    *,
    precision: str = "fp16",
    workspace_mb: int = 1024,
    modes: Sequence[str] = ("fused", "split"),
    batch_profile: BatchProfile = BatchProfile(),
    rebuild: bool = False,
) -> list[mf.EngineSpec]:
    """Build (or reuse from the cache) TensorRT engines for `skills` of a bundle; records them in the manifest.

    Static graphs get a batch-1 profile (deployment), `.batch` graphs `batch_profile` (evaluation).
    Needs tensorrt, cuda-python and a GPU: MissingExtraError otherwise.
    """
    from tt_deploy.runtime.trt_backend import gpu_name

    policy = precision_policy(precision)
    require_tensorrt()
    trt = tensorrt()
    bundle_dir = Path(bundle_dir)
    manifest = mf.read_manifest(bundle_dir)
    skills = list(manifest.skills if skills is None else skills)
    for s in skills:
        if s not in manifest.skills:
            raise UnknownNameError("skill", s, manifest.skills)
    gpu, version = gpu_name(), trt.__version__
    cache_file = timing_cache_path(bundle_dir, version, gpu)
    content = mf.content_dir(bundle_dir, manifest)
    built = []
    for g in graphs_for(manifest, skills, modes):
        profile = profile_shapes(g.inputs, batch_profile if g.batch == "dynamic" else None)
        key = engine_cache_key(g.sha256, version, gpu, precision, profile)
        hit = None if rebuild else cached_engine(bundle_dir, manifest, key)
        if hit is not None:
            log.info("engine cache hit: %s", hit.path)
            built.append(hit)
            continue
        onnx_path = content / g.path
        if mf.sha256_file(onnx_path) != g.sha256:
            raise BundleError(f"{onnx_path} does not match the manifest hash; re-export the bundle")
        pinned = fp32_pinned_nodes(onnx.load(str(onnx_path))) if policy.pin_fp32 else ()
        timing = cache_file.read_bytes() if cache_file.is_file() else None
        data = EngineBytes(
            NetworkFromOnnx(onnx_path),
            CreateConfig(policy, workspace_mb, profile, pinned, timing),
            cache_file,
        )()
        rel = engine_path(g.path, precision, key)
        (bundle_dir / ENGINE_DIR).mkdir(exist_ok=True)
        (bundle_dir / rel).write_bytes(data)
        spec = mf.EngineSpec(
            rel, g.path, g.sha256, key, hashlib.sha256(data).hexdigest(), precision, version, gpu, profile
        )
        built.append(spec)
        log.info("built %s (%d bytes)", rel, len(data))
    record_engines(bundle_dir, built)
    return built


__all__ = [
    "PRECISIONS", "PrecisionPolicy", "precision_policy", "fp32_pinned_nodes", "BatchProfile", "profile_shapes",
    "engine_cache_key", "engine_path", "timing_cache_path", "read_index", "record_engines", "cached_engine",
    "require_tensorrt", "NetworkFromOnnx", "CreateConfig", "EngineBytes", "pin_layers_fp32", "graphs_for", "build_bundle_engines",
]  # fmt: skip
