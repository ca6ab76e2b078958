"""Strong typing for TensorRT 10.12+ / 11 on CPU: the fp16 / bf16 ONNX rewrite (checked in onnxruntime against
the fp32 graph), the TensorRT version gate, and the builder run against stubs of TensorRT 11's and 10.x's
Python surface. None of this has run on a GPU or a real TensorRT."""

from __future__ import annotations

import importlib.util
import shutil
import types

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from tt_deploy.errors import InputError, TTDeployError, UnknownNameError
from tt_deploy.export import tensorrt_build as tb
from tt_deploy.export.bundle import export_skill
from tt_deploy.export.strong_typing import strongly_typed
from tt_deploy.runtime import manifest as mf
from tt_deploy.runtime import trt_backend

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None
FP16_TOL = 1e-2  # max abs difference to the fp32 graph, on every output (actions are clamped to +-1)
# The weak-typing names TensorRT 11 removed: the strongly typed path must never read or write them.
REMOVED_IN_11 = {
    "BuilderFlag.FP16", "BuilderFlag.OBEY_PRECISION_CONSTRAINTS", "BuilderFlag.PREFER_PRECISION_CONSTRAINTS",
    "ILayer.precision", "ILayer.set_output_type", "INormalizationLayer", "INormalizationLayer.compute_precision",
}  # fmt: skip


@pytest.fixture(scope="module")
def bundle(small_bfm_file, tmp_path_factory):
    _, path = small_bfm_file
    return export_skill("reach", bfm_path=path, bundle_dir=tmp_path_factory.mktemp("strong") / "deploy")


def _graphs(bundle) -> list[mf.GraphSpec]:
    return [g for g in mf.read_manifest(bundle).graphs if g.precision == "fp32"]


def _load(bundle, rel: str) -> onnx.ModelProto:
    return onnx.load(str(mf.content_dir(bundle) / rel))


def _types(model: onnx.ModelProto) -> dict[str, int]:
    g = model.graph
    out = {v.name: v.type.tensor_type.elem_type for v in (*g.input, *g.value_info, *g.output)}
    return out | {i.name: i.data_type for i in g.initializer}


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _feeds(graph: mf.GraphSpec, rng: np.random.Generator, batch: int = 8) -> dict[str, np.ndarray]:
    feeds = {}
    for t in graph.inputs:
        shape = [batch if isinstance(d, str) else d for d in t.shape]
        feeds[t.name] = (
            rng.random(shape) < 0.5 if t.dtype == "bool" else (rng.standard_normal(shape) * 2).astype(np.float32)
        )
    return feeds


# --- the ONNX rewrite ----------------------------------------------------------------------------
def test_fp16_rewrite_of_every_exported_graph_matches_fp32_in_onnxruntime(bundle):
    """Every graph of a real bundle: valid ONNX (checked inside), the same I/O dtypes, fp16 compute, and
    outputs within fp16 tolerance of the fp32 graph on 16 seeded random batches."""
    rng = np.random.default_rng(0)
    report = {}
    for g in _graphs(bundle):
        m = _load(bundle, g.path)
        typed = strongly_typed(m, "fp16")
        out = typed.model
        assert [(v.name, v.type.tensor_type.elem_type) for v in (*out.graph.input, *out.graph.output)] == [
            (v.name, v.type.tensor_type.elem_type) for v in (*m.graph.input, *m.graph.output)
        ]
        added = [n for n in out.graph.node if n.op_type == "Cast" and n.name.startswith("strong_typing/")]
        assert typed.casts_added == len(added) > 0
        t, pinned = _types(out), set(tb.fp32_pinned_nodes(m))
        for n in (n for n in out.graph.node if n.name in pinned):  # pinned nodes read fp32 only (masks: bool)
            assert {t[i] for i in n.input if i and t[i] not in (TensorProto.INT64, TensorProto.BOOL)} == {
                TensorProto.FLOAT}, n.name
        ref, low = _session(m), _session(out)
        worst = 0.0
        for _ in range(16):
            feeds = _feeds(g, rng)
            for a, b in zip(ref.run(None, feeds), low.run(None, feeds), strict=True):
                assert b.dtype == a.dtype == np.float32
                worst = max(worst, float(np.abs(a - b).max()))
        report[g.path] = (worst, typed.casts_added, len(typed.fp32_nodes))
    print("\nfp16 rewrite: graph -> (max abs error vs fp32, Casts added, nodes kept fp32)")
    for path, row in report.items():
        print(f"  {path}: {row}")
    assert all(worst < FP16_TOL for worst, _, _ in report.values()), report


