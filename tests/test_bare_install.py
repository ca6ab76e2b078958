"""Issue #36's robot install: `pip install .` with no extras, in a fresh virtualenv, runs a bundle with torch and
MuJoCo absent (the runtime, verify against the recorded reference, bench, inspect), and the commands that need
the lab say which extra to install."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

RUN_A_SKILL = """
import numpy as np
from tt_deploy.runtime import SkillRuntime, read_skill
from tt_deploy.runtime.parity import random_inputs
import sys
bundle = sys.argv[1]
with SkillRuntime(bundle) as rt:
    kept = {t.name for t in rt.inputs}
    inputs = {k: v[0] for k, v in random_inputs(1, np.random.default_rng(0), visible_p=1.0).items() if k in kept}
    actions = rt.act(inputs, np.zeros(read_skill(bundle, rt.active).task_obs_dim, np.float32))
    assert actions.shape == (69,) and np.isfinite(actions).all()
    name = rt.active
print("ran", name)
"""


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    t0 = time.perf_counter()
    res = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "-e", str(ROOT)], capture_output=True,
                         text=True, env=env)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    print(f"bare install: {time.perf_counter() - t0:.0f} s")
    return venv


def _run(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(list(args), capture_output=True, text=True, env=env, cwd=cwd)


def test_a_bare_install_runs_a_bundle_without_torch_or_mujoco(bare_venv, tmp_path):
    from tt_deploy.export.bundle import export_skill

    bundle = export_skill("reach", bundle_dir=tmp_path / "deploy", run_dir=ROOT / "tt_deploy" / "skills" / "reach")
    py = str(bare_venv / "bin" / "python")
    for module in ("torch", "mujoco", "matplotlib"):
        res = _run(bare_venv, py, "-c", f"import {module}", cwd=tmp_path)
        assert res.returncode != 0 and "ModuleNotFoundError" in res.stderr, f"{module} is in the bare install"
    res = _run(bare_venv, py, "-c", RUN_A_SKILL, str(bundle), cwd=tmp_path)
    assert res.returncode == 0 and "ran reach" in res.stdout, res.stderr[-2000:]
    res = _run(bare_venv, "ttdeploy", "verify", "--bundle", str(bundle), cwd=tmp_path)
    assert res.returncode == 0 and "against the recorded reference" in res.stdout and "parity ok" in res.stdout, (
        res.stdout[-2000:] + res.stderr[-2000:])  # fmt: skip
    res = _run(bare_venv, "ttdeploy", "bench", "--bundle", str(bundle), "--calls", "30", "--warmup", "3",
               "--no-memory", "--json", str(tmp_path / "bench.json"), cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    rows = __import__("json").loads((tmp_path / "bench.json").read_text())["rows"]
    names = {r.get("name") for r in rows}
    assert "runtime-fused" in names and "torch-eager" not in names
    res = _run(bare_venv, "ttdeploy", "inspect", str(bundle / "v1" / "skills" / "reach" / "fused.onnx"), cwd=tmp_path)
    assert res.returncode == 0 and "tt-deploy.skill" in res.stdout, res.stderr[-2000:]


def test_a_bare_install_names_the_extra_a_lab_command_needs(bare_venv, tmp_path):
    res = _run(bare_venv, "ttdeploy", "train", "--skill", "reach", "--steps", "10", "--out", str(tmp_path / "r"),
               cwd=tmp_path)  # fmt: skip
    assert res.returncode == 2 and "pip install 'tt-deploy[train]'" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "r").exists()
