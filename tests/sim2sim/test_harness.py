"""End to end: a small grid on the embedded default BFM and a freshly exported reach skill."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tt_deploy.errors import UnknownNameError
from tt_deploy.runtime import manifest as mf
from tt_deploy.sim.perturbations import NOMINAL, Perturbation
from tt_deploy.sim2sim import ATOL, run_sim2sim
from tt_deploy.sim2sim.harness import TRAINING_PHYSICS, Job, _make_env, _start_difference

CELLS = (NOMINAL, Perturbation(friction=0.5), Perturbation(action_delay=1, obs_noise=0.02))


def _job(bundle, seed):
    return Job("grid", str(bundle), "reach", tuple(enumerate(CELLS)), 3, 1.0, "ort-cpu", seed, 1)


def test_identical_seeds_give_identical_initial_states_and_noise(reach_bundle):
    job = _job(reach_bundle, seed=3)
    perts = [p for _, p in job.cells for _ in range(job.episodes)]
    a, b = _make_env(job, perts, TRAINING_PHYSICS), _make_env(job, perts, TRAINING_PHYSICS)
    out_a, out_b = a.reset(), b.reset()
    assert _start_difference((out_a, a), (out_b, b)) == 0.0
    zeros = np.zeros((len(perts), 69))
    step_a, step_b = a.step(zeros), b.step(zeros)  # same noise draws for the noisy cell too
    assert _start_difference((step_a, a), (step_b, b)) == 0.0
    other = _make_env(_job(reach_bundle, seed=4), perts, TRAINING_PHYSICS)
    assert _start_difference((out_a, a), (other.reset(), other)) > 0.0  # the check has teeth


def test_small_grid_passes_records_verdict_and_writes_report(reach_bundle, tmp_path):
    ticks = []
    result = run_sim2sim(reach_bundle, "reach", grid=CELLS, episodes=4, episode_seconds=1.0,
                         backend="ort-cpu", report_dir=tmp_path / "report", progress=lambda d, t: ticks.append((d, t)))
    assert ticks[-1][0] == ticks[-1][1] == 2 * 30 and len(ticks) == 60  # grid + cross job, 30 control steps each
    assert [c.name for c in result.cells] == [c.name for c in CELLS]
    assert result.passed, [c.reasons for c in result.cells]
    for c in result.cells:
        assert c.same_start and c.episodes == 4
        assert 0.0 <= c.open_loop_p99 <= c.open_loop_max <= ATOL
        assert c.diff_low <= 0.0 <= c.diff_high
        assert c.metric_name == "hand_distance_m" and np.isfinite(c.metric_reference)
    cs = result.cross_sim
    assert cs is not None and cs.cross_physics == "euler @ 1/240 s" and cs.episodes == 4
    skill = json.loads((mf.content_dir(reach_bundle) / "skills" / "reach" / "skill.json").read_text())
    assert skill["sim2sim"]["passed"] is True and skill["sim2sim"]["cells_passed"] == 3
    assert skill["sim2sim"]["open_loop_max_abs"] == pytest.approx(result.open_loop_max)
    names = {p.name for p in map(Path, result.report_files)}
    assert {"sim2sim.json", "sim2sim.md", "sim2sim.html", "robustness.png", "open_loop_errors.png"} <= names
    assert "data:image/png;base64," in (tmp_path / "report" / "sim2sim.html").read_text()
    assert json.loads((tmp_path / "report" / "sim2sim.json").read_text())["cells_passed"] == 3


def test_the_cross_engine_arm_runs_every_cell_on_mujoco_warp(reach_bundle):
    pytest.importorskip("mujoco_warp", reason="MuJoCo Warp is the optional extra [mjwarp]")
    cells = (Perturbation(friction=0.5), NOMINAL)
    result = run_sim2sim(reach_bundle, "reach", grid=cells, episodes=2, episode_seconds=0.5, backend="ort-cpu",
                         cross_sim="mjwarp", cross_grid=True, record=False)
    assert [c.cell for c in result.cross_cells] == ["nominal", "friction=0.5"]  # nominal first: it is cross_sim
    assert result.cross_sim is result.cross_cells[0]
    for c in result.cross_cells:
        assert c.cross_physics == "mjwarp implicitfast @ 1/120 s" and c.episodes == 2
        # half a second of a standing-start reach: the engines agree to float32 noise, far from the 5 cm divergence
        assert c.diverged_fraction == 0.0 and c.metric_cross == pytest.approx(c.metric_training, abs=1e-3)
    with pytest.raises(UnknownNameError, match="cross-simulator configuration 'bullet'"):
        run_sim2sim(reach_bundle, "reach", grid=cells, episodes=1, episode_seconds=0.1, cross_sim="bullet", record=False)


def test_cli_exits_1_when_the_runtime_does_not_match_its_recorded_sources(swapped_bundle, tmp_path):
    from tt_deploy.cli import _register, app

    _register()
    res = CliRunner().invoke(app, ["sim2sim", "--bundle", str(swapped_bundle), "--skill", "reach",
                                   "--episodes", "1", "--seconds", "0.3", "--backend", "ort-cpu",
                                   "--cross-sim", "none", "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 1, res.output
    assert "FAILED" in res.output
    data = json.loads((tmp_path / "r.json").read_text())
    # an untrained encoder of another seed moves the untrained BFM's actions by ~1e-3: 10x the tolerance
    assert data["cells_passed"] == 0 and data["open_loop_max"] > 5 * ATOL
    skill = json.loads((mf.content_dir(swapped_bundle) / "skills" / "reach" / "skill.json").read_text())
    assert skill["sim2sim"]["passed"] is False and len(skill["sim2sim"]["failed_cells"]) == 13


def test_ray_executor_missing_raises_missing_extra(monkeypatch):
    import sys

    from tt_deploy.errors import MissingExtraError
    from tt_deploy.executors import make_executor

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingExtraError, match="pip install"):
        make_executor("local", ray_address="auto")


def test_unknown_executor_and_bad_arguments(reach_bundle):
    from tt_deploy.errors import InputError, UnknownNameError

    with pytest.raises(UnknownNameError, match="executor"):
        run_sim2sim(reach_bundle, "reach", executor="slurm", episodes=1, episode_seconds=0.1)
    with pytest.raises(InputError, match="episodes"):
        run_sim2sim(reach_bundle, "reach", episodes=0)
    with pytest.raises(UnknownNameError, match="skill"):
        run_sim2sim(reach_bundle, "strike", episodes=1)


@pytest.mark.slow  # ray start-up (GCS, raylet, a worker importing torch): ~50 s on the shared 2-core box
def test_ray_executor_on_a_local_instance(reach_bundle):
    ray = pytest.importorskip("ray", reason="ray is an optional extra (pip install 'tt-deploy[ray]')")
    try:
        result = run_sim2sim(reach_bundle, "reach", grid=CELLS[:2], episodes=2, episode_seconds=0.3,
                             backend="ort-cpu", ray_address="local", cross_sim=False, record=False)
    finally:
        ray.shutdown()
    assert result.executor == "ray" and result.passed and len(result.cells) == 2
    assert len({j["pid"] for j in result.jobs}) >= 1
