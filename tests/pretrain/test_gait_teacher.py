"""The SIMBICON gait teacher: alone it walks the MuJoCo humanoid along the command, its state
machine alternates legs on foot contact, and its output is state feedback (no clock)."""

import numpy as np
import pytest

from tt_deploy import spec
from tt_deploy.errors import InputError
from tt_deploy.pretrain.gait_teacher import GaitParams, GaitTeacher, teacher_joint_ids
from tt_deploy.sim.mujoco_backend import MujocoSimulator
from tt_deploy.tasks.base import PELVIS_ID

N = 8


def _walk(steps: int, speed: float = 0.5):
    sim = MujocoSimulator(N, nthread=1, seed=0)
    rng = np.random.default_rng(0)
    sim.reset(root_lin_vel=np.concatenate([rng.uniform(-0.05, 0.05, (N, 2)), np.zeros((N, 1))], -1))
    teacher = GaitTeacher(sim.hm, N)
    walk_dir = np.tile([1.0, 0.0], (N, 1))  # the initial heading
    start = sim.body_state().pos[:, PELVIS_ID, :2].copy()
    actions = np.zeros((N, spec.ACTION_DIM))
    min_height = np.full(N, np.inf)
    for _ in range(steps):
        q, _ = sim.joint_state()
        joints, act = teacher.actions(sim.body_state(), q, sim.contact_forces(), walk_dir, np.full(N, speed))
        actions[:, joints] = act
        sim.step(actions)
        min_height = np.minimum(min_height, sim.body_state().pos[:, PELVIS_ID, 2])
    progress = (sim.body_state().pos[:, PELVIS_ID, :2] - start) @ np.array([1.0, 0.0])
    return sim, teacher, progress, min_height


def test_teacher_alone_walks_forward_without_falling_and_alternates_legs():
    sim, teacher, progress, min_height = _walk(steps=120)  # 4 s from standing
    assert np.all(min_height > 0.5), min_height
    assert np.all(progress > 0.5), progress  # measured 0.9-1.1 m
    assert np.all(teacher.num_switches >= 8), teacher.num_switches  # ~2.7 steps/s, each ended by contact
    assert not teacher.num_timeouts.any()  # every swing ended on swing-foot contact
    assert sim.num_unstable_total == 0


def test_output_is_state_feedback_on_com_velocity():
    """Same FSM state, a sideways COM velocity moves the swing foot target to that side."""
    sim = MujocoSimulator(2, nthread=1, seed=0)
    sim.reset(np.array([1]), root_lin_vel=np.array([0.0, 0.4, 0.0]))
    teacher = GaitTeacher(sim.hm, 2)
    q, _ = sim.joint_state()
    walk_dir = np.tile([1.0, 0.0], (2, 1))
    joints, act = teacher.actions(sim.body_state(), q, sim.contact_forces(), walk_dir, np.ones(2))
    assert act.shape == (2, len(joints)) and np.all(np.abs(act) <= 1.0)
    assert np.array_equal(joints, teacher_joint_ids())
    hip_x = list(joints).index(spec.JOINT_NAMES.index("L_Hip_x"))  # the left leg swings first
    assert act[1, hip_x] > act[0, hip_x] + 0.05  # +y velocity -> left foot placed further to +y


def test_turn_slow_walks_a_command_off_the_heading_slower():
    """turn_slow scales the walked speed by cos(heading error) ** turn_slow: a command 90 deg off the
    heading is walked as speed 0 (turn on the spot), one 60 deg off as half the speed."""
    sim = MujocoSimulator(2, nthread=1, seed=0)
    sim.reset()
    q, _ = sim.joint_state()
    heading = np.array([1.0, 0.0])  # the initial heading

    def act(params, walk_dir, speed):
        teacher = GaitTeacher(sim.hm, 2, params)
        return teacher.actions(sim.body_state(), q, sim.contact_forces(), np.tile(walk_dir, (2, 1)),
                               np.full(2, speed))[1]  # fmt: skip

    side, sixty = np.array([0.0, 1.0]), np.array([0.5, np.sqrt(0.75)])
    slow, plain = GaitParams(turn_slow=1.0), GaitParams(turn_slow=0.0)
    np.testing.assert_allclose(act(slow, side, 1.0), act(plain, side, 0.0), atol=1e-9)
    np.testing.assert_allclose(act(slow, sixty, 0.8), act(plain, sixty, 0.4), atol=1e-9)
    np.testing.assert_allclose(act(slow, heading, 0.8), act(plain, heading, 0.8), atol=1e-9)
    assert not np.allclose(act(slow, side, 1.0), act(plain, side, 1.0))


def test_state_dict_round_trip_and_reset():
    _, teacher, _, _ = _walk(steps=20)
    saved = teacher.state_dict()
    other = GaitTeacher(MujocoSimulator(1, nthread=1).hm, N)
    other.load_state_dict(saved)
    for k, v in saved.items():
        assert np.array_equal(getattr(other, k), v)
    other.reset(np.array([0]))
    assert other.swing_left[0] and other.phase[0] == 0 and other.t_swing[0] == 0.0


