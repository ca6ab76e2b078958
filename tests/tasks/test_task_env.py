"""TaskEnv rules (clip, timeout, auto-reset, fall rule, episode info) on the physics-free FakeSim."""

import numpy as np
import pytest
from task_helpers import FakeSim, make_state

from tt_deploy import spec
from tt_deploy.errors import InputError
from tt_deploy.obs.inputs import input_shapes
from tt_deploy.sim.base import Simulator
from tt_deploy.tasks.env import TaskEnv
from tt_deploy.tasks.registry import make_task


class RecordingSim(FakeSim):
    def __init__(self, state):
        super().__init__(state)
        self.actions, self.resets = [], []

    def step(self, actions):
        self.actions.append(actions.copy())

    def reset(self, env_ids=None, **kw):
        self.resets.append(np.asarray(env_ids).copy())


def _env(n=4, task="direction", seconds=0.2, **kw):
    sim = RecordingSim(make_state(n))
    return TaskEnv(sim, make_task(task, n), episode_seconds=seconds, **kw), sim


def test_reset_shapes_and_dtypes():
    env, _ = _env(task="reach")
    out = env.reset()
    for name, shape in input_shapes(4).items():
        assert out.inputs[name].shape == shape, name
        assert out.inputs[name].dtype == (bool if name.endswith(("mask", "masks")) else np.float32), name
    assert out.task_obs.shape == (4, 3) and out.task_obs.dtype == np.float32
    assert out.reward.dtype == np.float32 and not out.done.any()


def test_actions_clipped_and_validated():
    env, sim = _env()
    env.reset()
    env.step(np.full((4, spec.ACTION_DIM), 3.0))
    assert sim.actions[-1].max() == 1.0
    with pytest.raises(InputError, match=r"actions: expected shape \(4, 69\)"):
        env.step(np.zeros((4, 68)))


def test_timeout_auto_resets_and_reports_episode():
    env, sim = _env(seconds=0.2)  # 6 control steps
    env.reset()
    for _ in range(5):
        out = env.step(np.zeros((4, 69)))
        assert not out.done.any()
    out = env.step(np.zeros((4, 69)))
    assert out.done.all() and out.info["timeout"].all() and not out.info["fell"].any()
    np.testing.assert_array_equal(out.info["episode"]["length"], [6] * 4)
    np.testing.assert_array_equal(sim.resets[-1], np.arange(4))
    assert np.all(env.steps == 0) and np.all(env.task.progress == 0)


def test_fall_rule_needs_contact_and_low_body_after_grace():
    env, sim = _env(n=3, seconds=10.0)
    env.reset()
    sim.state.pos[:, spec.BODY_NAMES.index("Head"), 2] = [0.25, 0.25, 1.5]  # below 0.3 m in envs 0, 1
    sim.forces[[0, 2], spec.BODY_NAMES.index("L_Hand")] = 20.0  # non-foot contact in envs 0, 2
    assert not env.step(np.zeros((3, 69))).done.any()  # grace
    assert not env.step(np.zeros((3, 69))).done.any()
    out = env.step(np.zeros((3, 69)))
    np.testing.assert_array_equal(out.info["fell"], [True, False, False])
    np.testing.assert_array_equal(out.info["episode"]["env_ids"], [0])
    assert not out.info["episode"]["success"][0]


def test_foot_contact_low_is_not_a_fall():
    env, sim = _env(n=1, seconds=10.0)
    env.reset()
    sim.state.pos[:, spec.BODY_NAMES.index("L_Toe"), 2] = 0.02
    sim.forces[:, spec.BODY_NAMES.index("L_Toe")] = 500.0
    for _ in range(5):
        assert not env.step(np.zeros((1, 69))).done.any()


def test_strike_requires_scene_object():
    class NoObjects(FakeSim):
        object_state = Simulator.object_state

    sim = NoObjects(make_state(2))
    with pytest.raises(InputError, match="objects=\\('strike_target',\\)"):
        TaskEnv(sim, make_task("strike", 2))


def test_obs_noise_changes_obs_only():
    env, _ = _env(obs_noise=0.1)
    clean, _ = _env()
    a, b = env.reset(), clean.reset()
    assert not np.allclose(a.inputs["obs"], b.inputs["obs"])
    np.testing.assert_array_equal(a.inputs["terrain"], b.inputs["terrain"])


def test_prior_targets_reach_the_bfm_inputs():
    sim = RecordingSim(make_state(2))
    out = TaskEnv(sim, make_task("reach", 2, prior=True)).reset()
    np.testing.assert_array_equal(out.inputs["masked_mimic_target_poses_masks"][:, 10], [True, True])
    assert not out.inputs["masked_mimic_target_poses_masks"][:, :10].any()
    hidden = _env(n=2, task="reach")[0].reset()
    assert not hidden.inputs["masked_mimic_target_poses_masks"].any()


def test_make_task_for_picks_current_pose_from_the_recorded_width():
    import pytest

    from tt_deploy.errors import InputError
    from tt_deploy.tasks.registry import make_task_for

    assert make_task_for("reach", 2, 3).obs_dim == 3
    assert make_task_for("reach", 2, 9).current_pose
    assert make_task_for("strike", 2, None).obs_dim == 15
    with pytest.raises(InputError, match="4-dim task observation"):
        make_task_for("reach", 2, 4)
