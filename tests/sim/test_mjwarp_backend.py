"""MuJoCo Warp against MuJoCo C from identical states: the documented short-horizon bounds (docs/simulation.md)."""

import numpy as np
import pytest

pytest.importorskip("mujoco_warp", reason="MuJoCo Warp is the optional extra [mjwarp]")

from tt_deploy.errors import InputError  # noqa: E402
from tt_deploy.sim.mjwarp_backend import MjWarpSimulator, SimulationOverflowError, constraint_budget  # noqa: E402
from tt_deploy.sim.mujoco_backend import MujocoSimulator  # noqa: E402
from tt_deploy.sim.perturbations import Perturbation  # noqa: E402
from tt_deploy.sim.registry import make_simulator  # noqa: E402

# one second of zero actions from standing (30 control steps): measured 1e-7 m, the float32 floor
ZERO_ACTION_BOUND_M = 1e-5
CELLS = [Perturbation(), Perturbation(friction=0.5), Perturbation(gravity=1.25), Perturbation(mass=1.2),
         Perturbation(motor=0.8)]


def _actions(n: int, steps: int) -> np.ndarray:
    """Zero actions for half a second, then a slow smooth squat-and-sway every env shares (no fall in 1 s)."""
    t = np.arange(steps)[:, None, None] * np.ones((1, n, 69))
    joints = np.sin(0.2 * t + np.arange(69)) * 0.05
    joints[: steps // 2] = 0.0
    return joints


@pytest.fixture(scope="module")
def pair():
    n = len(CELLS)
    return MujocoSimulator(n, nthread=1, perturbation=CELLS), MjWarpSimulator(n, perturbation=CELLS)


def test_per_world_perturbations_follow_mujoco_c_for_one_second(pair):
    c, w = pair
    c.reset()
    w.reset()
    for a in _actions(len(CELLS), 30):
        c.step(a)
        w.step(a)
    err = np.linalg.norm(c.body_state().pos - w.body_state().pos, axis=-1).max(axis=1)
    assert err.max() < ZERO_ACTION_BOUND_M, dict(zip([p.name for p in CELLS], err, strict=True))
    # the cells really differ: gravity x1.25 and mass x1.2 sag the standing humanoid further than nominal
    z = w.body_state().pos[:, 0, 2]
    assert z[2] < z[0] - 1e-4 and z[3] < z[0] - 1e-4
    # counts are taken one substep apart (C re-runs collision after stepping, Warp reports its last substep's)
    assert np.abs(w.contact_counts() - c.contact_counts()).max() <= 2
    np.testing.assert_allclose(w.contact_forces(), c.contact_forces(), rtol=1e-3, atol=0.05)
    assert w.unstable.sum() == 0 and w.peak_contacts <= w.nconmax and w.peak_rows <= w.njmax


def test_reset_round_trips_a_state_in_our_convention(pair):
    _, w = pair
    rng = np.random.default_rng(0)
    quat = rng.normal(size=(len(CELLS), 4))
    quat /= np.linalg.norm(quat, axis=1, keepdims=True)
    quat *= np.sign(quat[:, 3:])  # xyzw with w >= 0 (q and -q are one rotation)
    joints = rng.uniform(-0.3, 0.3, (len(CELLS), 69))
    ang = rng.normal(size=(len(CELLS), 3))
    w.reset(root_pos=[0.0, 0.0, 1.5], root_quat=quat, joint_pos=joints, root_ang_vel=ang)
    body = w.body_state()
    got_q = body.quat[:, 0] * np.sign(body.quat[:, 0, 3:])
    np.testing.assert_allclose(got_q, quat, atol=1e-6)
    np.testing.assert_allclose(w.joint_state()[0], joints, atol=1e-6)
    np.testing.assert_allclose(body.ang_vel[:, 0], ang, atol=1e-5)  # world frame in, world frame out
    with pytest.raises(InputError, match="root_pos"):
        w.reset(root_pos=[np.nan, 0.0, 1.0])


def test_an_overflowing_budget_fails_loudly_instead_of_dropping_contacts():
    w = MjWarpSimulator(1, budget=(4, 16))
    with pytest.raises(SimulationOverflowError, match="overflow"):
        for _ in range(30):  # the feet land within a second: 16 contacts > 4
            w.step(np.zeros((1, 69)))


@pytest.mark.parametrize("budget", [(0, 0), (-1, -1), (8, 0), (2.5, 16), (True, 16), (8,)])
def test_a_budget_that_is_not_two_positive_integers_is_refused_before_any_work(budget, monkeypatch):
    """(0, 0) used to be taken (and reported 0 contacts), (-1, -1) to raise Warp's bare ValueError."""
    import tt_deploy.sim.mjwarp_backend as backend

    monkeypatch.setattr(backend, "build_model", lambda *a, **k: pytest.fail("built the model for a bad budget"))
    with pytest.raises(InputError, match=r"budget must be \(contacts, constraint rows\), both integers >= 1") as err:
        MjWarpSimulator(1, budget=budget)
    assert str(err.value).endswith(f"got {budget!r}")


def test_the_budget_comes_from_the_model_and_the_registry_knows_the_backend(pair):
    _, w = pair
    contacts, rows = constraint_budget(w.model)
    assert (contacts, rows) == (w.nconmax, w.njmax)
    assert contacts >= 16 + 2 * 24 and rows >= 4 * contacts  # feet boxes on the ground + self contacts; pyramidal rows
    assert isinstance(make_simulator("mjwarp", num_envs=1), MjWarpSimulator)
    import warp as wp

    if not wp.is_cuda_available():  # a typed error, not Warp's, where the asked device does not exist
        with pytest.raises(InputError, match="device 'cuda:0' is not available here"):
            MjWarpSimulator(1, device="cuda:0")


def test_a_training_env_with_the_strike_target_runs_on_mujoco_warp():
    from tt_deploy.train.config import TrainConfig
    from tt_deploy.train.task_token import _make_env

    env = _make_env(TrainConfig("strike", sim="mjwarp", prior=True, nthread=1), 2, seed=0)
    assert isinstance(env.sim, MjWarpSimulator)
    out = env.reset()
    target = env.sim.object_state("strike_target")
    assert np.allclose(target.pos[:, 2], 0.9, atol=0.01)  # the pillar stands on the floor (half height 0.9 m)
    for _ in range(3):
        out = env.step(np.zeros((2, 69)))
    assert all(np.isfinite(v).all() for v in out.inputs.values()) and np.isfinite(out.task_obs).all()
    assert env.sim.object_contacts("strike_target").shape == (2, 24)


def test_sim_equivalence_reports_both_streams_beside_the_mujoco_yardstick(tmp_path):
    import json

    from typer.testing import CliRunner

    from tt_deploy.cli import _register, app

    _register()
    out = tmp_path / "eq.json"
    res = CliRunner().invoke(app, ["sim", "equivalence", "--envs", "2", "--seconds", "0.2", "--json", str(out)])
    assert res.exit_code == 0, res.output
    rows = json.loads(out.read_text())
    assert {(r["actions"], r["pair"]) for r in rows} == {(a, p) for a in ("zero", "walk")
                                                           for p in ("mujoco vs mjwarp", "mujoco vs mujoco +1um")}
    for r in rows:
        assert r["steps"] == 6 and r["root_err_max_m"] < ZERO_ACTION_BOUND_M  # 0.2 s: both still float-noise close
    res = CliRunner().invoke(app, ["sim", "equivalence", "--seconds", "0"])
    assert res.exit_code != 0 and "--seconds > 0" in str(res.exception)


def test_without_conditional_graph_nodes_cuda_steps_run_uncaptured(pair, monkeypatch, caplog):
    w = pair[1]
    monkeypatch.setattr(w, "_conditional", None)
    monkeypatch.setattr(w._wp, "is_conditional_graph_supported", lambda: False)
    with caplog.at_level("WARNING"):
        assert not w._can_capture() and not w._can_capture()
    assert sum("conditional graph" in r.getMessage() for r in caplog.records) == 1  # said once
    monkeypatch.setattr(w, "_conditional", None)
    monkeypatch.setattr(w._wp, "is_conditional_graph_supported", lambda: True)
    assert w._can_capture()
