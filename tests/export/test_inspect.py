"""`ttdeploy inspect`: a graph's I/O, hash and stamped metadata, read without torch; a bad file is one line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tt_deploy.cli import _register, app
from tt_deploy.errors import InputError
from tt_deploy.export.bundle import export_skill
from tt_deploy.hashing import sha256_file
from tt_deploy.runtime import manifest as mf

runner = CliRunner()
_register()


def test_inspect_reports_what_the_manifest_says_of_the_graph(small_bfm_file, tmp_path):
    bundle = export_skill("reach", bfm_path=small_bfm_file[1], bundle_dir=tmp_path / "deploy")
    man = mf.read_manifest(bundle)
    spec = man.graph("fused", "reach")
    path = mf.content_dir(bundle, man) / spec.path
    res = runner.invoke(app, ["inspect", str(path), "--json", str(tmp_path / "g.json")], terminal_width=200)
    assert res.exit_code == 0, res.output
    info = json.loads((tmp_path / "g.json").read_text())
    assert info["sha256"] == spec.sha256 == sha256_file(path)
    assert [i["name"] for i in info["inputs"]] == [t.name for t in spec.inputs]
    assert info["metadata"]["tt-deploy.role"] == "fused" and info["metadata"]["tt-deploy.skill"] == "reach"
    assert info["metadata"]["tt-deploy.bfm_sha256"] == man.bfm.sha256
    assert "tt-deploy.role" in res.output and "task_obs" in res.output
    contract = info["contract"]  # the contract keys, decoded (issue #36: a graph that describes itself)
    assert contract["tt-deploy.joint_names"] == list(man.joint_names) and len(man.joint_names) == 69
    assert contract["tt-deploy.kp"] == list(man.actuation.kp) and contract["tt-deploy.kd"] == list(man.actuation.kd)
    assert contract["tt-deploy.action_scale"] == list(man.pd_scale) and contract["tt-deploy.control_dt"] == man.control_dt
    assert contract["tt-deploy.token_layout"]["token_dim"] == man.token_dim and contract["tt-deploy.prior_params"] is None
    assert info["metadata"]["tt-deploy.contract_sha256"] == contract["tt-deploy.contract_sha256"]
    for shown in ("tt-deploy.action_transform", "tt-deploy.token_layout", "15x217",
                  "tt-deploy.contract_sha256", "per joint (69 joints", "L_Hip_x", "R_Hand_z"):
        assert shown in res.output, shown
    assert "[800.0,800.0" not in res.output  # decoded, not the raw JSON


def test_inspect_says_plainly_that_an_older_graph_carries_no_contract(small_bfm_file, tmp_path):
    import onnx

    from tt_deploy.runtime.graph_contract import CONTRACT_KEYS, SKILL_KEY

    bundle = export_skill("reach", bfm_path=small_bfm_file[1], bundle_dir=tmp_path / "deploy")
    model = onnx.load(str(mf.content_dir(bundle) / "bfm.onnx"))
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in CONTRACT_KEYS or p.key == SKILL_KEY]
    del model.metadata_props[:]
    for k, v in kept:
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(tmp_path / "old.onnx"))
    res = runner.invoke(app, ["inspect", str(tmp_path / "old.onnx")], terminal_width=200)
    assert res.exit_code == 0 and "no contract metadata" in res.output and "tt-deploy.role" in res.output


def test_inspect_refuses_a_non_graph_in_one_line(tmp_path):
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"not a graph")
    res = runner.invoke(app, ["inspect", str(bad)])
    assert isinstance(res.exception, InputError) and "not a loadable ONNX graph" in str(res.exception)
    res = runner.invoke(app, ["inspect", str(tmp_path / "missing.onnx")])
    assert isinstance(res.exception, InputError) and "no such file" in str(res.exception)
