"""EncoderInfo: the one record of an encoder checkpoint's training, written by training, read by export."""

import pytest
import torch

from tt_deploy.errors import CheckpointError
from tt_deploy.models.checkpoints import EncoderInfo, load_encoder, save_encoder
from tt_deploy.models.config import EncoderConfig
from tt_deploy.models.task_encoder import TaskEncoder


def test_round_trip_through_a_checkpoint_keeps_every_field(tmp_path):
    info = EncoderInfo(skill="reach", bfm_sha256="ab" * 32, env_steps=4096, task_obs_dim=3, goals={"preset": "bfm"},
                       task_prior={"name": "reach", "params": {}}, visible_groups=("obs", "terrain"),
                       explore="token", extra={"v1_key": "x"})  # fmt: skip
    enc = TaskEncoder(EncoderConfig(obs_dim=3, token_dim=8, hidden=(4,)))
    save_encoder(enc, tmp_path / "e.safetensors", info=info)
    loaded, back = load_encoder(tmp_path / "e.safetensors")
    assert back == info
    for (name, a), b in zip(enc.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_older_headers_read_steps_as_env_steps_and_keep_unknown_keys():
    info = EncoderInfo.from_dict({"skill": "steering", "bfm_sha256": "c" * 64, "steps": 10, "note": "old"})
    assert info.env_steps == 10 and info.extra == {"note": "old"}
    assert info.to_dict()["env_steps"] == 10 and "steps" not in info.to_dict()


def test_a_header_without_skill_or_bfm_is_refused():
    with pytest.raises(CheckpointError, match="bfm_sha256"):
        EncoderInfo.from_dict({"skill": "reach"})


def test_static_prior_tokens_are_refused_not_silently_dropped():
    with pytest.raises(CheckpointError, match="static prior tokens"):
        EncoderInfo.from_dict({"skill": "reach", "bfm_sha256": "c" * 64, "prior": {"masked_mimic_target_poses": [0.0]}})
    assert EncoderInfo.from_dict({"skill": "reach", "bfm_sha256": "c" * 64, "prior": None}).extra == {}
