"""The README's main job (`ttdeploy demo`) runs end to end, offline, with small settings."""

import json
import subprocess
import sys

import pytest


def test_demo_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    res = subprocess.run([sys.executable, "-m", "tt_deploy.cli.__main__", "demo", "--out", str(out),
                          "--bench-calls", "20", "--seconds", "1"],
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verify"]["passed"] and summary["verify"]["max_abs"] <= 1e-5
    assert (out / "deploy" / "manifest.json").is_file()
    assert {r["name"] for r in summary["bench"]} >= {"torch-eager", "runtime-full", "runtime-fused"}
    from tt_deploy.demo import shipped_skills

    assert set(summary["skills"]) == set(shipped_skills()) and shipped_skills()  # only trained skills
    assert all(s["encoder"].startswith("trained encoder") for s in summary["skills"].values())
    assert all(cl["envs"] == 16 for cl in summary["closed_loop"].values())
    assert set(summary["closed_loop"]) == set(summary["skills"])
    assert "measured success" in res.stdout and "prior-only" in res.stdout


def test_demo_replaces_its_own_old_bundle_and_spares_other_dirs(tmp_path):
    from tt_deploy.demo import _clear_old_bundle
    from tt_deploy.errors import InputError

    old = tmp_path / "deploy"
    old.mkdir()
    (old / "manifest.json").write_text("{}")  # e.g. exported with an earlier BFM
    _clear_old_bundle(old)
    assert not old.exists()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match="not a deploy bundle"):
        _clear_old_bundle(other)
    assert (other / "notes.txt").is_file()
