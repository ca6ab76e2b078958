"""Graphs that describe themselves (issue #36): each graph's metadata_props carry the manifest's contract
(runtime/graph_contract.py), verify holds them to the manifest and skill.json, and older graphs still load."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from bundle_helpers import restamp_graph
from typer.testing import CliRunner

from tt_deploy import spec
from tt_deploy.cli import _register, app
from tt_deploy.demo import SHIPPED_RUNS
from tt_deploy.errors import BundleError
from tt_deploy.export.bundle import export_skill
from tt_deploy.export.verify import VerifyCases, verify_bundle
from tt_deploy.runtime import SkillRuntime
from tt_deploy.runtime import graph_contract as gc
from tt_deploy.runtime import manifest as mf
from tt_deploy.runtime.parity import verify_recorded

TINY = VerifyCases(random=4, edge=1, rollout_envs=0, rollout_steps=0, batch1_max=2)
runner = CliRunner()
_register()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """`reach` trained beside its prior prompt (the shipped run) with int8 copies, then `steering` fresh (no prior)
    exported into the same bundle: every role, a reduced precision and a carry-over."""
    root = tmp_path_factory.mktemp("contract") / "deploy"
    export_skill("reach", bundle_dir=root, run_dir=SHIPPED_RUNS / "reach", precisions=["int8"])
    return export_skill("steering", bundle_dir=root)


def _meta(bundle, rel: str) -> dict[str, str]:
    return gc.read_metadata(mf.content_dir(bundle) / rel)


def _copy(bundle, tmp_path):
    return shutil.copytree(bundle, tmp_path / "deploy")


def test_every_graph_carries_the_manifests_contract(bundle):
    man = mf.read_manifest(bundle)
    act = man.actuation
    assert act is not None and {g.role for g in man.graphs} == set(mf.GRAPH_ROLES)
    assert {g.precision for g in man.graphs} == {"fp32", "int8"}
    for g in man.graphs:
        meta = _meta(bundle, g.path)
        value = {k: json.loads(meta[k]) for k in gc.BUNDLE_KEYS if k not in gc.TEXT_KEYS}
        assert value["tt-deploy.joint_names"] == list(man.joint_names) == list(spec.JOINT_NAMES)
        assert len(value["tt-deploy.joint_names"]) == 69
        assert value["tt-deploy.kp"] == list(act.kp) and value["tt-deploy.kd"] == list(act.kd)
        assert value["tt-deploy.kp"][0] == 800.0 and value["tt-deploy.kd"][0] == 80.0  # L_Hip_x (spec.PD_GAINS)
        assert value["tt-deploy.default_joint_pos"] == list(act.reset_joint_pos)
        assert value["tt-deploy.action_offset"] == list(man.pd_offset)
        assert value["tt-deploy.action_scale"] == list(man.pd_scale)
        assert value["tt-deploy.action_clamp"] == man.action_clamp == 1.0
        assert value["tt-deploy.control_dt"] == man.control_dt == 1 / 30
        assert meta["tt-deploy.action_transform"] == act.pd_form
        layout = value["tt-deploy.token_layout"]
        assert layout["token_dim"] == man.token_dim and layout["groups"] == mf.to_dict(man.token_groups)
        assert meta["tt-deploy.role"] == g.role and meta["tt-deploy.skill"] == (g.skill or "")
        contract = {k: v for k, v in meta.items() if k in gc.CONTRACT_KEYS and k != gc.CONTRACT_SHA_KEY}
        body = json.dumps(contract, sort_keys=True, separators=(",", ":"))  # the documented recipe
        assert meta[gc.CONTRACT_SHA_KEY] == hashlib.sha256(body.encode()).hexdigest()


def test_skill_graphs_carry_the_skill_and_its_prior_and_shared_graphs_do_not(bundle):
    man = mf.read_manifest(bundle)
    prior = mf.read_skill(bundle, "reach").task_prior
    assert prior is not None and prior["name"] == "reach"
    for g in man.graphs:
        meta = _meta(bundle, g.path)
        if g.skill is None:
            assert not (set(gc.SKILL_KEYS) - {gc.SKILL_KEY}) & set(meta)
        elif g.skill == "reach":
            assert meta["tt-deploy.prior_name"] == "reach"
            assert json.loads(meta["tt-deploy.prior_params"]) == prior["params"]
            assert json.loads(meta["tt-deploy.prior_goal_keys"]) == prior["goal_keys"]
        else:  # fresh steering: no prior prompt
            assert meta["tt-deploy.prior_name"] == "" and meta["tt-deploy.prior_params"] == "null"
    hashes = {g.skill: _meta(bundle, g.path)[gc.CONTRACT_SHA_KEY] for g in man.graphs}
    assert len(set(hashes.values())) == 3  # shared, reach, steering: one contract hash each
    assert {_meta(bundle, g.path)[gc.CONTRACT_SHA_KEY] for g in man.graphs if g.skill == "reach"} == {hashes["reach"]}


def test_verify_names_the_graph_and_the_key_a_restamped_graph_changed(bundle, tmp_path):
    """Adversarial: reach's fused graph says another kp for one joint, every hash fixed up: the runtime loads it
    (its load check reads the identity keys only), but verify refuses it in one line naming graph and key."""
    bad = _copy(bundle, tmp_path)
    kp = json.loads(_meta(bad, "skills/reach/fused.onnx")["tt-deploy.kp"])
    kp[3] = 1234.0

    def edit(meta):
        return {**meta, "tt-deploy.kp": gc.canonical_json(kp)}

    restamp_graph(bad, "skills/reach/fused.onnx", edit)
    with SkillRuntime(bad, backend="ort-cpu", skills=["reach"], allow_hidden_prior=True) as rt:
        assert rt.active == "reach"
    with pytest.raises(BundleError, match=r"skills/reach/fused\.onnx: metadata tt-deploy\.kp differ") as exc:
        verify_recorded(bad)
    assert "\n" not in str(exc.value) and "re-export" in str(exc.value)
    with pytest.raises(BundleError, match=r"fused\.onnx: metadata tt-deploy\.kp differ"):
        verify_bundle(bad, ["reach"], cases=TINY)  # the torch check too, before any parity
    verify_recorded(bad, ["steering"])  # another skill's graphs are not reach's
    res = runner.invoke(app, ["verify", "--bundle", str(bad), "--reference", "recorded"])
    assert isinstance(res.exception, BundleError) and "tt-deploy.kp" in str(res.exception)


def test_a_manifest_edited_after_export_no_longer_matches_its_graphs(bundle, tmp_path):
    """The other direction: the manifest says another control rate; every graph still says 1/30 s."""
    bad = _copy(bundle, tmp_path)
    data = json.loads((bad / mf.MANIFEST_FILE).read_text())
    data["control_dt"] = 0.02
    (bad / mf.MANIFEST_FILE).write_text(json.dumps(data))
    with pytest.raises(BundleError, match=r"tt-deploy\.contract_sha256, tt-deploy\.control_dt differ"):
        verify_recorded(bad, ["steering"])


def test_an_export_refuses_to_carry_over_graphs_of_another_contract(bundle, tmp_path):
    """A kept skill's graph whose contract is not the one the new manifest states is refused, like another BFM."""
    bad = _copy(bundle, tmp_path)
    restamp_graph(bad, "skills/steering/encoder.onnx", lambda m: {**m, "tt-deploy.control_dt": "0.02"})
    before = mf.read_manifest(bad)
    with pytest.raises(BundleError, match=r"steering/encoder\.onnx: metadata tt-deploy\.control_dt differ.*"
                                          "re-export every skill"):  # fmt: skip
        export_skill("direction", bundle_dir=bad)
    assert mf.read_manifest(bad) == before


