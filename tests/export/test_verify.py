"""verify_bundle: passes on an honest bundle, FAILS on a swapped encoder with consistent hashes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from bundle_helpers import rehash_skill
from typer.testing import CliRunner

from tt_deploy import spec
from tt_deploy.cli import _register, app
from tt_deploy.errors import BundleError, InputError
from tt_deploy.export.bundle import export_skill
from tt_deploy.export.verify import ATOL, VerifyCases, compare, random_inputs, verify_bundle
from tt_deploy.models.checkpoints import EncoderInfo, save_encoder, sha256_file
from tt_deploy.models.config import EncoderConfig
from tt_deploy.models.task_encoder import TaskEncoder
from tt_deploy.runtime import manifest as mf
from tt_deploy.runtime.parity import verify_recorded

TINY = VerifyCases(random=8, edge=2, rollout_envs=2, rollout_steps=4, batch1_max=6)
runner = CliRunner()
_register()


@pytest.fixture(scope="module")
def bundle(small_bfm_file, tmp_path_factory):
    """`reach` = seeded fresh encoder, `steering` = trained-run checkpoint; BFM from a checkpoint file."""
    bfm, path = small_bfm_file
    root = tmp_path_factory.mktemp("verify")
    export_skill("reach", bfm_path=path, bundle_dir=root / "deploy")
    torch.manual_seed(7)
    enc = TaskEncoder(EncoderConfig(obs_dim=5, token_dim=bfm.token_dim))
    info = EncoderInfo(bfm_sha256=sha256_file(path), skill="steering", env_steps=10)
    save_encoder(enc, root / "run" / "checkpoints" / "best.safetensors", info=info)
    export_skill("steering", bfm_path=path, run_dir=root / "run", bundle_dir=root / "deploy")
    return root / "deploy"


def test_random_inputs_shapes_dtypes_and_mask_probability():
    x = random_inputs(4000, np.random.default_rng(0), visible_p=0.25)
    for g in spec.TOKEN_GROUPS:
        assert x[g.name].dtype == np.float32
        assert x[g.name].shape == ((4000, g.feat_dim) if g.n_tokens == 1 else (4000, g.n_tokens, g.feat_dim))
        if g.mask_name:
            assert x[g.mask_name].dtype == bool and x[g.mask_name].shape == (4000, g.n_tokens)
    assert abs(x["historical_pose_obs_mask"].mean() - 0.25) < 0.01


def test_compare_is_max_abs_and_max_rel():
    abs_err, rel_err = compare(np.array([1.0, 0.5], np.float32), np.array([1.0, 0.25], np.float32))
    assert abs_err == pytest.approx(0.25) and rel_err == pytest.approx(1.0)


def _tree(root) -> dict:
    """Every file under root: (bytes, mtime) - what a read-only verify must leave as it was."""
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))
            if p.is_file()}  # fmt: skip


def test_honest_bundle_passes_every_mode_graph_and_case(bundle):
    before = _tree(bundle)
    assert verify_bundle(bundle, ["reach"], cases=TINY).passed
    assert _tree(bundle) == before  # read-only by default: not a byte, not a timestamp
    report = verify_bundle(bundle, cases=TINY, record=True)
    assert report.passed, [r for r in report.rows if not r.passed]
    graphs = {(r.skill, r.mode, r.graphs) for r in report.rows}
    assert len(graphs) == 12  # 2 skills x (fused, fused + shared BFM, split) x (static, dynamic)
    assert ("steering", "fused", "skills/steering/encoder.onnx + bfm.obs+historical_pose_obs+terrain.onnx") in graphs
    cases = {r.case for r in report.rows}
    assert {"random", "all-visible", "all-hidden", "extreme", "recorded"} <= cases
    assert {f"hidden:{g.name}" for g in spec.TOKEN_GROUPS if g.mask_name} <= cases
    assert max(r.max_abs for r in report.rows) <= ATOL
    assert {r.n for r in report.rows if r.case == "recorded" and "batch" in r.graphs} == {8}  # 2 envs x 4
    parity = mf.read_skill(bundle, "steering").parity
    assert parity["passed"] is True and parity["atol"] == ATOL and len(parity["graphs"]) == 6
    ev = parity["evidence"]  # bound to what it measured
    assert ev["graphs"] == mf.read_skill(bundle, "steering").graphs and ev["bundle_version"] == before_version(before)
    assert mf.read_manifest(bundle).content == f"v{int(ev['bundle_version'][1:]) + 1}"  # both skills, one version


def before_version(tree: dict) -> str:
    return json.loads(tree[mf.MANIFEST_FILE][0])["content"]


def test_swapped_encoder_with_consistent_hashes_fails(bundle, small_bfm_file, tmp_path):
    """Adversarial: reach's graphs replaced by a seed-1 export, every hash fixed up: the runtime
    accepts it, but the rebuilt seed-0 reference disagrees, so verify must fail (exit 1)."""
    bad = tmp_path / "bad"
    shutil.copytree(bundle, bad)
    other = export_skill("reach", bfm_path=small_bfm_file[1], bundle_dir=tmp_path / "other", seed=1)
    rel = mf.skill_dir("reach")
    src, dst = mf.content_dir(other), mf.content_dir(bad)
    for f in ("encoder.onnx", "encoder.batch.onnx", "fused.onnx", "fused.batch.onnx"):
        shutil.copy2(src / rel / f, dst / rel / f)
    data = json.loads((bad / mf.MANIFEST_FILE).read_text())
    for g in data["graphs"]:
        g["sha256"] = sha256_file(dst / g["path"])
    (bad / mf.MANIFEST_FILE).write_text(json.dumps(data))
    sk = json.loads((dst / rel / mf.SKILL_FILE).read_text())
    sk["graphs"] = {p: sha256_file(dst / p) for p in sk["graphs"]}
    (dst / rel / mf.SKILL_FILE).write_text(json.dumps(sk))
    rehash_skill(bad, "reach")
    before = _tree(bad)
    report = verify_bundle(bad, ["reach"], cases=TINY, record=True)
    assert not any(r.passed for r in report.rows) and max(r.max_abs for r in report.rows) > 1e-3
    recorded = verify_recorded(bad, ["reach"])  # the torch-free check: the recorded actions are seed 0's too
    assert not any(r.passed for r in recorded.rows) and recorded.reference == "recorded"
    assert _tree(bad) == before  # --record writes only when every skill passed
    result = runner.invoke(app, ["verify", "--bundle", str(bad), "--skill", "reach", "--random", "4",
                                 "--rollout-steps", "0"])  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output


def test_the_recorded_reference_checks_every_runtime_variant_without_torch(bundle, tmp_path):
    """What `verify --reference recorded` compares: the same runtime variants as the torch check, against the
    actions the exporter recorded; a reference that does not match skill.json's hash is refused."""
    torch_rows = verify_bundle(bundle, ["steering"], cases=TINY).rows
    rows = verify_recorded(bundle, ["steering"]).rows
    assert rows and all(r.passed and r.max_abs <= ATOL for r in rows)
    assert {(r.mode, r.graphs) for r in rows} == {(r.mode, r.graphs) for r in torch_rows}
    assert {r.case for r in rows} == {r.case for r in torch_rows} - {"recorded"}
    bad = tmp_path / "bad"
    shutil.copytree(bundle, bad)
    ref = mf.content_dir(bad) / mf.skill_dir("steering") / "reference.safetensors"
    ref.write_bytes(ref.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(BundleError, match="does not match skill.json's reference_sha256"):
        verify_recorded(bad, ["steering"])
    sk = json.loads((mf.content_dir(bad) / mf.skill_dir("steering") / mf.SKILL_FILE).read_text())
    sk["reference_sha256"] = None  # a bundle exported before references were recorded
    (mf.content_dir(bad) / mf.skill_dir("steering") / mf.SKILL_FILE).write_text(json.dumps(sk))
    rehash_skill(bad, "steering")
    result = runner.invoke(app, ["verify", "--bundle", str(bad), "--skill", "steering", "--reference", "recorded"])
    assert result.exit_code != 0 and "has no recorded reference" in str(result.exception) + result.output
    result = runner.invoke(app, ["verify", "--bundle", str(bundle), "--reference", "recorded", "--record"])
    assert result.exit_code != 0 and "--record needs the torch reference" in str(result.exception) + result.output


def test_verify_record_with_one_damaged_skill_changes_nothing(bundle, tmp_path):
    """Adversarial (issue #38 N4): steering's skill.json edited; --record must fail typed (exit 2) before
    writing, keep every version, and not carry the damaged file into a new one."""
    bad = tmp_path / "bad"
    shutil.copytree(bundle, bad)
    sk = mf.content_dir(bad) / mf.skill_dir("steering") / mf.SKILL_FILE
    sk.write_text(sk.read_text().replace('"task_obs_dim": 5', '"task_obs_dim": 6'))
    before = _tree(bad)
    result = runner.invoke(app, ["verify", "--bundle", str(bad), "--record", "--random", "4", "--rollout-steps", "0"])
    assert isinstance(result.exception, BundleError) and "edited" in str(result.exception)  # main(): one line, exit 2
    assert _tree(bad) == before


def _read_only_copy(bundle, bfm_file, where):
    """The bundle and its BFM checkpoint under `where`, every mode without write bits."""
    ro = where / "ro"
    shutil.copytree(bundle, ro)
    shutil.copy2(bfm_file, where / "bfm.safetensors")
    data = json.loads((ro / mf.MANIFEST_FILE).read_text())
    data["bfm"]["source"] = f"checkpoint {where / 'bfm.safetensors'}"
    (ro / mf.MANIFEST_FILE).write_text(json.dumps(data))
    for p in [where, *where.rglob("*")]:
        p.chmod((p.stat().st_mode | 0o555) & ~0o222 if p.is_dir() else 0o444)
    return ro


def _writable_again(where):
    for p in [where, *where.rglob("*")]:
        p.chmod(p.stat().st_mode | 0o200)


VERIFY_READ_ONLY = """
import sys
from tt_deploy.export.verify import VerifyCases, verify_bundle
cases = VerifyCases(random=8, edge=2, rollout_envs=2, rollout_steps=4, batch1_max=6)
print("passed" if verify_bundle(sys.argv[1], ["reach"], cases=cases).passed else "failed")
"""


def _read_only_runner(where):
    """How to run a command that sees `where` read-only: as a normal user its modes do it; root writes
    through modes, so as root the command runs in its own mount namespace with `where` bind-mounted
    read-only (a real read-only filesystem, EROFS), or the test skips when this machine cannot."""
    if os.geteuid() != 0:
        return lambda argv: argv
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            f'mount --bind -o ro "{where}" "{where}" && ! touch "{where}/probe" 2>/dev/null'],
                           capture_output=True)  # fmt: skip
    if probe.returncode != 0:
        pytest.skip("as root only a read-only mount stops writes, and this machine cannot make one "
                    f"(unshare -m + mount --bind -o ro: {probe.stderr.decode().strip()[:120]})")
    return lambda argv: ["unshare", "-m", "--propagation", "private", "sh", "-c",
                         f'mount --bind -o ro "{where}" "{where}" && exec "$@"', "sh", *argv]  # fmt: skip


