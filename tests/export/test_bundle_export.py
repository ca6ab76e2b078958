"""export_skill: manifest contents and hashes, atomic writes, adding skills, refusals."""

from __future__ import annotations

import json
import shutil

import onnxruntime as ort
import pytest
from bundle_helpers import make_run
from typer.testing import CliRunner

from tt_deploy.errors import BundleError, UnknownNameError
from tt_deploy.export import bundle as bundle_mod
from tt_deploy.export.bundle import export_skill
from tt_deploy.models.checkpoints import sha256_file
from tt_deploy.runtime import manifest as mf
from tt_deploy.spec import BODY_NAMES, CONTROL_DT, JOINT_NAMES


@pytest.fixture(scope="module")
def base_bundle(small_bfm_file, tmp_path_factory):
    """A bundle with one fresh (untrained) `reach` skill; copy it before modifying."""
    _, bfm_path = small_bfm_file
    return export_skill("reach", bfm_path=bfm_path, bundle_dir=tmp_path_factory.mktemp("b") / "deploy")


def _hashes(root):
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in root.rglob("*") if p.is_file()}


def test_manifest_describes_every_file(base_bundle, small_bfm_file):
    bfm, bfm_path = small_bfm_file
    man = mf.read_manifest(base_bundle)
    assert man.schema == "tt-deploy.bundle/1" and man.skills == ("reach",)
    assert man.bfm.sha256 == sha256_file(bfm_path) and man.bfm.sha256_of == "file"
    assert man.bfm.config_name == "small" and man.token_dim == bfm.token_dim
    assert man.joint_names == JOINT_NAMES and man.body_names == BODY_NAMES and man.control_dt == CONTROL_DT
    assert [g.name for g in man.token_groups][:2] == ["obs", "historical_pose_obs"]
    assert man.token_groups[1].mask_semantics == "bool, True = visible"
    assert man.pd_scale is None or len(man.pd_scale) == 69
    assert {g.path for g in man.graphs} == {
        "bfm.onnx", "bfm.batch.onnx", "skills/reach/encoder.onnx", "skills/reach/encoder.batch.onnx",
        "skills/reach/fused.onnx", "skills/reach/fused.batch.onnx",
        "bfm.obs+historical_pose_obs+terrain.onnx", "bfm.obs+historical_pose_obs+terrain.batch.onnx",
    }  # fmt: skip
    specialised = man.specialised_bfm(("obs", "historical_pose_obs", "terrain"))
    assert specialised.role == "bfm-specialised" and specialised.skill is None
    assert [t.name for t in specialised.inputs][-1] == "task_token"
    assert man.content == "v1" and mf.content_dir(base_bundle) == base_bundle / "v1"
    for g in man.graphs:
        assert sha256_file(base_bundle / "v1" / g.path) == g.sha256
        sess = ort.InferenceSession(str(base_bundle / "v1" / g.path), providers=["CPUExecutionProvider"])
        assert [(i.name, tuple(i.shape)) for i in sess.get_inputs()] == [(t.name, t.shape) for t in g.inputs]
        assert g.export_parity_max_abs <= 1e-5
    skill = mf.read_skill(base_bundle, "reach")
    assert (
        skill.encoder_source.startswith("fresh seeded init (untrained) seed 0") and not skill.encoder_trained
    )
    assert skill.graphs == {g.path: g.sha256 for g in man.graphs if g.skill == "reach"}
    assert skill.task_obs_dim == 3 and skill.parity is None and skill.sim2sim is None


def test_manifest_json_round_trip_and_results_slot(base_bundle, tmp_path):
    bundle = shutil.copytree(base_bundle, tmp_path / "d")
    man = mf.read_manifest(bundle)
    assert mf.from_dict(mf.BundleManifest, json.loads(json.dumps(mf.to_dict(man)))) == man
    before = mf.read_manifest(bundle)
    from tt_deploy.runtime.verdicts import measured_evidence

    ev = measured_evidence(bundle, "reach")
    with pytest.raises(BundleError, match="names no evidence"):  # a verdict must say what it measured
        bundle_mod.record_skill_results(bundle, "reach", measured=ev, parity={"max_abs": 1e-7})
    assert mf.read_manifest(bundle) == before and sorted(p.name for p in bundle.iterdir() if p.is_dir()) == ["v1"]
    bundle_mod.record_skill_results(bundle, "reach", measured=ev, parity={"max_abs": 1e-7, "evidence": ev})
    after = mf.read_manifest(bundle)
    assert mf.read_skill(bundle, "reach").parity == {"max_abs": 1e-7, "evidence": ev}
    # a new version with the new skill.json hashed; the graphs are the same files (hard links)
    assert after.content == "v2" and after.skill_sha256["reach"] != before.skill_sha256["reach"]
    assert after.graphs == before.graphs
    g = after.graphs[0].path
    assert (bundle / "v1" / g).stat().st_ino == (bundle / "v2" / g).stat().st_ino


