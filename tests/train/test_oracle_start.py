"""Oracle-distilled start: the reach oracle's labels, and a run that distils it before PPO."""

import csv
import json
from dataclasses import replace

import numpy as np
import pytest

from tt_deploy.errors import InputError, UnknownNameError
from tt_deploy.sim.arm_ik import arm_joint_ids
from tt_deploy.train.oracles import ReachArmOracle, make_oracle
from tt_deploy.train.task_token import TrainConfig, _make_env, default_ppo, train_skill


def test_the_reach_oracle_moves_only_the_right_arm_toward_the_ik_solution():
    env = _make_env(TrainConfig(skill="reach", prior=True, goals="bfm", nthread=1), 3, seed=1)
    env.reset()
    base = np.full((3, 69), 0.1, np.float32)
    target, weight = ReachArmOracle(blend=0.5).label(env, None, base)
    arm = arm_joint_ids("R_Hand")
    others = np.setdiff1d(np.arange(69), arm)
    np.testing.assert_array_equal(target[:, others], base[:, others])
    assert not np.allclose(target[:, arm], base[:, arm])
    full, _ = ReachArmOracle(blend=1.0).label(env, None, base)  # halfway: the mean of the BFM's arm and the IK arm
    np.testing.assert_allclose(target[:, arm], 0.5 * (full[:, arm] + base[:, arm]), atol=1e-6)
    assert weight[arm].tolist() == [30.0] * 6 and weight[others].max() == 1.0


def test_tasks_without_an_oracle_and_methods_without_an_encoder_are_refused():
    with pytest.raises(UnknownNameError, match="direction"):
        make_oracle("direction")
    with pytest.raises(InputError, match="pure-rl"):
        TrainConfig(skill="reach", method="pure-rl", oracle_start=True)
    with pytest.raises(InputError, match="blend"):
        ReachArmOracle(blend=0.0)


def test_an_oracle_start_distils_into_the_encoder_only_and_is_booked(tmp_path):
    cfg = TrainConfig(skill="reach", prior=True, goals="bfm", num_envs=8, steps=256, eval_envs=2, nthread=1,
                      oracle_start=True, oracle_rounds=2, oracle_steps=3)  # fmt: skip
    summary = train_skill(cfg, tmp_path / "reach")
    start = summary["oracle_start"]
    assert start["env_steps"] == 2 * 3 * 64 and [r["round"] for r in start["rounds"]] == [1, 2]
    assert start["oracle"]["name"] == "reach-arm-ik"
    assert summary["freezing"]["bfm_unchanged"]
    assert summary["freezing"]["trained_state_hash_before"] != summary["freezing"]["trained_state_hash_after"]
    assert summary["env_steps"] == start["env_steps"]  # within the budget already: no PPO iteration ran
    # evaluations use the same episodes every time: the unchanged encoder scores as its last round did
    assert summary["final_eval"]["return"] == pytest.approx(start["rounds"][-1]["eval_return"])
    rows = list(csv.DictReader(open(tmp_path / "reach" / "log.csv")))
    assert [r["oracle_round"] for r in rows] == ["1", "2"]
    assert json.loads((tmp_path / "reach" / "run.json").read_text())["oracle_start"]["rounds"][1]["round"] == 2


def test_ppo_after_an_oracle_start_warms_the_critic_up_and_moves_the_encoder_gently():
    plain = TrainConfig(skill="reach").ppo_config()
    warm = TrainConfig(skill="reach", oracle_start=True).ppo_config()
    assert plain.critic_warmup == 0 and warm.critic_warmup == 20
    assert warm.actor_lr < plain.actor_lr
    # an explicit setting (here --actor-lr) keeps the oracle start's critic warm-up; before, it silently dropped it
    explicit = TrainConfig(skill="reach", oracle_start=True, ppo=replace(default_ppo("task-token"), actor_lr=1e-4))
    assert explicit.ppo_config().critic_warmup == 20 and explicit.ppo_config().actor_lr == 1e-4
    finetune = TrainConfig(skill="reach", method="finetune", oracle_start=True).ppo_config()
    assert finetune.actor_lr == TrainConfig(skill="reach", method="finetune").ppo_config().actor_lr  # never raised


def test_an_oracle_started_encoder_keeps_its_input_statistics_and_the_critic_learns_its_own():
    import torch

    from tt_deploy.models.checkpoints import default_bfm
    from tt_deploy.spec import TASK_OBS_NAME
    from tt_deploy.train.task_token import build_policy

    bfm, _ = default_bfm()
    obs = {"obs": torch.randn(16, 358), TASK_OBS_NAME: 5 + torch.randn(16, 3)}
    for oracle_start, moves in ((True, False), (False, True)):
        policy = build_policy(TrainConfig(skill="reach", oracle_start=oracle_start), bfm, 3)
        enc, critic = policy.encoder.norm.mean.clone(), [b.clone() for b in policy.critic.buffers()]
        policy.update_normalizers(obs)
        assert (not torch.equal(enc, policy.encoder.norm.mean)) == moves
        assert any(not torch.equal(a, b) for a, b in zip(critic, policy.critic.buffers(), strict=True))


@pytest.fixture(scope="module")
def finetune_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("finetune") / "direction"
    train_skill(TrainConfig(skill="direction", method="finetune", prior=True, goals="bfm", num_envs=8, steps=256,
                            eval_envs=2, nthread=1), out)  # fmt: skip
    return out


def test_a_policy_oracle_labels_with_the_finetuned_bfms_action_not_the_frozen_ones(finetune_run):
    import torch

    from tt_deploy.models.checkpoints import default_bfm
    from tt_deploy.rl.runner import to_torch

    oracle = make_oracle("direction", finetune_run)
    env = _make_env(TrainConfig(skill="direction", prior=True, goals="bfm", nthread=1), 3, seed=1)
    step = env.reset()
    target, weight = oracle.label(env, step, None)
    assert target.shape == (3, 69) and weight.tolist() == [1.0] * 69
    bfm, _ = default_bfm()
    with torch.no_grad():
        frozen = torch.clamp(bfm(to_torch(step)), -1, 1).numpy()
    assert 0 < np.abs(target - frozen).max() < 0.5  # finetuning moved the BFM a little
    assert oracle.describe()["method"] == "finetune" and oracle.describe()["checkpoint"] == "best_policy.safetensors"
    with pytest.raises(InputError, match="trained for 'direction', not 'steering'"):
        make_oracle("steering", finetune_run)


def test_an_oracle_start_from_a_finetune_run_distils_its_policy_into_the_token(finetune_run, tmp_path):
    with pytest.raises(InputError, match="oracle_start"):
        TrainConfig(skill="direction", oracle_policy=str(finetune_run))
    cfg = TrainConfig(skill="direction", prior=True, goals="bfm", num_envs=8, steps=256, eval_envs=2, nthread=1,
                      oracle_start=True, oracle_rounds=1, oracle_steps=3, oracle_policy=str(finetune_run))  # fmt: skip
    summary = train_skill(cfg, tmp_path / "direction")
    assert summary["oracle_start"]["oracle"]["name"] == "policy"
    assert summary["oracle_start"]["oracle"]["run"].endswith("direction")
    assert "eval_stride_success_rate" in summary["oracle_start"]["rounds"][0]
    assert summary["freezing"]["bfm_unchanged"]