@pytest.mark.parametrize("precision, low", [("fp16", TensorProto.FLOAT16), ("bf16", TensorProto.BFLOAT16)])
def test_pinned_nodes_compute_in_fp32_and_the_rest_in_the_reduced_type(bundle, precision, low):
    """bf16 is checked for structure only: onnxruntime's CPU provider has no bf16 Sub / Gemm kernels."""
    m = _load(bundle, "skills/reach/fused.onnx")
    pinned = set(tb.fp32_pinned_nodes(m))
    typed = strongly_typed(m, precision)
    assert set(typed.fp32_nodes) == pinned and typed.range_kept == ()
    out = typed.model
    t = _types(out)
    floats = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16}
    by_name = {n.name: n for n in out.graph.node}
    for name in pinned:
        ins = [t[i] for i in by_name[name].input if i and t[i] in floats]
        assert ins and set(ins) == {TensorProto.FLOAT}, (name, ins)
        assert {t[o] for o in by_name[name].output if t.get(o) in floats} == {TensorProto.FLOAT}
    gemms = [n for n in out.graph.node if n.op_type == "Gemm" and n.name not in pinned]  # pinned: scores
    assert gemms and all(t[i] == low for n in gemms for i in n.input)
    assert all(i.data_type != TensorProto.FLOAT for i in out.graph.initializer if i.name.endswith(f".{precision}"))
    mask = "historical_pose_obs_mask"  # bool input: no Cast, same consumers
    assert t[mask] == TensorProto.BOOL
    assert not [n for n in out.graph.node if n.op_type == "Cast" and mask in n.input]
    onnx.checker.check_model(out, full_check=True)