def test_failed_export_leaves_old_bundle_intact(base_bundle, small_bfm_file, tmp_path, monkeypatch):
    bundle = shutil.copytree(base_bundle, tmp_path / "deploy")
    before = _hashes(bundle)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(bundle_mod, "_write_skill_files", boom)
    with pytest.raises(RuntimeError, match="simulated"):
        export_skill("strike", bfm_path=small_bfm_file[1], bundle_dir=bundle)
    assert _hashes(bundle) == before
    # no temp dir left behind; the export lock file stays (removing it would race the next export)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".deploy.lock", "deploy"]


def test_second_skill_keeps_first_and_bfm_mismatch_refused(base_bundle, small_bfm_file, tmp_path):
    bundle = shutil.copytree(base_bundle, tmp_path / "deploy")
    before = _hashes(mf.content_dir(bundle))
    export_skill("strike", bfm_path=small_bfm_file[1], bundle_dir=bundle, seed=3)
    after = _hashes(mf.content_dir(bundle))
    assert mf.read_manifest(bundle).skills == ("reach", "strike") and mf.read_manifest(bundle).content == "v2"
    assert sorted(p.name for p in bundle.iterdir()) == ["manifest.json", "v1", "v2"]  # v1 kept for one export
    assert {k: v for k, v in after.items() if k.startswith(("skills/reach", "bfm"))} == {
        k: v for k, v in before.items() if k.startswith(("skills/reach", "bfm"))
    }
    assert mf.read_skill(bundle, "strike").task_obs_dim == 15
    with pytest.raises(BundleError, match="export to a new --bundle dir or re-export all skills"):
        export_skill("direction", bundle_dir=bundle)  # embedded default BFM != the test BFM


def test_one_specialised_bfm_per_visible_group_set(base_bundle, small_bfm_file, tmp_path):
    """Re-exporting reach trained with its prior prompt changes its visible groups: the new set gets its shared
    BFM graphs, the set no skill uses any more is removed from the bundle and the manifest."""
    bfm, bfm_path = small_bfm_file
    bundle = shutil.copytree(base_bundle, tmp_path / "deploy")
    run, _ = make_run(tmp_path / "run", bfm_path, "reach", 3, bfm.token_dim, 1,
                      visible_groups=("obs", "historical_pose_obs", "masked_mimic_target_poses", "terrain"))
    export_skill("reach", bfm_path=bfm_path, run_dir=run, bundle_dir=bundle)
    visible = mf.read_skill(bundle, "reach").visible_groups
    assert "masked_mimic_target_poses" in visible
    man = mf.read_manifest(bundle)
    want = {mf.specialised_bfm_file(visible, dyn) for dyn in (False, True)}
    assert {g.path for g in man.graphs if g.role == "bfm-specialised"} == want
    have = sorted(p.name for p in mf.content_dir(bundle).glob("bfm.*onnx"))
    assert have == sorted(["bfm.onnx", "bfm.batch.onnx", *want])


def test_trained_run_must_match_bfm_and_unknown_skill(small_bfm_file, tmp_path):
    bfm, bfm_path = small_bfm_file
    run, _ = make_run(tmp_path / "run", bfm_path, "reach", 3, bfm.token_dim, 1)
    with pytest.raises(BundleError, match="pass the training BFM with --bfm"):
        export_skill("reach", run_dir=run, bundle_dir=tmp_path / "d")
    with pytest.raises(UnknownNameError, match="known: .*reach"):
        export_skill("juggling", bfm_path=bfm_path, bundle_dir=tmp_path / "d")
    assert not (tmp_path / "d").exists()  # (trained-run provenance is checked in test_onnx_export)


