"""The README's main job (`ttdeploy demo`) runs end to end, offline, with small settings."""

import json
import subprocess
import sys


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
    assert summary["closed_loop"]["envs"] == 16
