"""TaskEnv smoke test on the MuJoCo backend: 8 envs x 30 zero-action steps per task."""

import numpy as np
import pytest

from tt_deploy.obs.inputs import input_shapes
from tt_deploy.tasks.env import TaskEnv
from tt_deploy.tasks.registry import TASKS, make_task

backend = pytest.importorskip("tt_deploy.sim.mujoco_backend", reason="MuJoCo backend not available")

N, STEPS = 8, 30


@pytest.mark.parametrize("name", TASKS)
def test_task_env_smoke(name):
    task = make_task(name, N, current_pose=True)
    sim = backend.MujocoSimulator(N, objects=task.objects, seed=0)
    env = TaskEnv(sim, task, episode_seconds=0.5, seed=0)  # 15-step episodes: every env times out twice
    out = env.reset()
    shapes = input_shapes(N)
    lengths = []
    for _ in range(STEPS):
        out = env.step(np.zeros((N, 69), dtype=np.float32))
        for key, shape in shapes.items():
            assert out.inputs[key].shape == shape, key
            assert out.inputs[key].dtype == (bool if key.endswith(("mask", "masks")) else np.float32), key
            if out.inputs[key].dtype == np.float32:
                assert np.all(np.isfinite(out.inputs[key])), key
        assert out.task_obs.shape == (N, task.obs_dim) and out.task_obs.dtype == np.float32
        assert np.all(np.isfinite(out.task_obs))
        assert out.reward.shape == (N,) and np.all(np.isfinite(out.reward))
        lengths.extend(out.info["episode"]["length"].tolist())
    assert len(lengths) >= N  # every env finished at least one episode (timeout or earlier)
    assert max(lengths) <= 15
