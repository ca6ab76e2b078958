"""The reference evaluation protocol (docs/tasks.md "Evaluation protocol") at hand-built states."""

import numpy as np
import pytest
from task_helpers import FakeSim, make_state, moved

from tt_deploy import spec
from tt_deploy.tasks.direction import DirectionTask
from tt_deploy.tasks.long_jump import LongJumpTask
from tt_deploy.tasks.reach import ReachTask
from tt_deploy.tasks.registry import resolve_task_name
from tt_deploy.tasks.steering import SteeringTask

DT = spec.CONTROL_DT
R_HAND = spec.BODY_NAMES.index("R_Hand")


def _run_direction(task, sim, speeds_per_step):
    """Step `task` with the root moving along +x at the given speed (m/s) each step."""
    rng = np.random.default_rng(0)
    state = sim.state
    for v in speeds_per_step:
        nxt = moved(state, [v * DT, 0.0, 0.0])
        sim.state = nxt
        task.update(state, nxt, sim, rng)
        state = nxt
    return state


def test_direction_success_is_counted_per_goal_segment():
    """Two goals of 199 steps each (+x at 1 m/s): goal 1 held, goal 2 missed once after its grace ->
    segments 1 of 2 passed; the stricter per-episode rule says failed."""
    sim = FakeSim(make_state(1))
    task = DirectionTask(1)
    task.reset(np.arange(1), sim, np.random.default_rng(0))
    task.tar_dir[:] = [1.0, 0.0]
    task.tar_speed[:] = 1.0
    task.goals = type(task.goals)(random_prob=0.0, max_turn=0.0, max_speed_change=0.0, stop_prob=0.0,
                                  speed_range=(1.0, 1.0))
    speeds = [1.0] * 199 + [1.0] * 70 + [0.5] + [1.0] * 30  # step 270 (71 steps into goal 2): e_rel 0.5
    _run_direction(task, sim, speeds)
    assert task.progress[0] == 300
    total, passed = task.end_episode(np.arange(1))
    assert (total[0], passed[0]) == (2, 1)
    assert not task.success()[0]


def test_direction_grace_is_60_steps_after_each_goal():
    """A slow step inside the first 60 steps of a goal is not measured."""
    sim = FakeSim(make_state(1))
    task = DirectionTask(1)
    task.reset(np.arange(1), sim, np.random.default_rng(0))
    task.tar_dir[:], task.tar_speed[:] = [1.0, 0.0], 1.0
    _run_direction(task, sim, [0.0] * 59 + [1.0] * 41)  # steps 1..59 slow, measured from step 60 on
    assert tuple(x[0] for x in task.end_episode(np.arange(1))) == (1, 1)


def test_a_segment_without_a_measured_step_is_not_counted():
    sim = FakeSim(make_state(1))
    task = DirectionTask(1)
    task.reset(np.arange(1), sim, np.random.default_rng(0))
    task.tar_dir[:], task.tar_speed[:] = [1.0, 0.0], 1.0
    _run_direction(task, sim, [0.0] * 30)  # the episode ends inside the grace
    assert tuple(x[0] for x in task.end_episode(np.arange(1))) == (0, 0)


def test_steering_needs_facing_within_45_deg_after_80_steps():
    sim = FakeSim(make_state(2))
    task = SteeringTask(2)
    task.reset(np.arange(2), sim, np.random.default_rng(0))
    task.tar_dir[:], task.tar_speed[:] = [1.0, 0.0], 1.0
    task.tar_facing[:] = [[np.cos(0.5), np.sin(0.5)], [0.0, 1.0]]  # 29 deg / 90 deg from the heading (+x)
    _run_direction(task, sim, [1.0] * 100)
    total, passed = task.end_episode(np.arange(2))
    np.testing.assert_array_equal(total, [1, 1])
    np.testing.assert_array_equal(passed, [1, 0])


def test_reach_measures_strictly_after_60_steps_and_counts_each_target():
    """The hand is 0.3 m off at step 60 (not measured, ref `reach_steps < progress`) and on target after."""
    state = make_state(1)
    sim = FakeSim(state)
    task = ReachTask(1)
    task.reset(np.arange(1), sim, np.random.default_rng(0))
    task.target[:] = [0.5, 0.0, 1.0]
    task.change_at[:] = 100
    rng = np.random.default_rng(0)
    for step in range(1, 101):
        s = make_state(1)
        s.pos[0, R_HAND] = [0.5, 0.3 if step <= 60 else 0.1, 1.0]
        sim.state = s
        task.update(s, s, sim, rng)
    # step 100 set a new target (segment 1 booked: passed); its own segment has no measured step yet
    assert (task.seg_total[0], task.seg_passed[0]) == (1, 1)
    assert task.set_at[0] == 100 and 190 <= task.change_at[0] < 220


