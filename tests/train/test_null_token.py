"""The null token: a fresh encoder starts where the BFM acts as without any task token."""

import torch

from tt_deploy.models.bfm import BFM
from tt_deploy.models.checkpoints import state_hash
from tt_deploy.models.config import bfm_config
from tt_deploy.rl.runner import to_torch
from tt_deploy.spec import TASK_OBS_NAME
from tt_deploy.train.null_token import fit_null_token
from tt_deploy.train.task_token import TrainConfig, _make_env, build_policy


def test_the_fitted_token_acts_closer_to_no_token_than_zero_and_leaves_the_bfm_alone():
    torch.manual_seed(0)
    bfm = BFM(bfm_config("small")).freeze()
    cfg = TrainConfig("reach", prior=True, goals="reference", nthread=1)
    env = _make_env(cfg, 4, seed=1)
    policy = build_policy(cfg, bfm, env.task.obs_dim)
    before = state_hash(bfm)
    token, stats = fit_null_token(policy, env, steps=12, every=2, iters=60, batch=24)
    assert state_hash(bfm) == before
    assert token.shape == (bfm.token_dim,) and stats["states"] == 4 * 6
    assert stats["rms_diff_null_token"] < 0.5 * stats["rms_diff_zero_token"]
    policy.encoder.neutral_start(token)
    obs = to_torch(env.reset())
    with torch.no_grad():
        assert torch.equal(policy.encoder(obs[TASK_OBS_NAME]), token.expand(4, -1))