def test_verify_runs_on_a_read_only_bundle(bundle, small_bfm_file, tmp_path):
    """Adversarial (issue #38 N4): verify on read-only media checks and writes nothing; --record says
    in one line (exit 2) why it cannot."""
    where = tmp_path / "media"
    where.mkdir()
    ro = _read_only_copy(bundle, small_bfm_file[1], where)
    before = _tree(ro)
    wrap = _read_only_runner(where)
    try:
        run = subprocess.run(wrap([sys.executable, "-c", VERIFY_READ_ONLY, str(ro)]), capture_output=True,
                             text=True, timeout=300)  # fmt: skip
        assert run.returncode == 0 and run.stdout.strip() == "passed", run.stderr[-2000:]
        cli = [sys.executable, "-m", "tt_deploy.cli", "verify", "--bundle", str(ro), "--skill", "reach",
               "--random", "4", "--rollout-steps", "0", "--record"]  # fmt: skip
        rec = subprocess.run(wrap(cli), capture_output=True, text=True, timeout=300)
        assert rec.returncode == 2 and "Traceback" not in rec.stderr, rec.stderr[-2000:]
        why = "read-only" if os.geteuid() == 0 else "permission denied"  # a read-only mount / file modes
        assert len(rec.stderr.strip().splitlines()) == 1 and why in rec.stderr.lower(), rec.stderr
        assert _tree(ro) == before
    finally:
        _writable_again(where)


