"""TensorRT build decisions on CPU: cache keys, profiles, precision policy, FP32 pinning, engine records."""

from __future__ import annotations

import dataclasses
import importlib.util
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tt_deploy.errors import BundleError, InputError, MissingExtraError, UnknownNameError
from tt_deploy.export import tensorrt_build as tb
from tt_deploy.export.bundle import export_skill
from tt_deploy.runtime import manifest as mf

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.fixture(scope="module")
def bundle(small_bfm_file, tmp_path_factory):
    _, path = small_bfm_file
    return export_skill("reach", bfm_path=path, bundle_dir=tmp_path_factory.mktemp("trt") / "deploy")


PROFILE = (mf.ProfileShape("obs", (1, 358), (1, 358), (1, 358)),)
KEY_ARGS = dict(
    onnx_sha256="a" * 64, tensorrt_version="10.9.0", gpu_name="NVIDIA A10", precision="fp16", profile=PROFILE
)


def test_cache_key_is_stable():
    assert tb.engine_cache_key(**KEY_ARGS) == tb.engine_cache_key(**dict(KEY_ARGS))
    assert len(tb.engine_cache_key(**KEY_ARGS)) == 64


@pytest.mark.parametrize(
    "field, value",
    [
        ("onnx_sha256", "b" * 64),
        ("tensorrt_version", "10.9.1"),
        ("gpu_name", "NVIDIA A100"),
        ("precision", "fp32"),
        ("profile", (mf.ProfileShape("obs", (1, 358), (8, 358), (64, 358)),)),
    ],
)
def test_cache_key_changes_with_every_component(field, value):
    assert tb.engine_cache_key(**{**KEY_ARGS, field: value}) != tb.engine_cache_key(**KEY_ARGS)


def test_cache_key_rejects_unknown_precision():
    with pytest.raises(UnknownNameError, match="int8.*fp16"):
        tb.engine_cache_key(**{**KEY_ARGS, "precision": "int8"})


def test_engine_and_timing_cache_paths(tmp_path):
    key = tb.engine_cache_key(**KEY_ARGS)
    assert (
        tb.engine_path("skills/reach/fused.batch.onnx", "fp16", key)
        == f"engines/skills-reach-fused.batch.fp16.{key[:16]}.engine"
    )
    a = tb.timing_cache_path(tmp_path, "10.9.0", "NVIDIA A10")
    assert a.parent == tmp_path / "engines" and a != tb.timing_cache_path(tmp_path, "10.9.0", "NVIDIA A100")


def test_precision_policy():
    fp32, tf32, fp16 = (tb.precision_policy(p) for p in ("fp32", "tf32", "fp16"))
    assert (
        fp32.clear_flags == ("TF32",) and fp32.set_flags == () and not fp32.pin_fp32
    )  # TF32 is on by default
    assert tf32.set_flags == ("TF32",) and not tf32.pin_fp32
    assert set(fp16.set_flags) == {"FP16", "OBEY_PRECISION_CONSTRAINTS"} and fp16.pin_fp32
    with pytest.raises(UnknownNameError, match="bf16"):
        tb.precision_policy("bf16")


def test_fp16_pins_layernorm_softmax_and_scores_of_the_real_graph(bundle):
    m = onnx.load(str(mf.content_dir(bundle) / "skills/reach/fused.onnx"))
    pinned = set(tb.fp32_pinned_nodes(m))
    by_op = {}
    for n in m.graph.node:
        by_op.setdefault(n.op_type, set()).add(n.name)
    assert by_op["LayerNormalization"] <= pinned and len(by_op["LayerNormalization"]) == 4
    assert by_op["Softmax"] <= pinned and len(by_op["Softmax"]) == 2
    # the static graph is the lean form (export/lean_graph.py): a full layer's scores are a MatMul, the last
    # layer's (one query) a Gemm; each in its own scope, so no name prefix-matches another node
    scores = {n for n in pinned if n in by_op["MatMul"] | by_op["Gemm"]}
    assert len(scores) == 2 and all("self_attn/scores" in n for n in scores)
    assert not (pinned & by_op["Gemm"]) - scores  # encoder / MLP layers stay FP16
    assert len(pinned) < len(m.graph.node) // 4


def test_decomposed_layernorm_reductions_are_pinned():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, 4))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, (1, 4))
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["mu"], axes=[-1], name="mean"),
        helper.make_node("Sub", ["x", "mu"], ["d"], name="sub"),
        helper.make_node("Pow", ["d", "two"], ["d2"], name="pow"),
        helper.make_node("ReduceMean", ["d2"], ["var"], axes=[-1], name="var"),
        helper.make_node("Sqrt", ["var"], ["sd"], name="sqrt"),
        helper.make_node("Div", ["d", "sd"], ["y"], name="div"),
    ]
    graph = helper.make_graph(nodes, "ln", [x], [y], initializer=[two])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    assert tb.fp32_pinned_nodes(m) == ("mean", "pow", "var", "sqrt")


