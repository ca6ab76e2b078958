"""BFM interface properties: sizes, masking semantics, freezing, checkpoint round trip."""

import pytest
import torch

from tt_deploy.errors import CheckpointError, UnknownNameError
from tt_deploy.models.bfm import BFM, count_parameters
from tt_deploy.models.checkpoints import load_bfm, save_bfm, sha256_file, state_hash
from tt_deploy.models.config import EncoderConfig, bfm_config
from tt_deploy.models.task_encoder import TaskEncoder
from tt_deploy.spec import TOKEN_GROUPS


def random_inputs(batch: int, gen: torch.Generator, visible_p: float = 0.5) -> dict[str, torch.Tensor]:
    out = {}
    for g in TOKEN_GROUPS:
        out[g.name] = torch.randn(batch, g.n_tokens, g.feat_dim, generator=gen).squeeze(1) * 2
        if g.mask_name:
            out[g.mask_name] = torch.rand(batch, g.n_tokens, generator=gen) < visible_p
    return out


@pytest.fixture(scope="module")
def small_bfm():
    torch.manual_seed(0)
    bfm = BFM(bfm_config("small")).freeze()
    # non-trivial normaliser statistics so normalisation is exercised
    gen = torch.Generator().manual_seed(1)
    for n in bfm.normalizers():
        n.mean.copy_(torch.randn(n.num_features, generator=gen) * 0.1)
        n.var.copy_(torch.rand(n.num_features, generator=gen) + 0.5)
    return bfm


def test_paper_size_matches_reference_and_small_is_cpu_sized():
    assert 12.8e6 < count_parameters(BFM(bfm_config("paper"))) < 13.6e6
    assert count_parameters(BFM(bfm_config("small"))) <= 2e6


def test_unknown_config_lists_known():
    with pytest.raises(UnknownNameError, match="known: paper, small"):
        bfm_config("huge")


def test_hidden_tokens_do_not_influence_actions(small_bfm):
    gen = torch.Generator().manual_seed(2)
    inputs = random_inputs(16, gen)
    task_token = torch.randn(16, small_bfm.token_dim, generator=gen)
    ref = small_bfm(inputs, task_token)
    scrambled = dict(inputs)
    for g in TOKEN_GROUPS:
        if g.mask_name:
            hidden = ~inputs[g.mask_name]
            noise = torch.randn(inputs[g.name].shape, generator=gen) * 100
            shape = hidden.shape + (1,) if inputs[g.name].dim() == 3 else hidden.shape
            scrambled[g.name] = torch.where(hidden.reshape(shape), noise, inputs[g.name])
    out = small_bfm(scrambled, task_token)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
    # and a visible token does matter
    vis = dict(inputs)
    vis["masked_mimic_target_poses_masks"] = torch.ones_like(inputs["masked_mimic_target_poses_masks"])
    assert (small_bfm(vis, task_token) - ref).abs().max() > 1e-4


def test_absent_group_equals_fully_hidden_group(small_bfm):
    gen = torch.Generator().manual_seed(3)
    inputs = random_inputs(4, gen)
    for g in TOKEN_GROUPS:
        if g.mask_name:
            inputs[g.mask_name] = torch.zeros_like(inputs[g.mask_name])
    full = small_bfm(inputs)
    dropped = small_bfm({k: inputs[k] for k in ("obs", "terrain")})
    torch.testing.assert_close(full, dropped, rtol=0, atol=1e-5)


def test_freeze_keeps_gradient_flow_to_task_token(small_bfm):
    enc = TaskEncoder(EncoderConfig(obs_dim=3, token_dim=small_bfm.token_dim))
    gen = torch.Generator().manual_seed(4)
    inputs = random_inputs(8, gen)
    before = state_hash(small_bfm)
    loss = small_bfm(inputs, enc(torch.randn(8, 3, generator=gen))).pow(2).mean()
    loss.backward()
    assert all(p.grad is None for p in small_bfm.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())
    assert state_hash(small_bfm) == before


def test_checkpoint_round_trip_and_hash_check(small_bfm, tmp_path):
    path = save_bfm(small_bfm, tmp_path / "bfm.safetensors", info={"steps": 7})
    loaded, info = load_bfm(path, expected_sha256=sha256_file(path))
    assert info == {"steps": 7}
    assert state_hash(loaded) == state_hash(small_bfm)
    with pytest.raises(CheckpointError, match="does not match"):
        load_bfm(path, expected_sha256="0" * 64)
    (tmp_path / "bad.safetensors").write_bytes(b"version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_bfm(tmp_path / "bad.safetensors")


def test_last_layer_computing_only_token_zero_matches_all_rows(small_bfm):
    gen = torch.Generator().manual_seed(5)
    inputs = random_inputs(6, gen)
    with torch.no_grad():
        x, key_bias = small_bfm.encode_tokens(inputs)
        for layer in small_bfm.layers:
            x = layer(x, key_bias)  # every row, as nn.TransformerEncoder computes it
        every_row = small_bfm.decode(inputs["obs"], inputs["terrain"], small_bfm.prior_mu(x[:, 0]))
        torch.testing.assert_close(small_bfm(inputs), every_row, rtol=0, atol=1e-6)
