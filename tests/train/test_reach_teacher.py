"""The IK reach teacher (pretraining only): its actions really put the hand on the target in
MuJoCo, it supervises only the prompted arm of reach envs, and its loss pulls toward it."""

import numpy as np
import torch

from tt_deploy import spec
from tt_deploy.models.bfm import BFM
from tt_deploy.models.config import bfm_config
from tt_deploy.sim.mujoco_backend import MujocoSimulator
from tt_deploy.tasks.env import TaskEnv
from tt_deploy.train.policies import PretrainPolicy
from tt_deploy.train.pretrain_task import MODES, PromptCurriculum, PromptTask
from tt_deploy.train.reach_teacher import ArmIK, arm_joint_ids
from tt_deploy.train.runner import to_torch

N = 8


def _reach_env(teacher=True):
    sim = MujocoSimulator(N, nthread=1, seed=3)
    cur = PromptCurriculum(mode_probs=(0.0, 1.0, 0.0), change_steps=(1000, 1001), reach_blend_min=1.0,
                           push_interval_s=0.0)  # fmt: skip
    task = PromptTask(N, cur, teacher=teacher)
    env = TaskEnv(sim, task, seed=3)
    return sim, task, env


def test_ik_actions_hold_the_hand_on_reachable_targets_in_simulation():
    sim, task, env = _reach_env()
    step = env.reset()
    ik = ArmIK(sim.hm)
    qpos = sim.raw_qpos(np.arange(N))
    residual = np.array([ik.solve(qpos[e], spec.BODY_NAMES[task.hand[e]], task.hand_target[e])[2] for e in range(N)])
    start = task.hand_distance(sim.body_state())
    actions = step.extras["teacher_action"]  # zero (rest pose) on every joint the teacher leaves alone
    for _ in range(60):
        env.step(actions)
    end = task.hand_distance(sim.body_state())
    reachable = residual < 0.03
    assert reachable.sum() >= N // 2
    assert np.all(end[reachable] < 0.12), (start, end, residual)
    assert np.all(start[reachable] > end[reachable])


def test_teacher_weights_only_the_prompted_arm_of_reach_envs():
    sim, task, env = _reach_env()
    env.reset()
    task.mode[: N // 2] = MODES.index("idle")
    action, weight = task.teacher(sim.body_state(), sim)
    assert not weight[: N // 2].any()
    for e in range(N // 2, N):
        joints = np.flatnonzero(weight[e])
        assert set(joints) == set(arm_joint_ids(spec.BODY_NAMES[task.hand[e]]))
        assert np.all(np.abs(action[e, joints]) <= 1.0)
    assert _reach_env(teacher=False)[2].reset().extras == {}


def test_teacher_loss_is_zero_at_the_teacher_and_reaches_only_weighted_actions():
    torch.manual_seed(0)
    sim, task, env = _reach_env()
    obs = to_torch(env.reset())
    policy = PretrainPolicy(BFM(bfm_config("small")), teacher_coef=1.0)
    target = obs["teacher_action"].clone()
    mean = target.clone().requires_grad_(True)
    assert policy.aux_loss(obs, mean).item() == 0.0
    mean = (target + 0.5).requires_grad_(True)
    loss = policy.aux_loss(obs, mean)
    loss.backward()
    assert loss.item() > 0
    assert torch.equal(mean.grad != 0, obs["teacher_weight"] > 0)
    assert PretrainPolicy(BFM(bfm_config("small"))).aux_loss(obs, mean) is None
