"""The strike expert: the arm-IK push alone topples a near pillar and not a far one, residual 0 is the push, a
fall or an illegal contact is charged, and training measures and obeys its stop rule."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from tt_deploy.errors import InputError
from tt_deploy.pretrain.strike_expert import (
    BASE_AT,
    DESIGNS,
    Placement,
    StrikePolicy,
    StrikeStopRule,
    make_env,
    measure_strikes,
    train_strike,
)
from tt_deploy.rl.runner import to_torch
from tt_deploy.spec import TASK_OBS_NAME
from tt_deploy.tasks.base import PELVIS_ID
from tt_deploy.tasks.strike import OBJECT

CFG = replace(DESIGNS["v1"], nthread=1)


def test_the_push_alone_topples_a_near_pillar_and_not_one_out_of_reach():
    near = measure_strikes(None, replace(CFG, placement=Placement((0.55, 0.6), (0.0, 0.0))), envs=8)
    far = measure_strikes(None, replace(CFG, placement=Placement((0.8, 0.9), (0.0, 0.0))), envs=8)
    assert near["success"] >= 0.75 and near["fall_rate"] == 0.0
    assert far["success"] == 0.0 and far["fall_rate"] == 0.0  # the arm alone does not reach: what the expert is for
    assert sum(b["envs"] for b in near["by_distance"].values()) == 8


def test_placements_follow_the_config_and_the_base_row_holds_the_ik_posture():
    cfg = replace(CFG, placement=Placement((0.6, 0.8), (-0.5, -0.1)))
    env = make_env(cfg, 16, 0)
    step = env.reset()
    d = env.sim.object_state(OBJECT).pos[:, :2] - env.sim.body_state().pos[:, PELVIS_ID, :2]
    dist, bearing = np.linalg.norm(d, axis=-1), np.arctan2(d[:, 1], d[:, 0])
    assert np.all((dist >= 0.6 - 1e-6) & (dist <= 0.8 + 1e-6)) and np.all((bearing >= -0.5) & (bearing <= -0.1))
    t = env.task
    base = to_torch(step)[TASK_OBS_NAME][:, BASE_AT:].numpy()
    assert np.allclose(base, t.stand, atol=1e-6)  # before start_s: standing
    for _ in range(int((cfg.push.start_s + cfg.push.ramp_s) * 30) + 1):
        step = env.step(to_torch(step)[TASK_OBS_NAME][:, BASE_AT:].numpy())
    base = to_torch(step)[TASK_OBS_NAME][:, BASE_AT:].numpy()
    assert np.allclose(base[:, t.arm_ids], t.arm_goal, atol=1e-6)  # after the ramp: the episode's IK posture
    assert np.ptp(t.arm_goal, axis=0).max() > 0.05  # each placement its own posture


def test_residual_zero_is_the_push_and_a_fall_is_charged():
    env = make_env(CFG, 2, 0)
    policy = StrikePolicy(env.sim.hm.pd_scale)
    step = env.reset()
    obs = to_torch(step)
    with torch.no_grad():
        act = policy.env_action(obs, torch.zeros(2, policy.action_dim)).numpy()
    assert np.allclose(act, obs[TASK_OBS_NAME][:, BASE_AT:].numpy())
    lying = {"root_pos": [0.0, 0.0, 0.3], "root_quat": [0.0, 0.7071068, 0.0, 0.7071068]}  # on its back
    env._start_state = lambda env_ids: {k: np.tile(v, (len(env_ids), 1)) for k, v in lying.items()}
    env.reset()
    charged, ended = [], []
    for _ in range(30):
        step = env.step(np.tile(env.task.stand, (2, 1)))
        failed = step.info["fell"] | step.info["task_terminated"]
        charged += list(step.reward[failed])
        ended += list(step.info["fell"])
    assert any(ended) and charged and max(charged) <= -CFG.reward.fail_w + 1.0


def test_training_measures_and_obeys_its_stop_rule(tmp_path):
    cfg = replace(CFG, num_envs=8, steps=8 * 32 * 2, eval_every=1000,
                  stop_rule=StrikeStopRule(at_steps=8 * 32, envs=4, min_success=1.01))  # fmt: skip
    result = train_strike(cfg, tmp_path / "run")
    verdict = json.loads((tmp_path / "run" / "stop_rule.json").read_text())
    assert result["stop_rule"]["passed"] is False and verdict["rows"][0]["envs"] == 4
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["status"] == "stopped by the stop rule" and run["recipe"] == "tt-deploy strike expert v1"
    assert (tmp_path / "run" / "checkpoints" / "last_policy.safetensors").is_file()
    with pytest.raises(InputError, match="stop rule failed"):
        train_strike(cfg, tmp_path / "run", resume=True)
    with pytest.raises(InputError, match="placement distance"):
        replace(CFG, placement=Placement((0.2, 0.5), (0.0, 0.0)))
