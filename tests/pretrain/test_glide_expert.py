"""The glide expert: a residual on the walking controller, its reward terms, stop rule and resume guards."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from tt_deploy import spec
from tt_deploy.errors import InputError
from tt_deploy.pretrain.gait_teacher import GaitTeacher
from tt_deploy.pretrain.glide_expert import (
    COMMAND_DIM,
    GlideConfig,
    GlidePolicy,
    StopRule,
    make_env,
    residual_joint_ids,
    train_glide,
)
from tt_deploy.rl.runner import to_torch
from tt_deploy.spec import TASK_OBS_NAME

N = 4


def _cfg(**kw):
    return replace(GlideConfig(num_envs=N, nthread=1), **kw)


def test_the_task_obs_carries_the_controllers_own_action_and_zero_residual_is_the_controller():
    env = make_env(_cfg(), N, seed=3)
    ref_sim = make_env(_cfg(), N, seed=3).sim  # same start, driven by a bare controller
    gait = GaitTeacher(ref_sim.hm, N)
    step = env.reset()
    policy = GlidePolicy(env.sim.hm.pd_scale)
    for _ in range(20):
        obs = to_torch(step)
        ids, act = gait.actions(ref_sim.body_state(), ref_sim.joint_state()[0], ref_sim.contact_forces(),
                                env.task.tar_dir, env.task.tar_speed)  # fmt: skip
        np.testing.assert_allclose(obs[TASK_OBS_NAME][:, COMMAND_DIM:][:, ids].numpy(), act, atol=1e-6)
        zero = policy.env_action(obs, torch.zeros(N, policy.action_dim)).numpy()
        full = np.zeros((N, spec.ACTION_DIM), np.float32)
        full[:, ids] = act
        ref_sim.step(full)
        step = env.step(zero)
    np.testing.assert_allclose(env.sim.body_state().pos, ref_sim.body_state().pos, atol=1e-5)


def test_the_residual_is_in_radians_on_its_joints_and_the_rate_term_sees_it():
    env = make_env(_cfg(), N, seed=0)
    step = env.reset()
    policy = GlidePolicy(env.sim.hm.pd_scale, residual_rad=0.3)
    ids = residual_joint_ids()
    assert policy.action_dim == len(ids) == 59
    obs = to_torch(step)
    r = torch.full((N, policy.action_dim), 0.1)
    joint = policy.env_action(obs, r) - obs[TASK_OBS_NAME][:, COMMAND_DIM:]
    np.testing.assert_allclose((joint[:, ids] * torch.as_tensor(env.sim.hm.pd_scale[ids])).numpy(), 0.1, rtol=1e-5)
    assert torch.count_nonzero(joint[:, np.setdiff1d(np.arange(spec.ACTION_DIM), ids)]) == 0
    env.step(policy.env_action(obs, r).numpy())
    assert np.allclose(env.task.terms["rate"], 0.1**2 / 0.3**2, rtol=1e-3)  # from 0 to 0.1 rad on every joint
    # the mean residual stays inside its bound, however large the MLP's output
    with torch.no_grad():
        policy.actor[-1].bias.fill_(100.0)
    with torch.no_grad():
        assert float(policy.action_mean(obs).abs().max()) <= 0.3 + 1e-6


def test_stop_rule_fails_on_swing_or_falls_at_its_speeds_only():
    rule = StopRule()
    good = {"command": 0.5, "swing": 0.08, "fall_rate": 0.0}
    assert rule.verdict([good, {**good, "command": 0.7}, {**good, "command": 1.0, "swing": 0.5}])["passed"]
    assert not rule.verdict([good, {**good, "command": 0.7, "swing": 0.12}])["passed"]
    assert not rule.verdict([{**good, "fall_rate": 0.2}, {**good, "command": 0.7}])["passed"]


def test_a_failed_stop_rule_blocks_more_training_and_resume_checks_its_settings(tmp_path):
    small = StopRule(at_steps=N * 32, envs=2, seconds=0.5, max_swing=-1.0)  # cannot pass
    cfg = _cfg(steps=N * 32, eval_every=1000, stop_rule=small)
    out = tmp_path / "glide"
    result = train_glide(cfg, out)
    verdict = json.loads((out / "stop_rule.json").read_text())
    assert not result["stop_rule"]["passed"] and not verdict["passed"] and verdict["env_steps"] == N * 32
    assert json.loads((out / "run.json").read_text())["status"] == "stopped by the stop rule"
    with pytest.raises(InputError, match="stop rule failed"):
        train_glide(replace(cfg, steps=N * 64), out, resume=True)
    with pytest.raises(InputError, match="other settings"):
        train_glide(replace(cfg, residual_rad=0.2), out, resume=True)
    (out / "run.json").unlink()
    with pytest.raises(InputError, match="no run.json"):
        train_glide(cfg, out, resume=True)


def test_a_warm_start_carries_the_policy_and_its_hash_into_the_new_run(tmp_path):
    from tt_deploy.pretrain.glide_expert import DESIGNS, build_runner, load_policy_weights

    cfg = _cfg(steps=N * 32, eval_every=1000, stop_rule=StopRule(at_steps=10**9))
    train_glide(cfg, tmp_path / "v1")
    weights = tmp_path / "v1" / "checkpoints" / "last_policy.safetensors"
    v2 = replace(DESIGNS["v2"], num_envs=N, nthread=1, init_policy=str(weights))
    runner = build_runner(v2, tmp_path / "v2")
    for k, v in load_policy_weights(weights).items():
        assert torch.equal(runner.policy.state_dict()[k], v)
    assert DESIGNS["v2"].goals.speed_range == (0.3, 1.0) and DESIGNS["v2"].reward.glide_w == 1.0
    with pytest.raises(InputError, match="not a readable expert policy"):
        load_policy_weights(tmp_path / "v1" / "run.json")
