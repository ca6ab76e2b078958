"""PPO pieces against hand-computed values and an independent oracle."""

import math

import torch
from torch import nn

from tt_deploy.rl.ppo import PPO, ActorCritic, PPOConfig, gaussian_log_prob
from tt_deploy.rl.storage import RolloutStorage


def test_gae_matches_hand_computation():
    s = RolloutStorage(horizon=3, num_envs=1, action_dim=1)
    obs = {"x": torch.zeros(1, 1)}
    for r, v, d in [(1.0, 0.5, 0.0), (0.0, 0.2, 1.0), (2.0, 0.1, 0.0)]:
        s.add(obs, torch.zeros(1, 1), torch.zeros(1), torch.tensor([v]), torch.tensor([r]), torch.tensor([d]))
    g, lam = 0.9, 0.8
    s.compute_gae(torch.tensor([1.0]), g, lam)
    d2 = 2.0 + g * 1.0 - 0.1  # last step bootstraps from last_values
    d1 = 0.0 - 0.2  # done: no bootstrap, no carry
    d0 = 1.0 + g * 0.2 - 0.5
    expected = torch.tensor([d0 + g * lam * d1, d1, d2])
    torch.testing.assert_close(s.advantages[:, 0], expected)
    torch.testing.assert_close(s.returns[:, 0], expected + torch.tensor([0.5, 0.2, 0.1]))


def test_log_prob_matches_torch_distribution():
    mean, actions = torch.randn(5, 69), torch.randn(5, 69)
    ref = torch.distributions.Normal(mean, 0.3).log_prob(actions).sum(-1)
    torch.testing.assert_close(gaussian_log_prob(actions, mean, 0.3), ref)


class _Bandit(ActorCritic):
    def __init__(self):
        super().__init__()
        self.mu = nn.Parameter(torch.zeros(2))
        self.v = nn.Linear(1, 1)

    def action_mean(self, obs):
        return self.mu.expand(obs["x"].shape[0], 2)

    def value(self, obs):
        return self.v(obs["x"]).squeeze(-1)

    def actor_parameters(self):
        return [self.mu]

    def critic_parameters(self):
        return list(self.v.parameters())


def test_ppo_moves_mean_toward_reward():
    torch.manual_seed(0)
    policy = _Bandit()
    cfg = PPOConfig(horizon=8, num_minibatches=2, epochs=4, actor_lr=3e-2, critic_lr=1e-2, action_std=0.3)
    ppo = PPO(policy, cfg, seed=0)
    target = torch.tensor([0.5, -0.4])
    for _ in range(30):
        storage = RolloutStorage(cfg.horizon, 32, 2)
        obs = {"x": torch.ones(32, 1)}
        for _ in range(cfg.horizon):
            a, logp, v, _ = ppo.act(obs)
            r = -((a - target) ** 2).sum(-1)
            storage.add(obs, a, logp, v, r, torch.ones(32))
        storage.compute_gae(torch.zeros(32), cfg.gamma, cfg.lam)
        ppo.update(storage)
    assert (policy.mu.detach() - target).abs().max() < 0.1
    assert math.isfinite(policy.v.weight.item())


def test_critic_warmup_updates_only_the_critic():
    torch.manual_seed(0)
    policy = _Bandit()
    cfg = PPOConfig(horizon=8, num_minibatches=2, epochs=2, actor_lr=3e-2, critic_lr=1e-2, action_std=0.3)
    ppo = PPO(policy, cfg, seed=0)
    storage = RolloutStorage(cfg.horizon, 16, 2)
    obs = {"x": torch.ones(16, 1)}
    for _ in range(cfg.horizon):
        a, logp, v, _ = ppo.act(obs)
        storage.add(obs, a, logp, v, -((a - 0.5) ** 2).sum(-1), torch.ones(16))
    storage.compute_gae(torch.zeros(16), cfg.gamma, cfg.lam)
    mu, w = policy.mu.detach().clone(), policy.v.weight.detach().clone()
    ppo.update(storage, train_actor=False)
    assert torch.equal(policy.mu, mu) and not torch.equal(policy.v.weight, w)
    ppo.update(storage)
    assert not torch.equal(policy.mu, mu)


def test_dropping_tokens_hidden_in_the_whole_batch_keeps_actions():
    import numpy as np

    from tt_deploy.models.bfm import BFM
    from tt_deploy.models.config import bfm_config
    from tt_deploy.obs.inputs import empty_inputs
    from tt_deploy.train.policies import drop_hidden_tokens

    torch.manual_seed(0)
    bfm = BFM(bfm_config("small")).eval()
    inputs = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in empty_inputs(5).items()}
    for v in inputs.values():
        if v.dtype == torch.float32:
            v.normal_()
    inputs["masked_mimic_target_poses_masks"][:, 10] = True  # the far slot: visible everywhere
    inputs["masked_mimic_target_poses_masks"][2, 3] = True  # slot 3: visible in one sample only
    inputs["historical_pose_obs_mask"][:] = True
    dropped = drop_hidden_tokens(inputs)
    assert dropped["masked_mimic_target_poses"].shape == (5, 2, 184)
    assert "historical_pose_obs" in dropped and dropped["historical_pose_obs"].shape == (5, 15, 217)
    with torch.no_grad():
        torch.testing.assert_close(bfm(dropped), bfm(inputs), rtol=0, atol=1e-6)


def test_samples_of_weight_zero_get_no_policy_gradient():
    from tt_deploy.rl.ppo import SAMPLE_WEIGHT

    torch.manual_seed(0)
    policy = _Bandit()
    cfg = PPOConfig(horizon=4, num_minibatches=1, epochs=2, actor_lr=3e-2, critic_lr=1e-2, action_std=0.3)
    ppo = PPO(policy, cfg, seed=0)
    storage = RolloutStorage(cfg.horizon, 4, 2)
    driven = {"x": torch.ones(4, 1), SAMPLE_WEIGHT: torch.zeros(4)}  # someone else acted: nothing for the gradient
    for _ in range(cfg.horizon):
        a, logp, v, _ = ppo.act(driven)
        storage.add(driven, a, logp, v, -((a - 0.5) ** 2).sum(-1), torch.ones(4))
    storage.compute_gae(torch.zeros(4), cfg.gamma, cfg.lam)
    mu = policy.mu.detach().clone()
    stats = ppo.update(storage)
    assert torch.equal(policy.mu, mu) and stats["clip_frac"] == 0.0
    storage.obs[SAMPLE_WEIGHT][:] = 1.0  # the same samples as the policy's own: now they move it
    ppo.update(storage)
    assert not torch.equal(policy.mu, mu)