def test_reach_fails_a_segment_once_the_hand_leaves_after_the_grace():
    state = make_state(1)
    sim = FakeSim(state)
    task = ReachTask(1)
    task.reset(np.arange(1), sim, np.random.default_rng(0))
    task.target[:] = [0.5, 0.0, 1.0]
    task.change_at[:] = 1000
    rng = np.random.default_rng(0)
    for step in range(1, 81):
        s = make_state(1)
        s.pos[0, R_HAND] = [0.5, 0.25 if step == 61 else 0.1, 1.0]  # 0.25 m at the first measured step
        task.update(s, s, sim, rng)
    assert tuple(x[0] for x in task.end_episode(np.arange(1))) == (1, 0)


def _long_jump_task():
    sim = FakeSim(make_state(1, root=(0.0, 0.0, 0.9)))
    task = LongJumpTask(1)
    task.reset(np.arange(1), sim, np.random.default_rng(0))
    return task, sim


@pytest.mark.parametrize("case, expected", [
    ("standing", False),
    ("knee 60 N", True),  # > 50 N on non-foot bodies
    ("knee 30 N + hand 30 N", True),  # the total counts
    ("feet 400 N", False),  # feet carry the body: never a termination before the line
    ("head low", True),  # a non-foot body below its termination height
    ("out of corridor", True),
])
def test_long_jump_termination_rules(case, expected):
    task, sim = _long_jump_task()
    state = make_state(1, root=(0.0, 0.0, 0.9))
    if case == "knee 60 N":
        sim.forces[0, spec.BODY_NAMES.index("L_Knee")] = 60.0
    elif case == "knee 30 N + hand 30 N":
        sim.forces[0, spec.BODY_NAMES.index("L_Knee")] = 30.0
        sim.forces[0, spec.BODY_NAMES.index("R_Hand")] = 30.0
    elif case == "feet 400 N":
        sim.forces[0, spec.BODY_NAMES.index("L_Ankle")] = 400.0
    elif case == "head low":
        state.pos[0, spec.BODY_NAMES.index("Head"), 2] = 0.25
    elif case == "out of corridor":
        state = make_state(1, root=(0.0, 0.6, 0.9))
    assert bool(task.terminate(state, state, sim)[0]) is expected


def test_long_jump_success_is_a_jump_over_15_m():
    task, sim = _long_jump_task()
    state = make_state(1, root=(21.6, 0.0, 0.9))  # every body 1.6 m past the line at 20 m
    sim.forces[0, spec.BODY_NAMES.index("L_Ankle")] = 400.0  # landing: past the line with > 50 N
    task.update(state, state, sim, np.random.default_rng(0))
    assert task.terminate(state, state, sim)[0] and task.success()[0]
    assert tuple(x[0] for x in task.end_episode(np.arange(1))) == (1, 1)


def test_reference_code_names_are_aliases_that_say_so(caplog):
    assert resolve_task_name("direction") == "direction"
    with caplog.at_level("WARNING"):
        assert resolve_task_name("direction_facing") == "steering"
    assert "direction_facing" in caplog.text and "paper's Steering" in caplog.text


def test_the_stride_rule_averages_the_speed_over_one_stride_and_is_booked_beside_the_reference_rule():
    """Root speed 1 m/s +- 40 % within every 20-step stride: the per-step reference rule fails, the
    stride rule (mean over the last 20 steps = exactly 1 m/s) passes; a stride-long slow-down fails both."""
    sim = FakeSim(make_state(2))
    task = DirectionTask(2)
    task.reset(np.arange(2), sim, np.random.default_rng(0))
    task.tar_dir[:], task.tar_speed[:] = [1.0, 0.0], 1.0
    wobble = 1.0 + 0.4 * np.sin(2 * np.pi * np.arange(199) / 20)  # zero mean over any 20 consecutive steps
    rng = np.random.default_rng(0)
    state = sim.state
    for t, w in enumerate(wobble):
        slow = 0.5 if 100 <= t < 130 else 1.0  # env 1 walks at half speed for 1 s after its grace
        nxt = moved(state, np.array([[w * DT, 0.0, 0.0], [w * slow * DT, 0.0, 0.0]])[:, None, :])
        sim.state = nxt
        task.update(state, nxt, sim, rng)
        state = nxt
    total, passed = task.end_episode(np.arange(2))
    assert total.tolist() == [1, 1] and passed.tolist() == [0, 0]  # the reference rule: both fail
    stride = task.extra_books["stride"]
    assert stride.total.tolist() == [1, 1] and stride.passed.tolist() == [1, 0]
