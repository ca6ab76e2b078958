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


def test_inspect_refuses_a_non_graph_in_one_line(tmp_path):
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"not a graph")
    res = runner.invoke(app, ["inspect", str(bad)])
    assert isinstance(res.exception, InputError) and "not a loadable ONNX graph" in str(res.exception)
    res = runner.invoke(app, ["inspect", str(tmp_path / "missing.onnx")])
    assert isinstance(res.exception, InputError) and "no such file" in str(res.exception)