def test_wrong_input_shapes_are_rejected_with_the_argument_named():
    sim = MujocoSimulator(2, nthread=1)
    teacher = GaitTeacher(sim.hm, 2)
    q, _ = sim.joint_state()
    with pytest.raises(InputError, match=r"walk_dir must have shape \(2, 2\); got \(2,\)"):
        teacher.actions(sim.body_state(), q, sim.contact_forces(), np.array([1.0, 0.0]), np.ones(2))


def test_pretraining_walk_prompts_carry_the_controller_and_its_labels_walk():
    """PromptTask(gait_weight): walk envs are supervised on the controller's 33 hinges (others not), and
    stepping the env with those labels (DAgger-style: computed on the states the labels produce) walks."""
    from tt_deploy.pretrain.prompt_task import MODES, PromptCurriculum, PromptTask
    from tt_deploy.pretrain.teacher_env import TeacherEnv

    sim = MujocoSimulator(N, nthread=1, seed=1)
    cur = PromptCurriculum(mode_probs=(0.0, 0.0, 1.0), change_steps=(1000, 1001), walk_speed=(0.5, 0.5),
                           push_interval_s=0.0)  # fmt: skip
    task = PromptTask(N, cur, teacher=True, gait_weight=0.5)
    env = TeacherEnv(sim, task, seed=1)
    step = env.reset()
    start = sim.body_state().pos[:, PELVIS_ID, :2].copy()
    task.mode[:2] = MODES.index("idle")  # two envs stand: no supervision there
    step = env.step(step.extras["teacher_action"])  # (the controller must run exactly once a step)
    weight = step.extras["teacher_weight"]
    assert not weight[:2].any()
    assert np.array_equal(np.flatnonzero(weight[2]), np.sort(teacher_joint_ids()))
    assert np.all(weight[2:][:, teacher_joint_ids()] == 0.5)
    for _ in range(90):  # 3 s
        step = env.step(step.extras["teacher_action"])
        assert not step.done[2:].any()
    progress = np.sum((sim.body_state().pos[:, PELVIS_ID, :2] - start) * task.walk_dir, -1)
    assert np.all(progress[2:] > 0.25), progress  # measured 0.34-0.67 m in 3 s from standing (dirs up to 67 deg off)


def test_open_step_turning_yaws_only_the_outer_swing_leg_and_turns_the_body():
    """Open steps: for a left turn only a swinging left leg lands turned (toe-out); a swinging right leg
    lands parallel to the stance foot. In closed loop the pelvis turns toward a command 90 deg to the left
    (stance_yaw_rate off: measured 1.18 rad after 2 s)."""
    sim = MujocoSimulator(2, nthread=1, seed=0)
    sim.reset()
    left = np.tile([0.0, 1.0], (2, 1))  # 90 deg left of the initial heading (+x)
    teacher = GaitTeacher(sim.hm, 2, GaitParams(max_turn=0.2, turn_gain=0.4, stance_yaw_rate=0.0))
    err = np.full(2, np.pi / 2)
    teacher.swing_left[:] = [True, False]
    np.testing.assert_allclose(teacher._turn(err), [0.2, 0.0])
    np.testing.assert_allclose(teacher._turn(-err), [0.0, -0.2])  # a right turn: the right leg opens

    from tt_deploy.tasks.base import root_heading

    def turned(params, steps=60):  # heading (rad) after 2 s of a 0.6 m/s command 90 deg to the left
        sim.reset()
        walker, actions = GaitTeacher(sim.hm, 2, params), np.zeros((2, spec.ACTION_DIM))
        for _ in range(steps):
            q, _ = sim.joint_state()
            joints, act = walker.actions(sim.body_state(), q, sim.contact_forces(), left, np.full(2, 0.6))
            actions[:, joints] = act
            sim.step(actions)
        assert np.all(sim.body_state().pos[:, PELVIS_ID, 2] > 0.6)  # still up
        return root_heading(sim.body_state())

    assert np.all(turned(teacher.p) > 1.1)


def test_stance_yaw_rate_turns_the_pelvis_onto_a_turned_foot_gradually():
    """stance_yaw_rate: the stance hip yaw moves toward its target (0) by at most rate x dt a control step
    instead of snapping; in closed loop the open-step turn with it still turns a 90 deg command within 4 s
    (measured: 0.63 rad after 2 s, 1.54 after 4 s; without the limit 1.18 and 1.60) and stays up."""
    sim = MujocoSimulator(2, nthread=1, seed=0)
    sim.reset()
    q = sim.joint_state()[0].copy()
    hip_z = spec.JOINT_NAMES.index("R_Hip_z")  # the left leg swings first: the right leg stands
    q[:, hip_z] = [0.3, -0.01]  # a foot just planted 0.3 rad turned; one almost aligned

    def target(params):
        t = GaitTeacher(sim.hm, 2, params)
        joints, act = t.actions(sim.body_state(), q, sim.contact_forces(), np.tile([1.0, 0.0], (2, 1)), np.zeros(2))
        j = list(joints).index(hip_z)
        return act[:, j] * t.scale[j] + t.offset[j]

    np.testing.assert_allclose(target(GaitParams(stance_yaw_rate=0.0)), 0.0, atol=1e-9)  # at once
    np.testing.assert_allclose(target(GaitParams(stance_yaw_rate=1.5)), [0.3 - 1.5 * spec.CONTROL_DT, 0.0], atol=1e-9)

    from tt_deploy.tasks.base import root_heading

    walker, actions = GaitTeacher(sim.hm, 2, GaitParams(max_turn=0.2, turn_gain=0.4, stance_yaw_rate=1.0)), np.zeros(
        (2, spec.ACTION_DIM))  # fmt: skip
    sim.reset()
    for _ in range(120):  # 4 s of a 0.6 m/s command 90 deg to the left
        q, _ = sim.joint_state()
        joints, act = walker.actions(sim.body_state(), q, sim.contact_forces(), np.tile([0.0, 1.0], (2, 1)),
                                     np.full(2, 0.6))  # fmt: skip
        actions[:, joints] = act
        sim.step(actions)
    assert np.all(sim.body_state().pos[:, PELVIS_ID, 2] > 0.6)
    assert np.all(root_heading(sim.body_state()) > 1.3), root_heading(sim.body_state())


