"""MujocoSimulator: standing, conventions, velocities vs finite differences, resets, contacts, objects."""

import logging

import numpy as np
import pytest

from tt_deploy import spec
from tt_deploy.errors import InputError
from tt_deploy.obs import rotations
from tt_deploy.obs.state import RigidState
from tt_deploy.sim.mujoco_backend import MujocoSimulator
from tt_deploy.sim.perturbations import Perturbation

B = {n: i for i, n in enumerate(spec.BODY_NAMES)}
ZERO = np.zeros((2, spec.NUM_DOF))


def test_stands_3s_with_zero_actions():
    sim = MujocoSimulator(2)
    start = sim.body_state().pos[:, 0].copy()
    heights = []
    for _ in range(90):
        sim.step(ZERO)
        assert not sim.unstable.any()
        heights.append(sim.body_state().pos[:, 0, 2])
    assert np.min(heights) > 0.93  # measured 0.939 (starts at 0.942)
    assert np.abs(sim.body_state().pos[:, 0, :2] - start[:, :2]).max() < 0.05
    assert sim.num_unstable_total == 0


def test_faces_plus_x_and_xyzw_after_yaw_reset():
    sim = MujocoSimulator(2)
    bs = sim.body_state()
    assert (bs.pos[:, B["L_Hand"], 1] > bs.pos[:, B["R_Hand"], 1] + 1.4).all()
    np.testing.assert_allclose(rotations.heading_angle(bs.quat[:, 0]), 0.0, atol=1e-12)
    s = np.sin(np.pi / 4)
    sim.reset(np.array([1]), root_quat=rotations.quat_about_z(np.array([np.pi / 2])))
    bs = sim.body_state()
    np.testing.assert_allclose(bs.quat[1], np.tile([0, 0, s, s], (24, 1)), atol=1e-12)
    assert bs.pos[1, B["L_Hand"], 0] < -0.7  # left hand now on -x
    np.testing.assert_allclose(bs.quat[0, 0], [0, 0, 0, 1], atol=1e-12)  # env 0 untouched


def _axis_angle(q):
    q = q * np.sign(q[..., 3:4])
    half = np.arccos(np.clip(q[..., 3:4], -1, 1))
    return q[..., :3] / np.maximum(np.sin(half), 1e-12) * 2 * half


def test_velocities_match_finite_differences():
    # near-passive joints (motor x1e-3) in free flight: smooth motion, central differences over 1/30 s
    sim = MujocoSimulator(1, perturbation=Perturbation(motor=1e-3))
    rng = np.random.default_rng(0)
    sim.reset(root_pos=[0, 0, 4.0], root_quat=rotations.quat_from_axis_angle([0.3, 0.2, 1.0], 0.7),
              root_lin_vel=[1.0, -0.5, 2.0], root_ang_vel=[0.6, -0.9, 1.5], joint_vel=rng.normal(0, 0.5, 69))
    np.testing.assert_allclose(sim.body_state().ang_vel[0, 0], [0.6, -0.9, 1.5], atol=1e-12)
    np.testing.assert_allclose(sim.body_state().lin_vel[0, 0], [1.0, -0.5, 2.0], atol=1e-12)
    states = []
    for _ in range(3):
        states.append(sim.body_state())
        sim.step(np.zeros((1, 69)))
    prev, now, nxt, dt = states[0], states[1], states[2], sim.control_dt
    lin_fd = (nxt.pos - prev.pos) / (2 * dt)
    dq = rotations.quat_mul(nxt.quat, rotations.quat_conj(prev.quat))  # world-frame rotation
    ang_fd = _axis_angle(dq) / (2 * dt)
    assert np.abs(now.lin_vel).max() > 1.0 and np.abs(now.ang_vel).max() > 1.0
    np.testing.assert_allclose(now.lin_vel, lin_fd, atol=0.05 * np.abs(now.lin_vel).max())
    np.testing.assert_allclose(now.ang_vel, ang_fd, atol=0.05 * np.abs(now.ang_vel).max())