def _toy_model() -> onnx.ModelProto:
    """Cast int->float, ConstantOfShape, a constant fp16 cannot hold, a Softmax graph output, an Add output."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, (2, 4))
    k = helper.make_tensor_value_info("k", TensorProto.INT64, (2, 4))
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, (2, 4)) for n in ("p", "y", "big")]
    inits = [
        numpy_helper.from_array(np.full((4,), 0.5, np.float32), "w"),
        numpy_helper.from_array(np.array(1e6, np.float32), "huge"),
        numpy_helper.from_array(np.array([2, 4], np.int64), "shape"),
    ]
    nodes = [
        helper.make_node("Cast", ["k"], ["kf"], to=TensorProto.FLOAT, name="cast"),
        helper.make_node("ConstantOfShape", ["shape"], ["zeros"], name="zeros"),
        helper.make_node("Mul", ["x", "w"], ["xw"], name="mul"),
        helper.make_node("Add", ["xw", "kf"], ["s"], name="add"),
        helper.make_node("Softmax", ["s"], ["p"], axis=-1, name="softmax"),
        helper.make_node("Add", ["s", "zeros"], ["y"], name="add_out"),
        helper.make_node("Div", ["x", "huge"], ["big"], name="div_huge"),
    ]
    graph = helper.make_graph(nodes, "toy", [x, k], outs, initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_rewrite_of_attribute_typed_nodes_outputs_and_overflowing_constants():
    m = _toy_model()
    typed = strongly_typed(m, "fp16", pinned=("softmax",))  # fp32_pinned_nodes would also take its score chain
    t = _types(typed.model)
    by_name = {n.name: n for n in typed.model.graph.node}
    assert typed.fp32_nodes == ("softmax", "div_huge") and typed.range_kept == ("div_huge",)
    assert helper.get_attribute_value(by_name["cast"].attribute[0]) == TensorProto.FLOAT16
    assert t["zeros"] == t["kf"] == t["s"] == TensorProto.FLOAT16
    assert t["p"] == t["y"] == t["big"] == TensorProto.FLOAT  # outputs keep fp32: Softmax is fp32, Add is cast
    assert by_name["softmax"].output[0] == "p" and by_name["add_out"].output[0] != "y"
    assert t["huge"] == TensorProto.FLOAT  # 1e6 stays an fp32 initializer; 1e6 in fp16 would be inf
    rng = np.random.default_rng(1)
    feeds = {"x": rng.standard_normal((2, 4)).astype(np.float32), "k": rng.integers(-3, 3, (2, 4))}
    for a, b in zip(_session(m).run(None, feeds), _session(typed.model).run(None, feeds), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-2, atol=1e-3)


def test_rewrite_refuses_what_it_cannot_type():
    with pytest.raises(UnknownNameError, match="int8"):
        strongly_typed(_toy_model(), "int8")
    m = _toy_model()
    branch = helper.make_graph([], "b", [], [helper.make_tensor_value_info("x", TensorProto.FLOAT, (2, 4))])
    m.graph.node.append(helper.make_node("If", ["c"], ["z"], then_branch=branch, else_branch=branch, name="if"))
    with pytest.raises(TTDeployError, match="subgraph"):
        strongly_typed(m, "fp16")
    with pytest.raises(InputError, match="strongly typed network"):
        tb.NetworkFromOnnx("g.onnx", strongly_typed=False, rewrite="fp16")


# --- the version gate and the policy -------------------------------------------------------------
@pytest.mark.parametrize(
    "version, has_fp16, strong",
    [("10.9.0.34", True, False), ("10.11.0.33", True, False), ("10.12.0.36", True, True),
     ("10.15.1", True, True), ("11.0.0.1", False, True), ("unreadable", False, True), ("unreadable", True, False)],
)  # fmt: skip
def test_strong_typing_gate(version, has_fp16, strong):
    flags = types.SimpleNamespace(TF32="TF32", **({"FP16": "FP16"} if has_fp16 else {}))
    assert tb.strong_typing_available(types.SimpleNamespace(__version__=version, BuilderFlag=flags)) is strong


def test_strongly_typed_policy_sets_no_precision_flag():
    fp16 = tb.precision_policy("fp16", strongly_typed=True)
    assert fp16.set_flags == () and fp16.clear_flags == ("TF32",) and not fp16.pin_fp32 and fp16.rewrite == "fp16"
    fp32, tf32 = tb.precision_policy("fp32", True), tb.precision_policy("tf32", True)
    assert fp32.clear_flags == ("TF32",) and fp32.rewrite is None and fp32.strongly_typed
    assert tf32.set_flags == ("TF32",) and tf32.rewrite is None and tf32.strongly_typed
    assert not tb.precision_policy("fp16").strongly_typed  # the default stays the weak (TensorRT 10.x) policy


# --- the builder against TensorRT stubs ----------------------------------------------------------
def _stub_tensorrt(version: str, weak_api: bool):
    """A tensorrt module stand-in with TensorRT 11's surface (weak_api False: no FP16 / precision-constraint
    flags, no ILayer.precision / set_output_type, no INormalizationLayer) or 10.x's (weak_api True). Every
    public attribute read or written is logged as 'Class.name' (module attributes as 'name')."""
    seen = types.SimpleNamespace(log=[], network_flags=[], parsed=[], raw=[], build_flags=[], pinned=[], compute=[])

    class Rec:
        kind = ""

        def __getattribute__(self, name):
            if not name.startswith("_"):
                seen.log.append(f"{type(self).kind}.{name}" if type(self).kind else name)
            return object.__getattribute__(self, name)

    def enum(kind, *members, **valued):
        return type(kind, (Rec,), {"kind": kind, **{m: m for m in members}, **valued})()

    class ITensor(Rec):
        kind = "ITensor"

        def __init__(self, dtype):
            object.__setattr__(self, "dtype", dtype)

    layer_types = {"LayerNormalization": "NORMALIZATION", "Softmax": "SOFTMAX", "ReduceMean": "REDUCE"}

    class ILayer(Rec):
        kind = "ILayer"

        def __init__(self, node):
            for k, v in dict(name=node.name, type=layer_types.get(node.op_type, "OTHER"),
                             num_outputs=len(node.output), metadata="").items():  # fmt: skip
                object.__setattr__(self, k, v)

        def get_output(self, j):
            return ITensor("float32")

        def __setattr__(self, name, value):
            if not name.startswith("_"):
                seen.log.append(f"{type(self).kind}.{name}")
                target = seen.pinned if name == "precision" else seen.compute
                target.append(object.__getattribute__(self, "name"))  # the stub's own read: not logged
            object.__setattr__(self, name, value)

    if weak_api:
        ILayer.precision = None
        ILayer.set_output_type = lambda self, j, dtype: None

    class INormalizationLayer(ILayer):
        kind = "INormalizationLayer"
        compute_precision = None

    class INetworkDefinition(Rec):
        kind = "INetworkDefinition"

        def __init__(self):
            self._layers = []

        @property
        def num_layers(self):
            return len(self._layers)

        def get_layer(self, i):
            return self._layers[i]

    class OnnxParser(Rec):
        kind = "OnnxParser"
        num_errors = 0

        def __init__(self, network, logger):
            self._network = network

        def parse(self, data):
            model = onnx.load_from_string(data)
            seen.parsed.append(model)
            seen.raw.append(bytes(data))
            self._network._layers = [ILayer(n) for n in model.graph.node]
            return True

        def get_error(self, i):
            return "stub"

    class ITimingCache(Rec):
        kind = "ITimingCache"

        def serialize(self):
            return b"timing"

    class IOptimizationProfile(Rec):
        kind = "IOptimizationProfile"

        def set_shape(self, name, lo, opt, hi):
            pass

    class IBuilderConfig(Rec):
        kind = "IBuilderConfig"

        def __init__(self):
            self._flags = {"TF32"}  # TensorRT's default

        def set_memory_pool_limit(self, pool, size):
            pass

        def set_flag(self, flag):
            self._flags.add(flag)

        def clear_flag(self, flag):
            self._flags.discard(flag)

        def add_optimization_profile(self, profile):
            return 0

        def create_timing_cache(self, data):
            return ITimingCache()

        def set_timing_cache(self, cache, ignore_mismatch):
            return True

        def get_timing_cache(self):
            return ITimingCache()

    class Builder(Rec):
        kind = "Builder"

        def __init__(self, logger):
            pass

        def create_network(self, flags):
            seen.network_flags.append(flags)
            return INetworkDefinition()

        def create_builder_config(self):
            return IBuilderConfig()

        def create_optimization_profile(self):
            return IOptimizationProfile()

        def build_serialized_network(self, network, config):
            seen.build_flags.append(frozenset(config._flags))
            return b"engine"

    class Logger(Rec):
        kind = "Logger"
        WARNING = "WARNING"

        def __call__(self, severity):
            return object()

    weak_flags = ("FP16", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS") if weak_api else ()
    members = dict(
        __version__=version, Builder=Builder, OnnxParser=OnnxParser, Logger=Logger(),
        BuilderFlag=enum("BuilderFlag", "TF32", "DEBUG", "REFIT", *weak_flags),
        NetworkDefinitionCreationFlag=enum("NetworkDefinitionCreationFlag", STRONGLY_TYPED=1),  # as in TensorRT
        MemoryPoolType=enum("MemoryPoolType", "WORKSPACE"),
        LayerType=enum("LayerType", "NORMALIZATION", "SOFTMAX", "REDUCE", "OTHER"),
        float32="float32", float16="float16",
    )  # fmt: skip
    if weak_api:
        members["INormalizationLayer"] = INormalizationLayer
    return type("tensorrt", (Rec,), members)(), seen


def _build_with_stub(monkeypatch, bundle, tmp_path, trt, precision):
    """build_bundle_engines for the fused reach graphs with `trt` as tensorrt (no GPU, no cuda-python)."""
    copy = tmp_path / "deploy"
    shutil.copytree(bundle, copy)
    monkeypatch.setattr(tb, "tensorrt", lambda: trt)
    monkeypatch.setattr(tb, "require_tensorrt", lambda: None)
    monkeypatch.setattr(trt_backend, "gpu_name", lambda device=0: "Stub GPU")
    monkeypatch.setattr(trt_backend, "_LOGGER", [])
    engines = tb.build_bundle_engines(copy, ["reach"], precision=precision, modes=("fused",))
    return copy, engines


def _api(strong: bool, optional: bool = False) -> set[str]:
    """tensorrt_api's names plus their containers (reading trt.BuilderFlag precedes BuilderFlag.TF32)."""
    names = set(tb.tensorrt_api(strong)) | (set(tb.TRT_OPTIONAL) if optional else set())
    return names | {n.split(".")[0] for n in names}