def test_missing_bfm_checkpoint_means_no_reference(bundle, tmp_path):
    moved = tmp_path / "deploy"
    shutil.copytree(bundle, moved)
    data = json.loads((moved / mf.MANIFEST_FILE).read_text())
    data["bfm"]["source"] = "checkpoint /nonexistent/bfm.safetensors"
    (moved / mf.MANIFEST_FILE).write_text(json.dumps(data))
    with pytest.raises(BundleError, match="cannot rebuild the reference.*is gone"):
        verify_bundle(moved, cases=TINY)


def test_unknown_skill_and_bad_atol(bundle):
    with pytest.raises(InputError, match=r"\['jump'\] are not in bundle"):
        verify_bundle(bundle, ["jump"], cases=TINY)
    with pytest.raises(InputError, match="atol must be > 0"):
        verify_bundle(bundle, cases=TINY, atol=0)


def test_cli_verify_and_export_smoke(bundle, tmp_path):
    out = tmp_path / "v.json"
    args = ["verify", "--bundle", str(bundle), "--skill", "reach", "--random", "4", "--rollout-steps", "2",
            "--json", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "parity ok" in result.output and json.loads(out.read_text())["passed"] is True
    result = runner.invoke(app, ["export", "--skill", "direction", "--bundle", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert mf.read_manifest(tmp_path / "b").skills == ("direction",)
