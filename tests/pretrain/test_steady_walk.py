"""The steadiness meter (per-step speed along the command) and the BFM's walk prompts it measures."""

import numpy as np
import pytest

from tt_deploy import spec
from tt_deploy.pretrain.steady_walk import SpeedMeter, SteadyWalkTask, measure_bfm_walk, passes


def test_the_meter_books_per_step_speed_along_the_command_until_a_fall():
    meter = SpeedMeter(steps=4, envs=2)
    d = np.array([[1.0, 0.0], [0.0, 1.0]])
    speeds = [(0.9, 0.5), (1.1, 0.5), (0.9, 0.5), (1.1, 0.5)]  # env 1 falls at step 2
    for k, (a, b) in enumerate(speeds):
        prev = np.zeros((2, 2))
        xy = np.array([[a, 0.3], [0.2, b]]) * spec.CONTROL_DT  # sideways motion does not count
        meter.book(k, prev, xy, d, done=np.array([False, k == 2]))
    row = meter.row(1.0, settle=0)
    assert row["mean_speed"] == pytest.approx(1.0) and row["mean_error"] == pytest.approx(0.0, abs=1e-9)
    assert row["swing"] == pytest.approx(0.1)  # std 0.1 / mean 1.0 of the env still up
    assert row["fall_rate"] == 0.5 and row["envs"] == 2
    assert meter.row(0.5, settle=0, ids=[1])["fall_rate"] == 1.0
    assert np.isnan(meter.row(0.5, settle=0, ids=[1])["swing"])


def test_passes_holds_all_three_walk_numbers():
    ok = {"swing": 0.05, "mean_error": -0.06, "fall_rate": 0.0}
    assert passes(ok)
    for bad in ({"swing": 0.09}, {"mean_error": 0.08}, {"fall_rate": 0.1}, {"swing": float("nan")}):
        assert not passes({**ok, **bad})


def test_walk_prompts_hold_each_envs_speed_straight_ahead_and_turn_when_asked():
    from tt_deploy.sim.mujoco_backend import MujocoSimulator
    from tt_deploy.tasks.base import root_heading, unit_from_angle
    from tt_deploy.tasks.env import TaskEnv

    sim = MujocoSimulator(2, nthread=1, seed=1)
    task = SteadyWalkTask(np.array([0.5, 1.5]))
    TaskEnv(sim, task, episode_seconds=2.0, seed=1).reset()
    np.testing.assert_array_equal(task.walk_speed, [0.5, 1.5])
    np.testing.assert_allclose(task.walk_dir, unit_from_angle(root_heading(sim.body_state())), atol=1e-9)


def test_the_bfm_rows_name_their_speeds_and_turning():
    from tt_deploy.models.checkpoints import default_bfm

    rows = measure_bfm_walk(default_bfm()[0], (0.5, 1.0), turn_rate=0.3, envs=2, seconds=2.0, settle_s=0.5, nthread=1)
    assert [r["command"] for r in rows] == [0.5, 1.0]
    assert all(r["turn_rate"] == 0.3 and r["envs"] == 2 and 0 <= r["fall_rate"] <= 1 for r in rows)
    assert all(np.isfinite(r["mean_speed"]) for r in rows if r["fall_rate"] < 1)
