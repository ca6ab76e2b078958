"""Reach, strike and long-jump formulas, success rules and goal sampling at hand-built states."""

import math

import numpy as np
import pytest
from task_helpers import FakeSim, make_state, moved

from tt_deploy import spec
from tt_deploy.errors import UnknownNameError
from tt_deploy.obs.rotations import quat_about_z, quat_from_axis_angle
from tt_deploy.tasks.long_jump import LongJumpTask
from tt_deploy.tasks.reach import ReachTask
from tt_deploy.tasks.registry import TASKS, make_task
from tt_deploy.tasks.strike import StrikeTask, strike_reward

DT = spec.CONTROL_DT
R_HAND = spec.BODY_NAMES.index("R_Hand")


# --- reach ------------------------------------------------------------------------------------
def test_reach_reward_at_half_metre():
    task = ReachTask(1)
    state = make_state(root=(0.0, 0.0, 0.9))
    state.pos[0, R_HAND] = [0.3, -0.2, 1.2]
    task.target[:] = [0.3, -0.2, 1.7]
    assert task.reward(state, state, None) == pytest.approx([math.exp(-4 * 0.25)])


def test_reach_obs_rotated_into_heading_frame():
    task = ReachTask(1)
    task.target[:] = [1.0, 3.0, 1.5]
    state = make_state(root=(1.0, 2.0, 0.9), yaw=math.pi / 2)  # target is 1 m ahead of the character
    np.testing.assert_allclose(task.observe(state, None)[0], [1.0, 0.0, 0.6], atol=1e-6)


def test_reach_goal_sampling_ranges():
    n = 5000
    task = ReachTask(n)
    state = make_state(n, root=(2.0, -1.0, 0.9))
    task.reset(np.arange(n), FakeSim(state), np.random.default_rng(0))
    off = task.target[:, :2] - [2.0, -1.0]
    assert np.all(np.abs(off) <= 0.75) and np.abs(off).max() > 0.7
    assert np.all((task.target[:, 2] >= 0.05) & (task.target[:, 2] <= 1.6))
    assert np.all((task.change_at >= 90) & (task.change_at < 120))  # ref reach.yaml change_steps 90 / 120


def test_reach_success_within_02_after_grace():
    task = ReachTask(2)
    sim = FakeSim(make_state(2))
    task.reset(np.arange(2), sim, np.random.default_rng(0))
    task.target[:] = [0.5, 0.0, 1.0]
    state = make_state(2)
    state.pos[:, R_HAND] = [[0.5, 0.15, 1.0], [0.5, 0.25, 1.0]]  # 0.15 m / 0.25 m away
    for _ in range(70):
        task.update(state, state, sim, np.random.default_rng(0))
    np.testing.assert_array_equal(task.success(), [True, False])


# --- strike -----------------------------------------------------------------------------------
def test_strike_reward_upright_and_approaching():
    root = np.array([[0.0, 0.0, 0.9]])
    tar = np.array([[3.0, 4.0, 0.9]])
    upright = np.array([[0.0, 0.0, 0.0, 1.0]])
    vel = np.array([[0.3, 0.4, 0.0]])  # s = 0.5 toward the target
    assert strike_reward(root, vel, tar, upright) == pytest.approx([0.4 * math.exp(-4 * 0.25)])
    assert strike_reward(root, 3 * vel, tar, upright) == pytest.approx([0.4])  # s = 1.5: clamped error 0
    assert strike_reward(root, -vel, tar, upright) == pytest.approx([0.0])  # moving away: no approach term


def test_strike_reward_tilted_and_toppled():
    root, tar, vel = np.zeros((1, 3)), np.array([[1.0, 0.0, 0.9]]), np.zeros((1, 3))
    tilt60 = quat_from_axis_angle(np.array([1.0, 0, 0]), np.array(math.pi / 3))[None]  # c = 0.5
    assert strike_reward(root, vel, tar, tilt60) == pytest.approx([0.6 * 0.5])
    tilt80 = quat_from_axis_angle(np.array([1.0, 0, 0]), np.array(math.radians(80)))[None]  # c = 0.17 < 0.2
    assert strike_reward(root, vel, tar, tilt80) == pytest.approx([1.0])


