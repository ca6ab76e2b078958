"""The pretraining actor-critic: the BFM itself trains on prompts (BFM pretraining)."""

from __future__ import annotations

from tt_deploy.models.bfm import BFM
from tt_deploy.rl.ppo import ActorCritic
from tt_deploy.spec import SELF_OBS_DIM, TOKEN_GROUPS
from tt_deploy.train.policies import Critic, _bfm_inputs

PROMPT_KEY, PROMPT_MASK = "masked_mimic_target_poses", "masked_mimic_target_poses_masks"


class PretrainPolicy(ActorCritic):
    """The BFM trains itself on prompts; the critic also sees the prompt features.

    Only the target-pose slots a prompt can show (`prompt_slots`) and the groups pretraining ever
    makes visible are fed to the BFM: a left-out token is exactly a hidden one (bfm.encode_tokens),
    and the shorter sequence makes a PPO update ~1.7x cheaper.
    """

    def __init__(self, bfm: BFM, critic_hidden=(256, 256), prompt_slots=(10,),
                 groups=("obs", "historical_pose_obs", "masked_mimic_target_poses", "terrain")):
        super().__init__()
        self.bfm = bfm
        self.prompt_slots = list(prompt_slots)
        self.input_keys = tuple(k for g in TOKEN_GROUPS if g.name in groups for k in (g.name, g.mask_name) if k)
        self.critic = Critic({"obs": SELF_OBS_DIM, "prompt": len(self.prompt_slots) * 184}, critic_hidden)

    def _inputs(self, obs):
        x = _bfm_inputs(obs, self.input_keys)
        if PROMPT_KEY in x:
            x[PROMPT_KEY] = obs[PROMPT_KEY][:, self.prompt_slots]
            x[PROMPT_MASK] = obs[PROMPT_MASK][:, self.prompt_slots]
        return x

    def _with_prompt(self, obs):
        return {**obs, "prompt": obs[PROMPT_KEY][:, self.prompt_slots]}

    def action_mean(self, obs):
        return self.bfm(self._inputs(obs))

    def value(self, obs):
        return self.critic(self._with_prompt(obs))

    def actor_parameters(self):
        return list(self.bfm.parameters())

    def critic_parameters(self):
        return list(self.critic.parameters())

    def update_normalizers(self, obs):
        """Token-encoder statistics use only visible tokens, so hidden zeros do not skew them.

        Terrain keeps identity statistics: training sees only flat ground, whose zero variance
        would turn any real terrain into clamped +-5 inputs.
        """
        for g in TOKEN_GROUPS:
            if g.name == "terrain":
                continue
            x = obs[g.name].reshape(obs[g.name].shape[0], g.n_tokens, g.feat_dim)
            weight = obs[g.mask_name] if g.mask_name else None
            self.bfm.token_encoders[g.name].norm.update(x, weight)
        self.bfm.decoder_obs_norm.update(obs["obs"])
        self.critic.update_norm(self._with_prompt(obs))
