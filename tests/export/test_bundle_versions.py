"""Bundle versions: a reader never sees a missing or mixed bundle, a failure or kill at any step leaves
the old or the new bundle complete, and the next export removes what was left behind."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from tt_deploy.errors import BundleError
from tt_deploy.export import bundle as bundle_mod
from tt_deploy.export.bundle import export_skill
from tt_deploy.models.checkpoints import sha256_file
from tt_deploy.runtime import SkillRuntime
from tt_deploy.runtime import manifest as mf


@pytest.fixture(scope="module")
def base_bundle(small_bfm_file, tmp_path_factory):
    """A bundle with one fresh `reach` skill (version v1); copy it before modifying."""
    return export_skill("reach", bfm_path=small_bfm_file[1], bundle_dir=tmp_path_factory.mktemp("v") / "deploy")


def _tree(root):
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in root.rglob("*") if p.is_file()}


def _complete(bundle) -> tuple[str, ...]:
    """The skills of the bundle after checking that every file its manifest names is there, unmodified."""
    man = mf.read_manifest(bundle)
    root = mf.content_dir(bundle, man)
    for g in man.graphs:
        assert sha256_file(root / g.path) == g.sha256, g.path
    for s in man.skills:
        assert mf.read_skill(bundle, s, man).graphs == {g.path: g.sha256 for g in man.graphs if g.skill == s}
    return man.skills


@pytest.mark.parametrize(
    "step", ["_carry_over", "_write_skill_files", "_specialised_graphs", "_bundle_manifest"]
)
def test_failure_at_each_step_leaves_the_old_bundle(base_bundle, small_bfm_file, tmp_path, monkeypatch, step):
    bundle = shutil.copytree(base_bundle, tmp_path / "deploy")
    before = _tree(bundle)

    def boom(*args, **kwargs):
        raise RuntimeError(f"failure in {step} (simulated)")

    monkeypatch.setattr(bundle_mod, step, boom)
    with pytest.raises(RuntimeError, match="simulated"):
        export_skill("strike", bfm_path=small_bfm_file[1], bundle_dir=bundle)
    assert _tree(bundle) == before  # the half-built v2 is gone, v1 untouched
    # nothing left beside it; the lock file stays (removing it would race the next export)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".deploy.lock", "deploy"]


def test_reader_never_sees_a_missing_or_mixed_bundle(base_bundle, small_bfm_file, tmp_path):
    """A poller reads manifest -> version -> every graph and skill.json, as the runtime does, during two
    exports: every read is complete (the old design's two-rename swap showed no manifest 3 times in 4)."""
    bundle = shutil.copytree(base_bundle, tmp_path / "deploy")
    seen, errors, stop = [], [], threading.Event()

    def poll():
        while not stop.is_set():
            try:
                seen.append(_complete(bundle))
            except Exception as exc:  # noqa: BLE001 - every failure is the finding
                errors.append(repr(exc))

    t = threading.Thread(target=poll)
    t.start()
    try:
        export_skill("strike", bfm_path=small_bfm_file[1], bundle_dir=bundle)
        export_skill("reach", bfm_path=small_bfm_file[1], bundle_dir=bundle, seed=5)
    finally:
        stop.set()
        t.join()
    assert errors == []
    assert ("reach",) in seen and ("reach", "strike") in seen and len(seen) > 20
    assert mf.read_manifest(bundle).content == "v3"
    assert sorted(p.name for p in bundle.iterdir()) == ["manifest.json", "v2", "v3"]  # v1 retired


def test_killed_export_leaves_the_old_bundle_and_the_next_export_cleans_up(base_bundle, small_bfm_file, tmp_path):
    """SIGKILL while the next version is being written: the old bundle loads, and the next export
    removes the half-written version and the leftovers older tt-deploy versions left beside it."""
    bundle = shutil.copytree(base_bundle, tmp_path / "deploy")
    cmd = [sys.executable, "-m", "tt_deploy.cli", "export", "--skill", "strike", "--bfm", str(small_bfm_file[1]),
           "--bundle", str(bundle)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (bundle / "v2").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (bundle / "v2").exists(), "the export finished before it could be killed"
    assert _complete(bundle) == ("reach",) and mf.read_manifest(bundle).content == "v1"
    with SkillRuntime(bundle, backend="ort-cpu") as rt:
        assert rt.active == "reach"
    (tmp_path / ".deploy.tmp-123").mkdir()  # the old two-rename swap's leftovers
    (tmp_path / ".deploy.old-456").mkdir()
    export_skill("strike", bfm_path=small_bfm_file[1], bundle_dir=bundle)
    assert _complete(bundle) == ("reach", "strike") and mf.read_manifest(bundle).content == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".deploy.lock", "deploy"]


def test_terminated_export_removes_the_version_it_was_writing(base_bundle, small_bfm_file, tmp_path):
    """Adversarial (issue #38 N9): SIGTERM mid-export unwinds: no unnamed version dir stays behind, exit 143
    with a one-line message."""
    bundle = shutil.copytree(base_bundle, tmp_path / "deploy")
    cmd = [sys.executable, "-m", "tt_deploy.cli", "export", "--skill", "strike", "--bfm", str(small_bfm_file[1]),
           "--bundle", str(bundle)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (bundle / "v2").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "terminated (SIGTERM)" in err and "Traceback" not in err, err
    assert sorted(p.name for p in bundle.iterdir()) == ["manifest.json", "v1"]
    assert _complete(bundle) == ("reach",)


def test_leftover_versions_are_removed_and_the_previous_one_kept(base_bundle, small_bfm_file, tmp_path):
    bundle = shutil.copytree(base_bundle, tmp_path / "deploy")
    (bundle / "v7").mkdir()  # e.g. a version written by an export killed after a later failure
    (bundle / "v7" / "junk.onnx").write_bytes(b"x")
    export_skill("strike", bfm_path=small_bfm_file[1], bundle_dir=bundle)
    assert sorted(p.name for p in bundle.iterdir()) == ["manifest.json", "v1", "v2"]


def test_pre_version_bundle_is_read_and_migrated(base_bundle, small_bfm_file, tmp_path):
    """A bundle exported before versions (files at the root, no `content`) still loads; the first export
    writes v1 beside it, the second retires the root-level files."""
    bundle = tmp_path / "deploy"
    shutil.copytree(base_bundle / "v1", bundle)
    data = json.loads((base_bundle / "manifest.json").read_text())
    del data["content"]
    (bundle / "manifest.json").write_text(json.dumps(data))
    assert mf.read_manifest(bundle).content == "" and _complete(bundle) == ("reach",)
    with SkillRuntime(bundle, backend="ort-cpu") as rt:
        assert rt.skills["reach"].task_obs_dim == 3
    export_skill("strike", bfm_path=small_bfm_file[1], bundle_dir=bundle)
    assert _complete(bundle) == ("reach", "strike") and mf.read_manifest(bundle).content == "v1"
    assert (bundle / "skills" / "reach" / "skill.json").is_file()  # the previous version, kept for one export
    export_skill("strike", bfm_path=small_bfm_file[1], bundle_dir=bundle, seed=2)
    assert sorted(p.name for p in bundle.iterdir()) == ["manifest.json", "v1", "v2"]


def test_bundle_lost_between_the_old_two_renames_is_recovered(base_bundle, small_bfm_file, tmp_path):
    """tt-deploy before versions swapped with two renames; killed between them it left the bundle only at
    `.deploy.old-PID`, and the next export silently built a bundle of its own skill alone."""
    shutil.copytree(base_bundle, tmp_path / ".deploy.old-4242")
    (tmp_path / ".deploy.tmp-4242").mkdir()  # the swap's new content, never renamed in
    bundle = tmp_path / "deploy"
    export_skill("strike", bfm_path=small_bfm_file[1], bundle_dir=bundle)
    assert _complete(bundle) == ("reach", "strike")
    events = [(h.event, h.version, h.skills) for h in mf.read_manifest(bundle).history]
    assert events == [("new", "", ()), ("export", "v1", ("reach",)), ("recovered", "v1", ()),
                      ("export", "v2", ("strike",))]
    assert ".deploy.old-4242" in mf.read_manifest(bundle).history[2].note


def test_a_deleted_bundle_is_not_revived_from_a_stale_old_dir(base_bundle, small_bfm_file, tmp_path):
    """Adversarial (issue #38 N5): after `rm -rf deploy`, a finished swap's `.deploy.old-PID` (no tmp dir
    beside it) must not bring the deleted skills back."""
    shutil.copytree(base_bundle, tmp_path / ".deploy.old-4242")
    bundle = tmp_path / "deploy"
    export_skill("strike", bfm_path=small_bfm_file[1], bundle_dir=bundle)
    assert _complete(bundle) == ("strike",)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".deploy.lock", "deploy"]
    first = mf.read_manifest(bundle).history[0]  # the history says it started again, and what it left alone
    assert (first.event, first.version) == ("new", "") and "not restored: .deploy.old-4242" in first.note
    assert [h.event for h in mf.read_manifest(bundle).history] == ["new", "export"]


def test_history_names_every_export_and_record(base_bundle, small_bfm_file, tmp_path):
    """manifest.json's history: one entry per change, oldest first, each naming its version and skills."""
    bundle = tmp_path / "deploy"
    shutil.copytree(base_bundle, bundle)
    export_skill("strike", bfm_path=small_bfm_file[1], bundle_dir=bundle, seed=2)
    man = mf.read_manifest(bundle)
    bundle_mod.record_results(bundle, {"strike": {}}, measured={"bundle_version": man.content})
    history = mf.read_manifest(bundle).history
    assert [(h.event, h.version, h.skills) for h in history] == [
        ("new", "", ()), ("export", "v1", ("reach",)), ("export", "v2", ("strike",)), ("record", "v3", ("strike",))]
    assert all(h.tt_deploy and h.time.endswith("+00:00") for h in history)
    assert history == mf.from_dict(mf.BundleManifest, json.loads((bundle / "manifest.json").read_text())).history


def test_history_keeps_the_newest_entries(monkeypatch, base_bundle, small_bfm_file, tmp_path):
    monkeypatch.setattr(mf, "HISTORY_LIMIT", 3)
    bundle = tmp_path / "deploy"
    shutil.copytree(base_bundle, bundle)
    for seed in (1, 2):
        export_skill("strike", bfm_path=small_bfm_file[1], bundle_dir=bundle, seed=seed)
    assert [h.version for h in mf.read_manifest(bundle).history] == ["v1", "v2", "v3"]


def test_bundle_path_that_is_a_file_is_refused(small_bfm_file, tmp_path):
    (tmp_path / "deploy").write_text("not a bundle")
    with pytest.raises(BundleError, match="is a file, not a directory"):
        export_skill("reach", bfm_path=small_bfm_file[1], bundle_dir=tmp_path / "deploy")
    assert (tmp_path / "deploy").read_text() == "not a bundle"


def test_content_outside_the_bundle_is_refused(base_bundle, tmp_path):
    bundle = shutil.copytree(base_bundle, tmp_path / "deploy")
    data = json.loads((bundle / "manifest.json").read_text())
    data["content"] = "../elsewhere"
    (bundle / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="not a version dir name"):
        SkillRuntime(bundle, backend="ort-cpu")


def test_several_skills_in_one_export_make_one_version(small_bfm_file, tmp_path):
    from tt_deploy.export.bundle import export_skills

    bundle = export_skills(["reach", "strike"], bfm_path=small_bfm_file[1], bundle_dir=tmp_path / "deploy")
    assert _complete(bundle) == ("reach", "strike") and sorted(p.name for p in bundle.iterdir()) == [
        "manifest.json", "v1"]  # fmt: skip
