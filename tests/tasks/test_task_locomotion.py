"""Direction and steering rewards, obs and success at hand-computed states."""

import math

import numpy as np
import pytest
from task_helpers import FakeSim, make_state, moved

from tt_deploy import spec
from tt_deploy.tasks.direction import DirectionTask, HeadingGoalConfig, direction_terms
from tt_deploy.tasks.steering import SteeringTask

DT = spec.CONTROL_DT


def _direction(n=1, d=(1.0, 0.0), speed=1.0, cls=DirectionTask):
    task = cls(n)
    task.tar_dir[:] = d
    task.tar_speed[:] = speed
    return task


def test_direction_reward_hand_computed():
    # d=(1,0), speed 1, v=(0.8,0.1): s=0.8, v_t=(0,0.1), t=0.1, e_rel=0.2 -> exp(-(0.4+0.001))
    task = _direction()
    s0 = make_state()
    s1 = moved(s0, [0.8 * DT, 0.1 * DT, 0.0])
    r = task.reward(s0, s1, FakeSim(s1))
    assert r == pytest.approx([math.exp(-(10 * 0.2**2 + 0.1 * 0.1**2))], rel=1e-9)


def test_direction_tangent_is_sum_not_norm():
    # v=(0, 0.3, ...) along d=(0.6, 0.8): s=0.24, v_t=(-0.144, 0.108) -> t=-0.036 (norm would be 0.18)
    out = direction_terms(np.array([[0.6, 0.8]]), np.array([1.0]), np.array([[0.0, 0.3, 0.0]]))
    assert out["t"] == pytest.approx([-0.144 + 0.108])
    assert out["reward"] == pytest.approx([math.exp(-(10 * 0.76**2 + 0.1 * 0.036**2))])


def test_direction_reward_zero_when_moving_backwards():
    task = _direction()
    s0 = make_state()
    assert task.reward(s0, moved(s0, [-0.51 * DT, 0, 0]), None) == pytest.approx([0.0])
    # s = -0.49 is not below -0.5: e_rel = 1.49
    assert task.reward(s0, moved(s0, [-0.49 * DT, 0, 0]), None) == pytest.approx([math.exp(-10 * 1.49**2)])


def test_direction_zero_speed_uses_absolute_error():
    # speed 0 <= 1e-4: e_rel = e = 0 - 0.3
    task = _direction(speed=0.0)
    s0 = make_state()
    assert task.reward(s0, moved(s0, [0.3 * DT, 0, 0]), None) == pytest.approx([math.exp(-10 * 0.09)])


def test_direction_vertical_motion_ignored():
    task = _direction()
    s0 = make_state()
    assert task.reward(s0, moved(s0, [DT, 0, 0.5 * DT]), None) == pytest.approx([1.0])


def test_direction_obs_heading_rotation():
    # root yawed +90 deg; world direction +x is the character's right (-y local)
    task = _direction(d=(1.0, 0.0), speed=2.5)
    state = make_state(yaw=math.pi / 2)
    obs = task.observe(state, FakeSim(state))
    assert obs.dtype == np.float32 and obs.shape == (1, 3)
    np.testing.assert_allclose(obs[0], [0.0, -1.0, 2.5], atol=1e-6)


def test_direction_obs_heading_invariant():
    # rotating character and goal together leaves the obs unchanged
    task = DirectionTask(2)
    theta = np.array([0.3, 0.3 + 1.1])
    task.tar_dir[:] = np.stack([np.cos(theta), np.sin(theta)], -1)
    a, b = make_state(yaw=0.0), make_state(yaw=1.1)
    state = make_state(2)
    state.quat[1] = b.quat[0]
    state.quat[0] = a.quat[0]
    obs = task.observe(state, None)
    np.testing.assert_allclose(obs[0], obs[1], atol=1e-6)


def test_current_pose_appends_pelvis_and_head_world_xyz():
    task = DirectionTask(1, current_pose=True)
    state = make_state(root=(1.0, 2.0, 0.9), yaw=0.7)
    state.pos[0, 13] = [1.1, 2.2, 1.6]  # Head
    assert task.obs_dim == 9
    obs = task.observe(state, None)
    np.testing.assert_allclose(obs[0, 3:], [1.0, 2.0, 0.9, 1.1, 2.2, 1.6], atol=1e-6)


