"""TensorRT-compat lint on CPU: our exported graphs pass; hand-made bad graphs are flagged."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tt_deploy.export import trt_lint
from tt_deploy.export.bundle import export_skill
from tt_deploy.export.onnx_graphs import MIN_OPSET
from tt_deploy.export.trt_lint import SUPPORTED_OPS, lint_bundle, lint_model, lint_onnx

F = TensorProto.FLOAT


@pytest.fixture(scope="module")
def bundle(small_bfm_file, tmp_path_factory):
    _, path = small_bfm_file
    return export_skill("reach", bfm_path=path, bundle_dir=tmp_path_factory.mktemp("lint") / "deploy")


def model(nodes, inputs, outputs, *, opset=17, inits=(), domains=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    ops = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, 1) for d in domains)]
    return helper.make_model(graph, opset_imports=ops)


def relu(shape=(1, 4), opset=17):
    x, y = helper.make_tensor_value_info("x", F, shape), helper.make_tensor_value_info("y", F, shape)
    return model([helper.make_node("Relu", ["x"], ["y"], name="r")], [x], [y], opset=opset)


def codes(findings, severity="error"):
    return sorted({f.code for f in findings if f.severity == severity})


def test_exported_bundle_passes_and_lists_its_ops(bundle):
    report = lint_bundle(bundle)
    assert report.ok and report.findings == (), report.findings
    assert len(report.ops) == 8  # bfm, specialised bfm, encoder, fused x static/batch
    ops = report.op_types()
    assert {"LayerNormalization", "Softmax", "MatMul", "Gemm", "Where"} <= set(ops)
    assert set(ops) <= set(SUPPORTED_OPS)
    assert report.to_dict()["ok"] is True


def test_clean_graph_has_no_findings():
    assert lint_model(relu()) == []


def test_unsupported_and_plugin_ops_are_errors():
    x = helper.make_tensor_value_info("x", F, (4,))
    ys = [helper.make_tensor_value_info(n, F, (4,)) for n in ("y", "z", "w")]
    nodes = [
        helper.make_node("Unique", ["x"], ["y"], name="u"),  # "N" in the support matrix
        helper.make_node("MyOp", ["x"], ["z"], name="c", domain="com.example"),
        helper.make_node("InstanceNormalization", ["x", "x", "x"], ["w"], name="i"),
    ]
    found = lint_model(model(nodes, [x], ys, domains=("com.example",)))
    assert codes(found) == ["custom-domain", "plugin-op", "unsupported-op"]
    assert {f.node for f in found if f.code == "plugin-op"} == {"c", "i"}
    assert any("Unique" in f.message for f in found)


def test_layernorm_extra_outputs_are_flagged():
    x = helper.make_tensor_value_info("x", F, (1, 4))
    outs = [helper.make_tensor_value_info(n, F, None) for n in ("y", "mean")]
    inits = [numpy_helper.from_array(np.ones(4, np.float32), "s")]
    ln = helper.make_node("LayerNormalization", ["x", "s"], ["y", "mean"], name="ln")
    assert "unsupported-op" in codes(lint_model(model([ln], [x], outs, inits=inits)))


@pytest.mark.parametrize("opset, ok", [(11, False), (16, False), (17, True), (20, True), (21, False)])
def test_opset_range(opset, ok):
    found = lint_model(relu(opset=opset))
    assert (codes(found) == []) is ok, found
    if not ok:
        assert codes(found) == ["opset"]


def test_deploy_min_opset_matches_exporter():
    assert trt_lint.DEPLOY_MIN_OPSET == MIN_OPSET


def test_int64_io_data_and_range():
    x = helper.make_tensor_value_info("x", TensorProto.INT64, (1, 4))
    f = helper.make_tensor_value_info("f", F, (1, 4))
    y = helper.make_tensor_value_info("y", F, (1, 4))
    c = helper.make_tensor_value_info("c", TensorProto.INT64, (1, 4))
    big = numpy_helper.from_array(np.array([2**40], np.int64), "big")
    nodes = [
        helper.make_node("Cast", ["x"], ["y"], to=F, name="cast_in"),
        helper.make_node("Cast", ["f"], ["c2"], to=TensorProto.INT64, name="cast_data"),  # data-derived int64
        helper.make_node("Add", ["c2", "big"], ["c"], name="add"),
    ]
    found = lint_model(model(nodes, [x, f], [y, c], inits=[big]))
    errors = [f for f in found if f.severity == "error"]
    assert {e.code for e in errors} == {"int64"}
    msgs = " ".join(e.message for e in errors)
    assert "'x'" in msgs and "'c'" in msgs and "'big'" in msgs
    assert any(f.severity == "warning" and "'c2'" in f.message for f in found)


def test_shape_arithmetic_int64_is_fine():
    x = helper.make_tensor_value_info("x", F, (1, 2, 3))
    y = helper.make_tensor_value_info("y", F, (1, 6))
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "idx"], ["b"], axis=0, name="g"),
        helper.make_node("Unsqueeze", ["b", "axes"], ["b1"], name="u"),
        helper.make_node("Concat", ["b1", "six"], ["shp"], axis=0, name="cat"),
        helper.make_node("Reshape", ["x", "shp"], ["y"], name="rs"),
    ]
    inits = [
        numpy_helper.from_array(np.array(0, np.int64), "idx"),
        numpy_helper.from_array(np.array([0], np.int64), "axes"),
        numpy_helper.from_array(np.array([6], np.int64), "six"),
    ]
    onnx.checker.check_model(model(nodes, [x], [y], inits=inits), full_check=True)
    assert lint_model(model(nodes, [x], [y], inits=inits)) == []


def test_double_is_an_error():
    x = helper.make_tensor_value_info("x", TensorProto.DOUBLE, (1, 4))
    y = helper.make_tensor_value_info("y", TensorProto.DOUBLE, (1, 4))
    found = lint_model(model([helper.make_node("Relu", ["x"], ["y"], name="r")], [x], [y]))
    assert codes(found) == ["dtype"] and "DOUBLE" in found[0].message


def test_dynamic_batch_is_an_error_only_in_deploy_graphs(tmp_path):
    m = relu(shape=("batch", 4))
    assert codes(lint_model(m, deploy=True)) == ["dynamic-shape"]
    assert lint_model(m, deploy=False) == []
    onnx.save(m, tmp_path / "g.onnx")
    onnx.save(m, tmp_path / "g.batch.onnx")
    assert not lint_onnx(tmp_path / "g.onnx").ok
    assert lint_onnx(tmp_path / "g.batch.onnx").ok
    wide = relu(shape=("batch", "n"))
    assert codes(lint_model(wide, deploy=False)) == ["dynamic-shape"]  # only axis 0 may be dynamic
