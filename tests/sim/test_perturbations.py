"""Perturbations: grids, and each knob measurably changes the physics, per environment."""

import numpy as np
import pytest

from tt_deploy import spec
from tt_deploy.errors import InputError, UnknownNameError
from tt_deploy.obs import rotations
from tt_deploy.obs.state import RigidState
from tt_deploy.sim.mujoco_backend import MujocoSimulator
from tt_deploy.sim.perturbations import G, Perturbation, add_obs_noise, grid

B = {n: i for i, n in enumerate(spec.BODY_NAMES)}


def test_grids_and_names():
    default = grid("default")
    kinds = {c.name.split("=")[0] for c in default if c.name != "nominal"}
    assert kinds == {"friction", "gravity", "mass", "motor", "action_delay", "obs_noise"}
    assert len(default) == 1 + 6 * 2 and len({c.name for c in default}) == len(default)
    paper = grid("paper")
    assert min(c.gravity for c in paper) == 0.25 and max(c.gravity for c in paper) == 2.0
    main = [c for c in paper if c.friction == 0.4]
    assert len(main) == 1 and main[0].gravity * G == pytest.approx(15.0, abs=1e-3)
    assert main[0].name == "friction=0.4,gravity=1.5291"
    with pytest.raises(UnknownNameError, match="unknown perturbation grid 'huge'; known: default, paper"):
        grid("huge")
    with pytest.raises(InputError, match="friction must be a positive"):
        Perturbation(friction=0.0)
    with pytest.raises(InputError, match="one Perturbation per environment"):
        MujocoSimulator(2, perturbation=[Perturbation()])


def test_gravity_per_env_free_fall():
    sim = MujocoSimulator(2, perturbation=[Perturbation(gravity=0.5), Perturbation(gravity=1.5)])
    sim.reset(root_pos=[0, 0, 3.0])
    for _ in range(10):
        sim.step(np.zeros((2, 69)))
    drop = 3.0 - sim.body_state().pos[:, 0, 2]
    n, h = 10 * sim.hm.substeps, sim.model.opt.timestep  # semi-implicit Euler: g h^2 n (n + 1) / 2
    np.testing.assert_allclose(drop, G * np.array([0.5, 1.5]) * h**2 * n * (n + 1) / 2, rtol=1e-6)


def test_mass_scales_bodies_and_weight():
    sim = MujocoSimulator(2, perturbation=[Perturbation(), Perturbation(mass=1.2)])
    mass = sim.batch.expanded("body_mass")[:, sim.hm.body_ids]
    np.testing.assert_allclose(mass[1] / mass[0], 1.2)
    for _ in range(30):
        sim.step(np.zeros((2, 69)))
    feet = [B[n] for n in spec.FOOT_BODIES]
    load = sim.contact_forces()[:, feet].sum(axis=1)
    assert load[1] / load[0] == pytest.approx(1.2, rel=0.05)


def test_friction_changes_sliding_distance():
    # a pillar lying on its side slides v^2 / (2 mu g) at low friction; >= x4 shorter at x2
    sim = MujocoSimulator(2, objects=("strike_target",),
                          perturbation=[Perturbation(friction=0.5), Perturbation(friction=2.0)])
    lying = np.tile(rotations.quat_from_axis_angle([0, 1, 0], np.pi / 2), (2, 1))
    sim.set_object_state("strike_target", np.array([0, 1]), RigidState(
        pos=np.tile([3.0, 0, 0.15], (2, 1)), quat=lying, lin_vel=np.tile([2.0, 0, 0], (2, 1)),
        ang_vel=np.zeros((2, 3))))
    for _ in range(30):
        sim.step(np.zeros((2, 69)))
    dist = sim.object_state("strike_target").pos[:, 0] - 3.0
    assert dist[0] == pytest.approx(4.0 / (2 * 0.5 * G), rel=0.05)  # measured 0.400 vs 0.408
    assert 0.02 < dist[1] < 0.25 * dist[0]  # measured 0.048: soft contacts stop it even sooner


def test_action_delay_shifts_response():
    sim = MujocoSimulator(2, perturbation=[Perturbation(), Perturbation(action_delay=2)])
    j = spec.JOINT_NAMES.index("L_Elbow_z")
    a = np.zeros((2, 69))
    angles = []
    for k in range(8):
        a[:, j] = -0.5 if k >= 3 else 0.0
        sim.step(a)
        angles.append(sim.joint_state()[0][:, j])
    angles = np.array(angles)  # (8, 2)
    assert angles[3, 0] < -0.2 and abs(angles[3, 1]) < 1e-2 and abs(angles[4, 1]) < 1e-2
    np.testing.assert_allclose(angles[5:8, 1], angles[3:6, 0], atol=0.02)


def test_motor_scale_changes_tracking():
    sim = MujocoSimulator(2, perturbation=[Perturbation(motor=0.8), Perturbation(motor=1.2)])
    kp = sim.batch.expanded("actuator_gainprm")[:, sim.hm.actuator_ids, 0]
    np.testing.assert_allclose(kp[1] / kp[0], 1.5)
    for _ in range(30):
        sim.step(np.zeros((2, 69)))
    sag = sim.joint_state()[0][:, spec.JOINT_NAMES.index("L_Shoulder_x")]  # arm sag under gravity ~ 1/kp
    assert sag[0] < -0.01 and sag[0] / sag[1] == pytest.approx(1.5, rel=0.2)


def test_obs_noise_per_env():
    sim = MujocoSimulator(2, perturbation=[Perturbation(), Perturbation(obs_noise=0.02)])
    x = np.ones((2, 20000))
    y = sim.add_obs_noise(x)
    np.testing.assert_array_equal(y[0], 1.0)
    assert np.std(y[1]) == pytest.approx(0.02, rel=0.05)
    with pytest.raises(InputError, match="per-env std has 3 entries"):
        add_obs_noise(x, np.zeros(3), np.random.default_rng(0))


@pytest.mark.parametrize("name", ["default", "paper"])
def test_zero_actions_numerically_stable_in_every_cell(name):
    cells = grid(name)
    sim = MujocoSimulator(len(cells), perturbation=list(cells))
    for _ in range(60):
        sim.step(np.zeros((len(cells), 69)))
        assert not sim.unstable.any()
    bs = sim.body_state()
    assert np.isfinite(bs.pos).all() and np.isfinite(bs.lin_vel).all()
    assert np.abs(bs.lin_vel).max() < 20.0 and sim.num_unstable_total == 0


def test_friction_spread_is_log_spaced_and_checks_its_range():
    from tt_deploy.sim.perturbations import friction_spread

    cells = friction_spread(5, 0.5, 2.0)
    np.testing.assert_allclose([p.friction for p in cells], [0.5, 0.7071068, 1.0, 1.4142136, 2.0], rtol=1e-6)
    assert all(p.gravity == 1.0 and p.action_delay == 0 for p in cells)
    assert [p.friction for p in friction_spread(3, 1.0, 1.0)] == [1.0, 1.0, 1.0]
    for low, high in ((0.0, 2.0), (2.0, 0.5), (1.0, float("inf"))):
        with pytest.raises(InputError, match="friction range"):
            friction_spread(4, low, high)