def test_direction_goal_sampling_ranges():
    task = DirectionTask(4000)
    rng = np.random.default_rng(0)
    state = make_state(4000)
    task.reset(np.arange(4000), FakeSim(state), rng)
    speed = task.tar_speed
    assert np.all((speed == 0) | ((speed >= 1.2) & (speed <= 6.0)))
    assert 0.02 < np.mean(speed == 0) < 0.08  # stop probability 0.05
    np.testing.assert_allclose(np.linalg.norm(task.tar_dir, axis=-1), 1.0)
    assert np.all(task.change_at == 199)  # ref inversion env: change_steps_min/max 199/200
    assert np.all(task.measure_from == 60)


def test_direction_goal_resampled_when_due():
    task = DirectionTask(3, goals=HeadingGoalConfig(change_steps=(5, 6), random_prob=0.0, stop_prob=0.0))
    rng = np.random.default_rng(1)
    state = make_state(3)
    sim = FakeSim(state)
    task.reset(np.arange(3), sim, rng)
    theta0 = task.tar_theta.copy()
    for _ in range(5):
        task.update(state, state, sim, rng)
    assert np.all(task.change_at == 10) and np.all(task.measure_from == 65)
    turn = np.abs((task.tar_theta - theta0 + np.pi) % (2 * np.pi) - np.pi)
    assert np.all(turn <= 1.57 + 1e-9)


def test_direction_success_grace_then_never_above_02():
    task = DirectionTask(3)
    task.reset(np.arange(3), FakeSim(make_state(3)), np.random.default_rng(0))
    task.tar_dir[:] = [1.0, 0.0]
    task.tar_speed[:] = 1.0
    task.change_at[:] = 10**6
    s0 = make_state(3)
    good = moved(s0, [0.85 * DT, 0, 0])  # e_rel 0.15
    bad = moved(s0, [0.7 * DT, 0, 0])  # e_rel 0.3
    for step in range(1, 101):
        s1 = BodyStateMix(good, bad, bad_rows=[0] if step < 60 else [1] if step == 80 else [])
        task.update(s0, s1, None, np.random.default_rng(0))
    # env 0 was bad only inside the grace window; env 1 was bad once after it; env 2 never
    np.testing.assert_array_equal(task.success(), [True, False, True])


def BodyStateMix(good, bad, bad_rows):
    out = moved(good, [0, 0, 0])
    out.pos[bad_rows] = bad.pos[bad_rows]
    return out


def test_steering_reward_and_obs():
    # direction reward 1 (exact velocity) and facing 60 deg off: 0.7 + 0.3 cos(60deg)
    task = _direction(cls=SteeringTask)
    task.tar_facing[:] = [math.cos(math.pi / 3), math.sin(math.pi / 3)]
    s0 = make_state()
    s1 = moved(s0, [DT, 0, 0])
    assert task.reward(s0, s1, None) == pytest.approx([0.7 + 0.3 * 0.5])
    task.tar_facing[:] = [-1.0, 0.0]  # facing behind: clamp at 0
    assert task.reward(s0, s1, None) == pytest.approx([0.7])
    obs = task.observe(make_state(yaw=math.pi / 2), None)
    assert obs.shape == (1, 5)
    np.testing.assert_allclose(obs[0], [0.0, -1.0, 1.0, 0.0, 1.0], atol=1e-6)


def test_steering_success_needs_facing_within_45deg():
    task = SteeringTask(2)
    task.reset(np.arange(2), FakeSim(make_state(2)), np.random.default_rng(0))
    task.tar_dir[:] = [1.0, 0.0]
    task.tar_speed[:] = 1.0
    task.change_at[:] = 10**6
    task.tar_facing[:] = [[math.cos(0.7), math.sin(0.7)], [math.cos(0.8), math.sin(0.8)]]  # 40 / 46 deg
    s0 = make_state(2)
    s1 = moved(s0, [DT, 0, 0])
    for _ in range(79):
        task.update(s0, s1, None, np.random.default_rng(0))
    np.testing.assert_array_equal(task.success(), [False, False])  # nothing measured before step 80
    task.update(s0, s1, None, np.random.default_rng(0))
    np.testing.assert_array_equal(task.success(), [True, False])
