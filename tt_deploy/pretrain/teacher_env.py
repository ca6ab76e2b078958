"""The pretraining environment: a TaskEnv whose prompt task also labels actions with its teachers.

Why a wrapper: the teachers (IK arm, walking controller) exist only to make the embedded BFM, so the
shared layers (tasks/, rl/) know nothing of them. Each observation carries the task's labels as
training extras - `teacher_action` (N, 69) and `teacher_weight` (N, 69), what ClonePPO (below) and DAgger clone -
and where the task lets its walking controller drive an env, the controller's whole action row is
executed instead of the policy's and the sample's policy-gradient weight (`rl.ppo.SAMPLE_WEIGHT`) is 0,
so PPO only clones it (rest pose, 0, on joints the controller does not label: the walking controller
alone keeps 87-100 % of walks up that way, but with the BFM's arms only ~20 %).
"""

from __future__ import annotations

import numpy as np
import torch

from tt_deploy.rl.ppo import PPO, SAMPLE_WEIGHT
from tt_deploy.tasks.env import EnvStep, TaskEnv

TEACHER_ACTION, TEACHER_WEIGHT = "teacher_action", "teacher_weight"


class TeacherEnv(TaskEnv):
    """TaskEnv over a PromptTask: `task.teacher(state, sim) -> (action, weight[, drive]) | None` labels each
    observation, and `task.driven` / `task.driven_action` (task state: a resume restores them) say which
    rows the next step executes for the teacher."""

    def step(self, actions: np.ndarray) -> EnvStep:
        if self.task.driven.any():
            actions = np.where(self.task.driven[:, None], self.task.driven_action, np.asarray(actions))
        return super().step(actions)

    def _observe(self, state, reward, done, info) -> EnvStep:
        step = super()._observe(state, reward, done, info)
        labels = self.task.teacher(state, self.sim)
        if labels is not None:
            step.extras = {TEACHER_ACTION: labels[0].astype(np.float32, copy=False),
                           TEACHER_WEIGHT: labels[1].astype(np.float32, copy=False)}
            if len(labels) > 2:
                step.extras[SAMPLE_WEIGHT] = (~np.asarray(labels[2], dtype=bool)).astype(np.float32)
        return step


class ClonePPO(PPO):
    """PPO plus behaviour cloning toward the teacher's labels where it gives any: `coef` x the
    weighted squared error between the policy's mean action and `teacher_action`, summed over joints."""

    def __init__(self, policy, config, seed: int = 0, *, coef: float = 0.0):
        super().__init__(policy, config, seed=seed)
        self.coef = float(coef)

    def auxiliary_loss(self, obs: dict[str, torch.Tensor], mean: torch.Tensor) -> torch.Tensor | None:
        if self.coef <= 0 or TEACHER_ACTION not in obs:
            return None
        err = obs[TEACHER_WEIGHT] * (mean - obs[TEACHER_ACTION]) ** 2
        return self.coef * err.sum(-1).mean()