def test_explicit_joint_reset_and_shape_errors():
    sim = MujocoSimulator(2)
    q = np.zeros(69)
    q[spec.JOINT_NAMES.index("L_Elbow_z")] = -1.0
    sim.reset(np.array([0]), joint_pos=q)
    jp, jv = sim.joint_state()
    assert jp[0, spec.JOINT_NAMES.index("L_Elbow_z")] == -1.0 and jp[1].max() == 0.0
    with pytest.raises(InputError, match=r"actions must have shape \(2, 69\)"):
        sim.step(np.zeros((2, 68)))
    with pytest.raises(InputError, match="joint_pos must be finite"):
        sim.reset(np.array([0, 1]), joint_pos=np.zeros((3, 69)))
    with pytest.raises(InputError, match="NaN"):
        sim.step(np.full((2, 69), np.nan))


def test_instability_detected_and_env_reset(caplog):
    sim = MujocoSimulator(3)
    sim.reset(np.array([1]), joint_vel=np.full(69, 1e9))
    with caplog.at_level(logging.WARNING, logger="tt_deploy.sim.mujoco_backend"):
        sim.step(np.zeros((3, 69)))
    assert sim.unstable.tolist() == [False, True, False]
    assert "unstable in 1 env(s) [1]" in caplog.text
    bs = sim.body_state()
    assert np.isfinite(bs.pos).all() and abs(bs.pos[1, 0, 2] - 0.942) < 0.01  # back to standing
    sim.step(np.zeros((3, 69)))
    assert not sim.unstable.any()


def test_contact_forces_carry_body_weight():
    sim = MujocoSimulator(1)
    for _ in range(30):
        sim.step(np.zeros((1, 69)))
    f = sim.contact_forces()[0]
    weight = sim.hm.total_mass * 9.81
    feet = [B[n] for n in spec.FOOT_BODIES]
    assert f[feet].sum() == pytest.approx(weight, rel=0.05)
    assert f[B["L_Hand"]] == 0.0 and f[B["Head"]] == 0.0


def test_strike_target_state_topple_and_contacts():
    sim = MujocoSimulator(2, objects=("strike_target",))
    st = sim.object_state("strike_target")
    np.testing.assert_allclose(st.pos[:, 2], 0.9, atol=0.01)
    # env 0: tilted pillar falls over; env 1: pillar pressed into the right hand
    tilt = rotations.quat_from_axis_angle([0, 1, 0], 0.3)
    hand = sim.body_state().pos[1, B["R_Hand"]]
    sim.set_object_state("strike_target", np.array([0, 1]), RigidState(
        pos=np.array([[3.0, 0, 0.95], [hand[0] + 0.16, hand[1], 0.92]]), quat=np.stack([tilt, [0, 0, 0, 1.0]]),
        lin_vel=np.zeros((2, 3)), ang_vel=np.array([[0, 1.0, 0], [0, 0, 0]])))
    np.testing.assert_allclose(sim.object_state("strike_target").ang_vel[0], [0, 1.0, 0], atol=1e-12)
    sim.step(np.zeros((2, 69)))
    touching = sim.object_contacts("strike_target")
    assert touching[1, B["R_Hand"]] and not touching[0].any()
    for _ in range(60):
        sim.step(np.zeros((2, 69)))
    up = rotations.quat_rotate(sim.object_state("strike_target").quat[0], np.array([0, 0, 1.0]))
    assert up[2] < 0.2  # toppled (the strike task's success test)
    with pytest.raises(InputError, match="no object 'ball'"):
        sim.object_state("ball")


def test_push_adds_world_frame_root_velocity_to_chosen_envs_only():
    from tt_deploy.sim.mujoco_backend import MujocoSimulator

    sim = MujocoSimulator(3, nthread=1)
    before = sim.body_state().lin_vel[:, 0].copy()
    sim.push([2], [0.4, -0.3, 0.0])
    after = sim.body_state().lin_vel[:, 0]
    np.testing.assert_allclose(after[2] - before[2], [0.4, -0.3, 0.0], atol=1e-9)
    np.testing.assert_allclose(after[:2], before[:2], atol=1e-12)
    sim.step(np.zeros((3, 69)))
    assert sim.body_state().pos[2, 0, 0] - sim.body_state().pos[0, 0, 0] > 0.005  # the kick moved it