def _strip_contract(bundle) -> None:
    """Make every graph of a bundle copy look exported before the contract was stamped (identity keys only)."""
    for g in mf.read_manifest(bundle).graphs:
        restamp_graph(bundle, g.path, lambda m: {k: v for k, v in m.items() if k not in gc.CONTRACT_KEYS
                                                 or k == gc.SKILL_KEY})  # fmt: skip


def test_graphs_without_the_contract_load_verify_with_a_note_and_are_carried_over(bundle, tmp_path, caplog):
    old = _copy(bundle, tmp_path)
    _strip_contract(old)
    with SkillRuntime(old, backend="ort-cpu", skills=["steering"]) as rt:  # the load check: identity keys
        assert rt.active == "steering"
    report = verify_recorded(old, ["steering"])  # runs every runtime variant on them
    assert report.passed and len(report.notes) == 1 and "carry no contract metadata" in report.notes[0]
    assert "re-export" in report.notes[0] and report.to_dict()["notes"] == report.notes
    res = runner.invoke(app, ["verify", "--bundle", str(old), "--skill", "steering", "--reference", "recorded"],
                        terminal_width=200)  # fmt: skip
    assert res.exit_code == 0 and "note" in res.output and "carry no contract metadata" in res.output, res.output
    export_skill("direction", bundle_dir=old)  # kept with a warning, the new skill stamped
    assert "carry no contract metadata" in caplog.text
    assert gc.carries_contract(_meta(old, "skills/direction/fused.onnx"))
    assert not gc.carries_contract(_meta(old, "skills/reach/fused.onnx"))
    assert verify_recorded(old, ["direction"]).notes  # the shared BFM graphs are still the old ones


def test_docs_name_every_contract_key():
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "bundle.md").read_text()
    section = text.split("## Graph metadata", 1)[1].split("\n## ", 1)[0]
    assert [k for k in gc.CONTRACT_KEYS if f"| `{k}` |" not in section] == []