def test_first_step_on_the_turn_side_makes_a_right_turn_mirror_a_left_turn():
    """After reset the leg on the command's side swings first. The humanoid and the controller are
    mirror-symmetric, so a 90 deg right turn is then the left turn mirrored (measured: heading -1.543 vs
    +1.543 rad after 4 s, both up; always starting with the left leg, every right turn over ~75 deg fell)."""
    from tt_deploy.tasks.base import root_heading

    sim = MujocoSimulator(2, nthread=1, seed=0)

    def turn(direction, params):  # heading (rad) and lowest pelvis after 4 s of a 0.6 m/s command
        sim.reset()
        walker, actions, low = GaitTeacher(sim.hm, 2, params), np.zeros((2, spec.ACTION_DIM)), np.inf
        for step in range(120):
            q, _ = sim.joint_state()
            joints, act = walker.actions(sim.body_state(), q, sim.contact_forces(), np.tile(direction, (2, 1)),
                                         np.full(2, 0.6))  # fmt: skip
            if step == 0:
                first_left = walker.swing_left.copy()
            actions[:, joints] = act
            sim.step(actions)
            low = min(low, sim.body_state().pos[:, PELVIS_ID, 2].min())
        return root_heading(sim.body_state()), low, first_left

    right, left = np.array([0.0, -1.0]), np.array([0.0, 1.0])
    h_left, low_left, first = turn(left, GaitParams())
    assert first.all()
    h_right, low_right, first = turn(right, GaitParams())
    assert not first.any()  # the right leg opens the turn
    np.testing.assert_allclose(h_right, -h_left, atol=0.02)
    assert np.all(h_left > 1.3) and low_right > 0.8, (h_left, low_right)


def test_the_controller_restarts_only_when_it_starts_walking_an_env():
    """PromptTask: an env that becomes a walk prompt after not being walked gets gait.reset (its first step
    chosen toward the new command); one it keeps walking (a new walk direction) keeps its state machine."""
    from tt_deploy.pretrain.prompt_task import MODES, PromptCurriculum, PromptTask
    from tt_deploy.pretrain.teacher_env import TeacherEnv

    sim = MujocoSimulator(4, nthread=1, seed=0)
    task = PromptTask(4, PromptCurriculum(mode_probs=(0.0, 0.0, 1.0)), teacher=True, gait_weight=1.0)
    env = TeacherEnv(sim, task, seed=0)
    env.reset()
    for _ in range(15):
        env.step(np.zeros((4, spec.ACTION_DIM), np.float32))
    assert task.gait.num_switches.sum() > 0 and task.walked.all()
    walk, idle, reach = MODES.index("walk"), MODES.index("idle"), MODES.index("reach")
    task.walked[:] = [False, True, False, True]  # envs 0, 2 were not walked last step; 1, 3 were
    task.mode[:] = [walk, walk, reach, reach]  # 2, 3: reach prompts are not walked
    before = task.gait.state_dict()
    task.gait.fresh[:] = False
    task._restart_gait()
    assert np.array_equal(task.gait.fresh, [True, False, False, False])
    assert np.array_equal(task.gait.num_switches[1:], before["num_switches"][1:])
    assert task.gait.num_switches[0] == 0 and task.gait.t_swing[0] == 0
    assert np.array_equal(task.walked, [True, True, False, False])
    task.mode[:] = idle
    task._restart_gait()
    assert not task.walked.any()


def test_a_command_within_the_deadband_starts_with_the_left_foot():
    sim = MujocoSimulator(3, nthread=1, seed=0)
    sim.reset()
    teacher = GaitTeacher(sim.hm, 3)
    ang = np.array([-0.03, -0.08, 0.03])  # rad off the initial heading (+x): inside, outside, inside the deadband
    q, _ = sim.joint_state()
    teacher.actions(sim.body_state(), q, sim.contact_forces(), np.stack([np.cos(ang), np.sin(ang)], -1), np.ones(3))
    assert np.array_equal(teacher.swing_left, [True, False, True]) and not teacher.fresh.any()