FUSED = ("skills/reach/fused.onnx", "skills/reach/fused.batch.onnx")


def _fp32_graphs(bundle):
    return [_load(bundle, p) for p in FUSED]


def _fp32_bytes(bundle) -> list[bytes]:
    return sorted((mf.content_dir(bundle) / p).read_bytes() for p in FUSED)


@pytest.mark.parametrize("version", ["11.0.0.1", "10.12.0.36"])
def test_tensorrt_11_and_10_12_stubs_build_fp16_strongly_typed(monkeypatch, bundle, tmp_path, version):
    """TensorRT 11's surface lacks the weak-typing names (10.12 still has them): the strongly typed path must
    be chosen, parse the fp16 rewrite, set no precision flag and touch none of the removed names."""
    trt, seen = _stub_tensorrt(version, weak_api=version.startswith("10."))
    copy, engines = _build_with_stub(monkeypatch, bundle, tmp_path, trt, "fp16")
    assert len(engines) == 2 and {e.precision for e in engines} == {"fp16"}
    assert mf.read_manifest(copy).engines == tuple(sorted(engines, key=lambda e: e.path))
    assert seen.network_flags == [1 << 1, 1 << 1]  # STRONGLY_TYPED
    assert seen.build_flags == [frozenset(), frozenset()]  # TF32 cleared, nothing set
    for model in seen.parsed:
        assert any(i.data_type == TensorProto.FLOAT16 for i in model.graph.initializer)
        assert any(n.op_type == "Cast" for n in model.graph.node)
        assert {v.type.tensor_type.elem_type for v in model.graph.output} == {TensorProto.FLOAT}
    assert seen.pinned == seen.compute == []
    assert not REMOVED_IN_11 & set(seen.log), REMOVED_IN_11 & set(seen.log)
    assert set(seen.log) <= _api(True), set(seen.log) - _api(True)