def test_cli_export_prints_files(base_bundle, small_bfm_file, tmp_path):
    from tt_deploy.cli import _register, app

    _register()
    bundle = shutil.copytree(base_bundle, tmp_path / "d")  # re-export into it: bfm graphs are reused
    verb = ["export"] if len(app.registered_commands) > 1 else []  # typer collapses a 1-command app
    args = [
        *verb,
        "--skill",
        "reach",
        "--seed",
        "4",
        "--bfm",
        str(small_bfm_file[1]),
        "--bundle",
        str(bundle),
    ]
    res = CliRunner().invoke(app, args, terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "v2/skills/reach/fused.onnx" in res.output and "manifest.json" in res.output
    assert "v1/" not in res.output  # the listing shows the current version only


def test_concurrent_exports_into_one_bundle_keep_both_skills(tmp_path):
    """Two `ttdeploy export` processes at once: the bundle lock serialises the read-modify-swap, so the
    second export carries the first one's skill over instead of dropping it."""
    import subprocess
    import sys

    bundle = tmp_path / "deploy"
    procs = [subprocess.Popen([sys.executable, "-m", "tt_deploy.cli", "export", "--skill", skill, "--bundle",
                               str(bundle)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for skill in ("reach", "direction")]  # fmt: skip
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0, out
    assert set(mf.read_manifest(bundle).skills) == {"reach", "direction"}


def test_a_fresh_bfm_of_a_named_size_is_marked_untrained_and_rebuilt_by_verify(small_bfm_file, tmp_path):
    from tt_deploy.errors import InputError
    from tt_deploy.export.reference import reference_bfm
    from tt_deploy.models.checkpoints import state_hash

    bundle = export_skill("reach", bundle_dir=tmp_path / "d", bfm_config="small", seed=3)
    man = mf.read_manifest(bundle)
    assert man.bfm.source == "fresh seeded init (untrained) seed 3" and man.bfm.id == "embedded-small"
    assert state_hash(reference_bfm(man)) == man.bfm.sha256  # verify's reference is that same BFM
    with pytest.raises(InputError, match="cannot go with --bfm"):
        export_skill("reach", bundle_dir=tmp_path / "e", bfm_config="small", bfm_path=small_bfm_file[1])


def test_a_deleted_skill_hash_entry_is_refused_not_skipped(base_bundle, tmp_path):
    bundle = shutil.copytree(base_bundle, tmp_path / "deploy")
    data = json.loads((bundle / mf.MANIFEST_FILE).read_text())
    name = sorted(data["skill_sha256"])[0]
    mf.read_skill(bundle, name)  # hashed and fine
    del data["skill_sha256"][name]
    (bundle / mf.MANIFEST_FILE).write_text(json.dumps(data))
    with pytest.raises(BundleError, match=f"no entry for skill '{name}'"):
        mf.read_skill(bundle, name)


def test_no_bundle_file_names_the_exporting_machines_paths(shipped_bundle, tmp_path, monkeypatch):
    """Bundles travel: manifest.json and every skill.json name package files as `tt_deploy/...`, never the
    exporting checkout, the bundle's own (tmp) directory, /root or the home directory (issue #36: bfm.source was
    `checkpoint /abs/checkout/...`). The demo's export passes the shipped run dirs as absolute paths; verify
    --record's verdicts are scanned too, and the reference still rebuilds from another working directory."""
    from pathlib import Path

    import tt_deploy
    from tt_deploy.export.verify import VerifyCases, verify_bundle

    bundle = tmp_path / "deploy"
    shutil.copytree(shipped_bundle, bundle)
    monkeypatch.chdir(tmp_path)  # not the checkout: `tt_deploy/...` must resolve to the installed package
    assert verify_bundle(bundle, ["strike"], cases=VerifyCases(random=2, rollout_steps=0), record=True).passed
    forbidden = {str(Path(tt_deploy.__file__).resolve().parents[1]), str(Path.cwd()), str(tmp_path),
                 str(shipped_bundle.parent), "/root", str(Path.home())} - {"/", ""}
    files = [bundle / mf.MANIFEST_FILE, *sorted(mf.content_dir(bundle).rglob(mf.SKILL_FILE))]
    assert len(files) == 5
    leaks = {f"{p.relative_to(bundle)}: {f}" for p in files for f in forbidden if f in p.read_text()}
    assert not leaks
    man = mf.read_manifest(bundle)
    assert man.bfm.source == "checkpoint tt_deploy/models/weights/bfm_small.safetensors"
    assert mf.read_skill(bundle, "strike").encoder_source.startswith("trained run tt_deploy/skills/strike steps ")