def test_profiles_static_and_batch(bundle):
    man = mf.read_manifest(bundle)
    static = tb.profile_shapes(man.graph("fused", "reach", False).inputs, None)
    assert all(p.min == p.opt == p.max and p.min[0] == 1 for p in static)
    dyn = tb.profile_shapes(man.graph("fused", "reach", True).inputs, tb.BatchProfile(2, 8, 64))
    obs = next(p for p in dyn if p.name == "obs")
    assert (obs.min, obs.opt, obs.max) == ((2, 358), (8, 358), (64, 358))
    assert next(p for p in dyn if p.name == "historical_pose_obs").max == (64, 15, 217)
    with pytest.raises(BundleError, match="static"):
        tb.profile_shapes(man.graph("fused", "reach", True).inputs, None)
    with pytest.raises(BundleError, match="only axis 0"):
        tb.profile_shapes((mf.TensorSpec("x", ("batch", "n"), "float32"),), tb.BatchProfile())
    with pytest.raises(InputError, match="min <= opt <= max"):
        tb.BatchProfile(4, 2, 8)


def test_graphs_for_modes(bundle):
    man = mf.read_manifest(bundle)
    assert {g.path for g in tb.graphs_for(man, ["reach"], ["fused"])} == {
        "skills/reach/fused.onnx",
        "skills/reach/fused.batch.onnx",
    }
    split = {g.role for g in tb.graphs_for(man, ["reach"], ["split"])}
    assert split == {"bfm", "encoder"} and len(tb.graphs_for(man, ["reach"], ["fused", "split"])) == 6


def _fake_engine(bundle, graph: mf.GraphSpec, precision="fp16", gpu="NVIDIA A10", payload=b"engine"):
    profile = tb.profile_shapes(graph.inputs, None)
    key = tb.engine_cache_key(graph.sha256, "10.9.0", gpu, precision, profile)
    rel = tb.engine_path(graph.path, precision, key)
    (bundle / "engines").mkdir(exist_ok=True)
    (bundle / rel).write_bytes(payload)
    sha = mf.sha256_file(bundle / rel)
    return mf.EngineSpec(rel, graph.path, graph.sha256, key, sha, precision, "10.9.0", gpu, profile)


def test_engine_records_round_trip_through_manifest_and_index(bundle):
    graph = mf.read_manifest(bundle).graph("fused", "reach", False)
    spec = _fake_engine(bundle, graph)
    man = tb.record_engines(bundle, [spec])
    assert man.engines == (spec,) and mf.read_manifest(bundle).engines == (spec,)
    assert tb.read_index(bundle) == (spec,)
    assert json.loads((bundle / "engines/index.json").read_text())["schema"] == tb.ENGINE_SCHEMA
    assert tb.cached_engine(bundle, man, spec.key) == spec
    entries = [h for h in man.history if h.event == "engines"]
    assert len(entries) == 1 and entries[0].skills == ("reach",) and spec.path.rsplit("/", 1)[-1] in entries[0].note
    assert len(tb.record_engines(bundle, [spec]).history) == len(man.history)  # a cached engine is not news
    (bundle / spec.path).write_bytes(b"tampered")
    assert tb.cached_engine(bundle, man, spec.key) is None  # modified file: no cache hit
    (bundle / spec.path).unlink()
    assert tb.record_engines(bundle, []).engines == ()  # records of missing files are dropped


def test_manifest_without_engines_field_still_reads(bundle, tmp_path):
    data = json.loads((bundle / mf.MANIFEST_FILE).read_text())
    data.pop("engines", None)
    (tmp_path / mf.MANIFEST_FILE).write_text(json.dumps(data))
    assert mf.read_manifest(tmp_path).engines == ()
    man = dataclasses.replace(mf.read_manifest(tmp_path), engines=())
    assert "engines" in mf.to_dict(man)


@pytest.mark.skipif(HAVE_TRT, reason="tensorrt is installed: the missing-extra path cannot be exercised")
def test_build_without_tensorrt_names_the_install_command(bundle):
    with pytest.raises(MissingExtraError, match=r'pip install "tt-deploy\[gpu-cu12\]"'):
        tb.build_bundle_engines(bundle, ["reach"], precision="fp32")


@pytest.mark.skipif(HAVE_TRT, reason="tensorrt is installed: the missing-extra path cannot be exercised")
def test_cli_format_trt_without_tensorrt_fails_before_exporting(tmp_path):
    from typer.testing import CliRunner

    from tt_deploy.cli import _register, app

    _register()
    result = CliRunner().invoke(
        app, ["export", "--skill", "reach", "--bundle", str(tmp_path / "b"), "--format", "trt"]
    )
    assert isinstance(result.exception, MissingExtraError) and "tt-deploy[gpu-cu12]" in str(result.exception)
    assert not (tmp_path / "b").exists()


def test_cli_lint_only(bundle):
    from typer.testing import CliRunner

    from tt_deploy.cli import _register, app

    _register()
    result = CliRunner().invoke(app, ["export", "--lint", "--bundle", str(bundle)])
    assert result.exit_code == 0, result.output
    assert "TensorRT lint passed" in result.output and "LayerNormalization" in result.output
