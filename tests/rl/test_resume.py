"""An interrupted run resumes to exactly the result of an uninterrupted one (same seed)."""

import json

import numpy as np

from tt_deploy.models.checkpoints import load_encoder, state_hash
from tt_deploy.rl.config import PPOConfig
from tt_deploy.rl.env_state import env_state, load_env_state
from tt_deploy.train.task_token import TrainConfig, train_skill


def _cfg(steps):
    ppo = PPOConfig(horizon=8, num_minibatches=2, epochs=2, actor_lr=1e-3, critic_lr=1e-3, action_std=0.05)
    return TrainConfig("strike", num_envs=6, steps=steps, seed=3, episode_seconds=0.5, eval_every=100,
                       eval_envs=2, nthread=1, ppo=ppo)


def test_interrupted_run_resumes_bit_exactly(tmp_path):
    full = tmp_path / "full"
    train_skill(_cfg(6 * 8 * 4), full)  # 4 iterations, episodes end and reset on the way
    part = tmp_path / "part"
    train_skill(_cfg(6 * 8 * 2), part)  # "interrupted" after 2 iterations
    train_skill(_cfg(6 * 8 * 4), part, resume=True)
    a, _ = load_encoder(full / "checkpoints" / "last.safetensors")
    b, info = load_encoder(part / "checkpoints" / "last.safetensors")
    assert info.env_steps == 6 * 8 * 4
    assert state_hash(a) == state_hash(b)
    la = (full / "log.csv").read_text().splitlines()
    lb = (part / "log.csv").read_text().splitlines()
    for name in ("policy_loss", "value_loss", "approx_kl"):  # the learning itself, iteration by iteration
        col = la[0].split(",").index(name)
        assert [r.split(",")[col] for r in la[1:]] == [r.split(",")[col] for r in lb[1:]]
    assert json.loads((part / "run.json").read_text())["freezing"]["bfm_unchanged"]


def test_env_snapshot_restores_a_running_simulation_exactly():
    from tt_deploy.sim.mujoco_backend import MujocoSimulator
    from tt_deploy.tasks.env import TaskEnv
    from tt_deploy.tasks.registry import make_task

    def make():
        task = make_task("strike", 3)  # a scene object and a phase tracker to restore
        return TaskEnv(MujocoSimulator(3, nthread=1, objects=task.objects, seed=1), task, seed=2)

    acts = np.random.default_rng(0).uniform(-0.3, 0.3, (30, 3, 69))
    a = make()
    a.reset()
    for t in range(15):
        a.step(acts[t])
    arrays, meta = env_state(a)
    b = make()
    b.reset()
    load_env_state(b, arrays, meta)
    for t in range(15, 30):
        x, y = a.step(acts[t]), b.step(acts[t])
        np.testing.assert_array_equal(x.inputs["obs"], y.inputs["obs"])
        np.testing.assert_array_equal(x.task_obs, y.task_obs)
        np.testing.assert_array_equal(x.reward, y.reward)