@pytest.mark.parametrize("precision, flags", [("fp32", frozenset()), ("tf32", frozenset({"TF32"}))])
def test_tensorrt_11_stub_builds_fp32_and_tf32_from_the_unchanged_graph(
    monkeypatch, bundle, tmp_path, precision, flags
):
    trt, seen = _stub_tensorrt("11.0.0.1", weak_api=False)
    _build_with_stub(monkeypatch, bundle, tmp_path, trt, precision)
    assert seen.network_flags == [1 << 1, 1 << 1] and seen.build_flags == [flags, flags]
    assert sorted(seen.raw) == _fp32_bytes(bundle)  # the files themselves, no rewrite
    assert not REMOVED_IN_11 & set(seen.log) and set(seen.log) <= _api(True)


def test_tensorrt_10_stub_takes_the_weak_path(monkeypatch, bundle, tmp_path):
    """TensorRT 10.0-10.11: the fp32 graph, FP16 + OBEY_PRECISION_CONSTRAINTS and the FP32 layer pins."""
    trt, seen = _stub_tensorrt("10.9.0.34", weak_api=True)
    _build_with_stub(monkeypatch, bundle, tmp_path, trt, "fp16")
    assert seen.network_flags == [0, 0]
    assert seen.build_flags == [frozenset({"FP16", "OBEY_PRECISION_CONSTRAINTS"})] * 2
    graphs = _fp32_graphs(bundle)
    assert sorted(seen.raw) == _fp32_bytes(bundle)
    expected = [n for m in graphs for n in tb.fp32_pinned_nodes(m)]
    assert sorted(seen.pinned) == sorted(expected)
    norms = [n.name for m in graphs for n in m.graph.node if n.op_type == "LayerNormalization"]
    assert sorted(seen.compute) == sorted(norms)  # compute_precision, on the Normalization layers only
    assert "NetworkDefinitionCreationFlag.STRONGLY_TYPED" not in seen.log
    allowed = _api(False, optional=True)
    assert set(seen.log) <= allowed, set(seen.log) - allowed


# --- against a real tensorrt, where one is installed ---------------------------------------------
@pytest.mark.skipif(not HAVE_TRT, reason="tensorrt is not installed: its API names cannot be checked here")
def test_every_tensorrt_name_of_the_chosen_path_exists_in_the_installed_tensorrt():
    import tensorrt as trt

    strong = tb.strong_typing_available(trt)
    missing = []
    for name in tb.tensorrt_api(strong):
        obj = trt
        for part in name.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                missing.append(name)
                break
    assert not missing, f"TensorRT {trt.__version__} ({'strong' if strong else 'weak'} path) lacks {missing}"
