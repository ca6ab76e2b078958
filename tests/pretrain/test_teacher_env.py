"""TeacherEnv: the pretraining labels live in the lab's env, and a driven env executes the teacher's row."""

import numpy as np

from tt_deploy import spec
from tt_deploy.pretrain.prompt_task import MODES, PromptCurriculum, PromptTask
from tt_deploy.pretrain.teacher_env import TEACHER_ACTION, TEACHER_WEIGHT, TeacherEnv
from tt_deploy.rl.ppo import SAMPLE_WEIGHT
from tt_deploy.sim.mujoco_backend import MujocoSimulator
from tt_deploy.tasks.env import TaskEnv

N = 4


def _env(cls=TeacherEnv, drive=1.0):
    task = PromptTask(N, PromptCurriculum(mode_probs=(0.0, 0.0, 1.0), push_interval_s=0.0), teacher=True,
                      gait_weight=1.0, gait_drive=drive)  # fmt: skip
    return cls(MujocoSimulator(N, nthread=1, seed=4), task, seed=4), task


def test_driven_walks_execute_the_controller_row_and_weigh_zero_for_the_policy_gradient():
    env, task = _env()
    step = env.reset()
    assert (task.mode == MODES.index("walk")).all() and task.driven.all()
    assert step.extras[SAMPLE_WEIGHT].tolist() == [0.0] * N
    ref, _ = _env()
    ref_step = ref.reset()
    for _ in range(5):  # the policy's actions are ignored where the controller drives
        step = env.step(np.full((N, spec.ACTION_DIM), 0.7, np.float32))
        ref_step = ref.step(ref_step.extras[TEACHER_ACTION])
    np.testing.assert_array_equal(env.sim.body_state().pos, ref.sim.body_state().pos)


def test_undriven_envs_execute_the_policy_and_the_shared_env_carries_no_labels():
    env, task = _env(drive=0.0)
    step = env.reset()
    assert not task.driven.any() and SAMPLE_WEIGHT not in step.extras
    assert step.extras[TEACHER_WEIGHT].shape == (N, spec.ACTION_DIM)
    plain, _ = _env(TaskEnv, drive=0.0)
    assert plain.reset().extras == {}
    zeros = np.zeros((N, spec.ACTION_DIM), np.float32)
    env.step(zeros), plain.step(zeros)
    np.testing.assert_array_equal(env.sim.body_state().pos, plain.sim.body_state().pos)
