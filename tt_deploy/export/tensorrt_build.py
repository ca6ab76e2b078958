"""TensorRT engines from bundle graphs, as composable build stages (Polygraphy style), plus an engine cache.

    EngineBytes(NetworkFromOnnx(path, strongly_typed, rewrite), CreateConfig(policy, workspace, profile, pinned),
                timing_cache)()

The decisions are plain Python, importable and tested without tensorrt: the precision policy
(`precision_policy`), which ONNX nodes an FP16 build keeps in FP32 (`fp32_pinned_nodes`), the
optimisation profile shapes (`profile_shapes`) and the engine cache key (`engine_cache_key`). Only
the stages' `__call__` import tensorrt. Nothing here has run on a GPU (see docs/tensorrt.md).

Two precision paths, chosen per installed TensorRT by `strong_typing_available` (why: TensorRT 10.12
deprecated weak typing and TensorRT 11 removed BuilderFlag.FP16, OBEY_PRECISION_CONSTRAINTS,
ILayer.precision, ILayer.set_output_type and INormalizationLayer.compute_precision):
- strongly typed (TensorRT >= 10.12, or any TensorRT without BuilderFlag.FP16): every network is created
  with NetworkDefinitionCreationFlag.STRONGLY_TYPED, so the ONNX graph's own types decide precision. fp16
  parses the graph rewritten by `strong_typing.strongly_typed` (fp16 everywhere except the
  `fp32_pinned_nodes`, behind explicit Casts; fp32 graph I/O); no precision flag, no layer pin is set.
  fp32 / tf32 parse the fp32 graph unchanged, which stays fp32 under strong typing.
- weakly typed (TensorRT 10.0-10.11): the fp32 graph, BuilderFlag.FP16 + OBEY_PRECISION_CONSTRAINTS
  and per-layer FP32 pins (`pin_layers_fp32`), as before.
On both, TF32 stays a builder flag: cleared for fp32 and fp16 (so the FP32 parts really are FP32), set
for tf32. `tensorrt_api(strongly_typed)` lists every TensorRT name a path uses (checked by the tests
against a stub and, where installed, the real module).

TensorRT API facts used below, and where they come from (TensorRT 10 Python API reference,
docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api, unless noted):
- `trt.Builder(logger).create_network(flags)`: explicit batch is the only mode in TensorRT 10 (the
  EXPLICIT_BATCH flag is deprecated and ignored), so flags = 0 gives a weakly-typed explicit-batch net and
  `1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)` a strongly typed one ("setting layer
  precision and layer output types is not allowed"). TensorRT 11 Python API: STRONGLY_TYPED is kept but
  deprecated and ignored, strong typing is always on (11.0 release notes, "Strongly typed networks are now
  the default"; TensorRT 10.12 release notes: "Weak typing APIs deprecated").
- `trt.OnnxParser(network, logger).parse(bytes)` -> bool; `parser.num_errors`, `parser.get_error(i)`.
- `builder.create_builder_config()`, `config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, bytes)`,
  `config.set_flag / clear_flag(trt.BuilderFlag.FP16 | TF32 | OBEY_PRECISION_CONSTRAINTS)`; TF32 is
  enabled by default in a new IBuilderConfig, so an "fp32" build must clear it (IBuilderConfig docs).
  BuilderFlag.TF32 is still listed in TensorRT 11's BuilderFlag (its C++ enum keeps kTF32 while kFP16,
  kINT8, kBF16 and the precision-constraint flags are gone). ASSUMPTION, not found stated in the docs:
  clearing / setting TF32 is accepted on a strongly typed TensorRT 10.12+ network (it only governs FP32
  tensors, which is what strong typing leaves to the builder).
- `layer.precision = trt.float32`, `layer.set_output_type(i, trt.float32)` are honoured only with
  OBEY_PRECISION_CONSTRAINTS (or PREFER_...) in weakly-typed networks (developer guide, "Reduced
  Precision"). `INormalizationLayer.compute_precision` (C++ setComputePrecision, TensorRT 10 API) keeps
  LayerNorm's internal accumulation in FP32; the ILayer -> INormalizationLayer downcast is done by
  assigning `__class__`, as Polygraphy's `trt.util` does for layer attributes. Weak path only.
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
STRONG_TYPING_SINCE = (10, 12)  # TensorRT deprecated weak typing in 10.12 and removed it in 11.0


@dataclass(frozen=True)
class PrecisionPolicy:
    """Builder flags (trt.BuilderFlag member names) to set/clear, whether LayerNorm/Softmax are pinned
    (weak typing), and for strong typing the network flag and the reduced type the ONNX graph is rewritten to."""

    precision: str
    set_flags: tuple[str, ...]
    clear_flags: tuple[str, ...]
    pin_fp32: bool
    strongly_typed: bool = False
    rewrite: str | None = None  # strong_typing.LOW_TYPES key, None = parse the fp32 graph unchanged


def precision_policy(precision: str, strongly_typed: bool = False) -> PrecisionPolicy:
    """fp32: TF32 cleared (it is on by default). tf32: TF32 matmuls. fp16, weakly typed: FP16 kernels
    allowed, with LayerNorm, Softmax and the reductions/score chain feeding them pinned to FP32 (obeyed, not
    preferred: an FP16 LayerNorm after attention overflows, and a silently ignored pin is worse than a failed
    build). fp16, strongly typed: no precision flag at all; the same nodes stay FP32 through the graph's own
    types (an fp16 rewrite with Casts), and TF32 is cleared so those FP32 parts are not TF32."""
    if precision == "fp32":
        return PrecisionPolicy("fp32", (), ("TF32",), False, strongly_typed)
    if precision == "tf32":
        return PrecisionPolicy("tf32", ("TF32",), (), False, strongly_typed)
    if precision == "fp16" and strongly_typed:
        return PrecisionPolicy("fp16", (), ("TF32",), False, True, "fp16")
    if precision == "fp16":
        return PrecisionPolicy("fp16", ("FP16", "OBEY_PRECISION_CONSTRAINTS"), ("TF32",), True)
    raise UnknownNameError("precision", precision, PRECISIONS)


def _version(text: str) -> tuple[int, int]:
    """(major, minor) of a TensorRT version string such as "10.12.0.36"; (0, 0) when unreadable."""
    parts = str(text).split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return 0, 0


def strong_typing_available(trt) -> bool:
    """True on TensorRT >= 10.12 (weak typing deprecated; gone in 11) or any TensorRT without
    BuilderFlag.FP16. The version is read first so that a TensorRT 11 module is never probed for a
    removed name."""
    if _version(getattr(trt, "__version__", "")) >= STRONG_TYPING_SINCE:
        return True
    return not hasattr(trt.BuilderFlag, "FP16")


# Every TensorRT name (module attribute, or Class.member) a build path uses; the tests hold the stub-recorded
# accesses to these lists and, where tensorrt is installed, check that each name exists in it.
_TRT_COMMON = (
    "Logger", "Logger.WARNING", "Builder", "Builder.create_network", "Builder.create_builder_config",
    "Builder.create_optimization_profile", "Builder.build_serialized_network", "OnnxParser", "OnnxParser.parse",
    "OnnxParser.num_errors", "OnnxParser.get_error", "MemoryPoolType.WORKSPACE", "BuilderFlag.TF32",
    "IBuilderConfig.set_memory_pool_limit", "IBuilderConfig.clear_flag", "IBuilderConfig.set_flag",
    "IBuilderConfig.add_optimization_profile", "IBuilderConfig.create_timing_cache",
    "IBuilderConfig.set_timing_cache", "IBuilderConfig.get_timing_cache", "IOptimizationProfile.set_shape",
    "ITimingCache.serialize",
)
_TRT_STRONG = ("NetworkDefinitionCreationFlag.STRONGLY_TYPED",)
_TRT_WEAK = (
    "BuilderFlag.FP16", "BuilderFlag.OBEY_PRECISION_CONSTRAINTS", "LayerType.NORMALIZATION", "LayerType.SOFTMAX",
    "LayerType.REDUCE", "float32", "float16", "INetworkDefinition.num_layers", "INetworkDefinition.get_layer",
    "ILayer.name", "ILayer.type", "ILayer.precision", "ILayer.num_outputs", "ILayer.get_output",
    "ILayer.set_output_type", "ITensor.dtype", "INormalizationLayer", "INormalizationLayer.compute_precision",
    "INormalizationLayer.name",
)
TRT_OPTIONAL = ("ILayer.metadata",)  # read with a default (not in every TensorRT 10.x)


def tensorrt_api(strongly_typed: bool) -> tuple[str, ...]:
    """The TensorRT names the strongly or weakly typed build path uses (see _TRT_COMMON)."""
    return _TRT_COMMON + (_TRT_STRONG if strongly_typed else _TRT_WEAK)


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
        new = [e for e in valid if e not in manifest.engines]  # built now, file present (cached ones are not news)
        history = manifest.history
        if new:
            skills = {e.graph.split("/")[1] for e in new if e.graph.startswith(mf.SKILLS_DIR + "/")}
            note = "indexed: " + ", ".join(sorted(e.path.rsplit("/", 1)[-1] for e in new))
            history = mf.with_history(history, mf.history_entry("engines", manifest.content, skills, note=note))
        updated = dataclasses.replace(manifest, engines=valid, history=history)
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
    """Stage 1: (builder, network, parser) from an ONNX file; TTDeployError listing the parser's errors.

    `strongly_typed`: create the network with STRONGLY_TYPED (the graph's types decide precision).
    `rewrite` ("fp16" / "bf16"): parse the `strong_typing.strongly_typed` copy of the graph instead of the file.
    """

    def __init__(self, onnx_path: str | Path, strongly_typed: bool = False, rewrite: str | None = None):
        if rewrite is not None and not strongly_typed:
            raise InputError(f"an ONNX rewrite to {rewrite} needs a strongly typed network")
        self.onnx_path, self.strongly_typed, self.rewrite = Path(onnx_path), strongly_typed, rewrite

    def onnx_bytes(self) -> bytes:
        """The graph TensorRT parses: the file, or its strongly typed reduced-precision rewrite."""
        if self.rewrite is None:
            return self.onnx_path.read_bytes()
        from tt_deploy.export.strong_typing import strongly_typed

        typed = strongly_typed(onnx.load(str(self.onnx_path)), self.rewrite)
        log.info(
            "%s: %s rewrite, %d nodes kept fp32, %d Casts added",
            self.onnx_path.name, self.rewrite, len(typed.fp32_nodes), typed.casts_added,
        )  # fmt: skip
        return typed.model.SerializeToString()

    def __call__(self):
        trt = tensorrt()
        data = self.onnx_bytes()
        builder = trt.Builder(_logger(trt))
        network = builder.create_network(_network_flags(trt, self.strongly_typed))
        parser = trt.OnnxParser(network, _logger(trt))
        if not parser.parse(data):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise TTDeployError(
                f"TensorRT could not parse {self.onnx_path}: {errors} (run `ttdeploy export --lint`)"
            )
        return builder, network, parser


def _network_flags(trt, strongly_typed: bool) -> int:
    """0 (explicit batch is implicit in TensorRT 10) or the STRONGLY_TYPED bit; a TensorRT that has
    dropped the flag altogether is strongly typed anyway, so 0 is right there too."""
    if not strongly_typed:
        return 0
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return 0 if flag is None else 1 << int(flag)


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
        if self.policy.pin_fp32 and not self.policy.strongly_typed:  # strong typing forbids layer pins
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

    precision_policy(precision)  # an unknown precision fails before the GPU checks
    require_tensorrt()
    trt = tensorrt()
    policy = precision_policy(precision, strongly_typed=strong_typing_available(trt))
    log.info("TensorRT %s: %s typed build", trt.__version__, "strongly" if policy.strongly_typed else "weakly")
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
            NetworkFromOnnx(onnx_path, policy.strongly_typed, policy.rewrite),
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
    "STRONG_TYPING_SINCE", "strong_typing_available", "tensorrt_api",
]  # fmt: skip