def test_strike_obs_uses_absolute_target_height_and_heading_frame():
    state = make_state(root=(1.0, 1.0, 0.9), yaw=math.pi / 2)
    sim = FakeSim(state)
    sim.target.pos[:] = [1.0, 3.0, 0.9]
    sim.target.quat[:] = quat_about_z(np.array(math.pi / 2))
    sim.target.lin_vel[:] = [0.0, 1.0, 0.0]
    sim.target.ang_vel[:] = [1.0, 0.0, 0.0]
    obs = StrikeTask(1).observe(state, sim)[0]
    assert obs.shape == (15,)
    np.testing.assert_allclose(obs[0:3], [2.0, 0.0, 0.9], atol=1e-6)  # z is absolute, not 0
    np.testing.assert_allclose(obs[3:9], [1, 0, 0, 0, 0, 1], atol=1e-6)  # same yaw as the root
    np.testing.assert_allclose(obs[9:12], [1.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(obs[12:15], [0.0, -1.0, 0.0], atol=1e-6)


def test_strike_fails_only_on_target_contact_with_a_non_foot_non_strike_body_in_contact():
    state = make_state(4)
    sim = FakeSim(state)
    task = StrikeTask(4)
    task.reset(np.arange(4), sim, np.random.default_rng(0))
    sim.contacts[0, R_HAND] = True  # the right hand strikes: legal
    sim.forces[0, R_HAND] = 30.0
    sim.contacts[1, spec.BODY_NAMES.index("R_Toe")] = True  # a foot on the target: legal (ref)
    sim.forces[1, spec.BODY_NAMES.index("R_Toe")] = 30.0
    sim.contacts[2, spec.BODY_NAMES.index("L_Hand")] = True  # the left arm is not in the striking set
    sim.forces[2, spec.BODY_NAMES.index("L_Hand")] = 30.0
    sim.forces[3, spec.BODY_NAMES.index("L_Knee")] = 30.0  # a knee on the ground, target untouched: legal
    np.testing.assert_array_equal(task.terminate(state, state, sim), [False, False, True, False])


def test_strike_success_is_the_topple_at_the_last_step():
    state = make_state(2)
    sim = FakeSim(state)
    task = StrikeTask(2)
    task.reset(np.arange(2), sim, np.random.default_rng(0))
    lying = quat_from_axis_angle(np.array([0.0, 1, 0]), np.array(math.pi / 2))
    sim.target.quat[:] = lying
    task.update(state, state, sim, np.random.default_rng(0))
    np.testing.assert_array_equal(task.success(), [True, True])
    sim.target.quat[1] = [0.0, 0.0, 0.0, 1.0]  # env 1's target stands up again before the episode ends
    task.update(state, state, sim, np.random.default_rng(0))
    np.testing.assert_array_equal(task.end_episode(np.arange(2)), [[1, 1], [1, 0]])


def test_strike_placement():
    n = 4000
    state = make_state(n, root=(1.0, 2.0, 0.9))
    sim = FakeSim(state)
    task = StrikeTask(n)
    task.reset(np.arange(n), sim, np.random.default_rng(0))
    dist = np.linalg.norm(sim.target.pos[:, :2] - [1.0, 2.0], axis=-1)
    assert np.all((dist >= 0.5) & (dist <= 10.0))  # ref strike.yaml tar_dist_min / max 0.5 / 10
    assert 0.53 < np.mean(dist <= 1.5) < 0.58  # half near (0.5-1.5 m) + half x 1/9.5 of the far draws
    np.testing.assert_allclose(sim.target.pos[:, 2], 0.9)
    np.testing.assert_allclose(np.linalg.norm(sim.target.quat, axis=-1), 1.0)


# --- long jump --------------------------------------------------------------------------------
def _long_jump(root=(0.0, 0.0, 0.9)):
    state = make_state(root=root)
    sim = FakeSim(state)
    task = LongJumpTask(1)
    task.reset(np.arange(1), sim, np.random.default_rng(0))
    return task, sim


def test_long_jump_goal_line_and_obs():
    task, sim = _long_jump(root=(2.0, 1.0, 0.9))
    np.testing.assert_allclose(task.goal[0], [32.0, 1.0, 1.0])
    assert task.line_x[0] == 22.0
    obs = task.observe(make_state(root=(2.0, 1.0, 0.9), yaw=math.pi / 2), sim)[0]
    np.testing.assert_allclose(obs, [0.0, -30.0, 0.1, 20.0], atol=1e-5)


def test_long_jump_progress_is_clamped():
    task, sim = _long_jump()
    s0 = make_state(root=(5.0, 0.0, 0.9))
    fast = moved(s0, [1.5, 0.0, 0.0])  # 1.5 m closer in one step: progress clamps to 1
    assert task.reward(s0, fast, sim) == pytest.approx([1.0 + 0.01 * 1.5 / DT])
    back = moved(s0, [-0.3, 0.0, 0.0])  # moving away: progress 0, negative velocity term
    assert task.reward(s0, back, sim) == pytest.approx([0.01 * -0.3 / DT])


def test_long_jump_height_and_landing_terms():
    task, sim = _long_jump()
    s0 = make_state(root=(19.0, 0.0, 1.2))
    s1 = make_state(root=(19.0, 0.0, 1.2))
    s1.pos[0, :, 0] = 19.0
    s1.pos[0, spec.BODY_NAMES.index("R_Toe"), 0] = 20.5  # a toe past the line, in the air
    mean_x = s1.pos[0, :, 0].mean()
    assert task.reward(s0, s1, sim) == pytest.approx([0.1 * 1.2])
    assert not task.terminate(s0, s1, sim)[0]
    sim.forces[0, spec.BODY_NAMES.index("R_Toe")] = 40.0
    sim.forces[0, spec.BODY_NAMES.index("L_Toe")] = 40.0  # norm sqrt(3200) = 56.6 > 50: landing
    assert task.reward(s0, s1, sim) == pytest.approx([0.1 * 1.2 + 30 * (mean_x - 20.0)])
    assert task.terminate(s0, s1, sim)[0]


def test_long_jump_success_and_corridor():
    task, sim = _long_jump()
    s = make_state(root=(21.8, 0.0, 0.9))  # all bodies 1.8 m past the line
    sim.forces[0, 3] = 400.0
    task.update(s, s, sim, np.random.default_rng(0))
    assert task.success()[0] and task.length[0] == pytest.approx(1.8)
    task2, sim2 = _long_jump()
    off = make_state(root=(5.0, 0.6, 0.9))
    assert task2.terminate(off, off, sim2)[0]
    task2.update(off, off, sim2, np.random.default_rng(0))
    assert not task2.success()[0]


# --- registry ---------------------------------------------------------------------------------
def test_registry_builds_every_task_with_documented_dims():
    dims = {"direction": 3, "steering": 5, "reach": 3, "strike": 15, "long_jump": 4}
    assert set(TASKS) == set(dims)
    for name, dim in dims.items():
        assert make_task(name, 2).obs_dim == dim
        assert make_task(name, 2, current_pose=True).obs_dim == dim + 6
    assert make_task("direction_facing", 1).name == "steering"


def test_registry_unknown_name_lists_known():
    with pytest.raises(UnknownNameError, match="unknown task 'jump'.*direction.*long_jump"):
        make_task("jump", 1)


# --- prior prompts ----------------------------------------------------------------------------
def test_reach_prior_prompts_right_hand_in_far_slot():
    from tt_deploy.obs.prompts import FAR_SLOT

    state = make_state(2)
    sim = FakeSim(state)
    assert ReachTask(2).prior_targets(state, sim) is None
    task = ReachTask(2, prior=True)
    task.reset(np.arange(2), sim, np.random.default_rng(0))
    t = task.prior_targets(state, sim)
    hand = spec.CONDITIONABLE_BODIES.index("R_Hand")
    np.testing.assert_allclose(t.body_pos[:, FAR_SLOT, hand], task.target)
    assert t.visible[:, FAR_SLOT, hand, 0].all() and t.visible.sum() == 2
    np.testing.assert_allclose(t.time_to_target[:, FAR_SLOT], 50 * DT)  # grace 60 - 10 steps
    np.testing.assert_array_equal(t.token_mask[:, FAR_SLOT], [True, True])


def test_strike_prior_switches_with_phase():
    from tt_deploy.obs.prompts import FAR_SLOT, HEADING_ENTRY

    state = make_state(2)
    sim = FakeSim(state)
    task = StrikeTask(2, prior=True)
    task.reset(np.arange(2), sim, np.random.default_rng(0))
    sim.target.pos[:] = [[0.5, 0.0, 0.9], [0.0, 5.0, 0.9]]  # env 0 near, env 1 far
    task.update(state, state, sim, np.random.default_rng(0))
    t = task.prior_targets(state, sim)
    hand = spec.CONDITIONABLE_BODIES.index("R_Hand")
    np.testing.assert_array_equal(t.visible[:, FAR_SLOT, hand, 0], [True, False])
    np.testing.assert_array_equal(t.visible[:, FAR_SLOT, HEADING_ENTRY], [[False, False], [True, True]])
    np.testing.assert_allclose(t.root_lin_vel[1, FAR_SLOT], [0.0, 1.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(t.time_to_target[:, FAR_SLOT], [0.3, 1.0])
