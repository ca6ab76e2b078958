"""ProtoMotions v1 checkpoint import: v1-layout checkpoints are built here from random weights and the
imported model is checked against an independent forward written directly on the v1 state dict."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tt_deploy.errors import CheckpointError
from tt_deploy.models.checkpoints import bfm_sha256, load_bfm, load_encoder
from tt_deploy.models.protomotions import import_protomotions
from tt_deploy.spec import ACTION_DIM, SELF_OBS_DIM, TERRAIN_DIM, TOKEN_GROUPS

P = "vae_prior.trunk."
SMALL = dict(d=32, heads=4, ff=48, layers=2, token_hidden=(40,), prior_hidden=(24,), z=8, latent_hidden=(16,),
             decoder_hidden=(64, 32))  # fmt: skip
REAL = dict(d=512, heads=4, ff=1024, layers=4, token_hidden=(256, 256), prior_hidden=(256, 128), z=64,
            latent_hidden=(256, 128), decoder_hidden=(1024, 1024, 1024))  # fmt: skip
REACH_CONFIG = """\
env:
  _target_: phys_anim.envs.masked_mimic_inversion.reach.${backbone}.MaskedMimicReachHumanoid
algo:
  config:
    obs_clamp_value: 5.0
    actor:
      config:
        activation: relu
    models:
      prior_pre_processor:
        config:
          num_heads: 4
          activation: ${algo.config.actor.config.activation}
"""


# --- a v1-layout actor state dict ------------------------------------------------------------------
def _mlp(sd, prefix, dims, gen):
    for j in range(len(dims) - 1):
        sd[f"{prefix}{2 * j}.weight"] = torch.randn(dims[j + 1], dims[j], generator=gen) / math.sqrt(dims[j])
        sd[f"{prefix}{2 * j}.bias"] = torch.randn(dims[j + 1], generator=gen) * 0.1


def _mlp_with_norm(sd, prefix, fin, hidden, out, gen):
    """phys_anim.agents.models.mlp.MLP_WithNorm with normalize_obs True (RunningMeanStd parameters)."""
    sd[prefix + "running_obs_norm.mean"] = torch.randn(fin, generator=gen) * 0.5
    sd[prefix + "running_obs_norm.var"] = torch.rand(fin, generator=gen) + 0.3
    sd[prefix + "running_obs_norm.count"] = torch.tensor(123456, dtype=torch.long)
    _mlp(sd, prefix + "trunk.", [fin, *hidden, out], gen)


def v1_actor(s: dict, task_obs_dim: int | None, seed: int = 0) -> dict[str, torch.Tensor]:
    """ActorFixedSigmaVAE.state_dict() of a MaskedMimic (+ Task Tokens inversion_obs) actor."""
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    d = s["d"]
    _mlp_with_norm(sd, P + "obs_encoder.", SELF_OBS_DIM, s["token_hidden"], d, gen)
    extra = [g for g in TOKEN_GROUPS if g.name != "obs"]
    for g in extra:
        _mlp_with_norm(sd, f"{P}extra_input_models.{g.name}.", g.feat_dim, s["token_hidden"], d, gen)
    if task_obs_dim:
        _mlp_with_norm(sd, f"{P}extra_input_models.inversion_obs.", task_obs_dim, s["token_hidden"], d, gen)
    n_entries = 1 + len(extra) + bool(task_obs_dim)
    sd[P + "type_embedding.projection.weight"] = torch.empty(0, n_entries)  # type_embedding_dim 0
    sd[P + "type_embedding.projection.bias"] = torch.empty(0)
    sd[P + "sequence_pos_encoder.pe"] = torch.randn(1, 5000, d, generator=gen)
    # key names straight from torch's own modules, values randomised
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(d, s["heads"], s["ff"], dropout=0.0), s["layers"],
                                enable_nested_tensor=False)  # fmt: skip
    for k, t in enc.state_dict().items():
        base = torch.rand if "norm" in k and k.endswith("weight") else torch.randn
        scale = 1.0 if "norm" in k else 1 / math.sqrt(t.shape[-1])
        v = base(t.shape, generator=gen) * scale + (0.5 if base is torch.rand else 0.0)
        sd[P + "seqTransEncoder." + k] = v
    _mlp(sd, P + "output_mapping.", [d, 1, s["z"]], gen)  # output_decoder: False -> unused
    _mlp(sd, "vae_prior.output_models.mu.trunk.", [d, *s["prior_hidden"], s["z"]], gen)
    _mlp(sd, "vae_prior.output_models.logvar.trunk.", [d, *s["prior_hidden"], s["z"]], gen)
    _mlp_with_norm(sd, "vae_encoder.trunk.", SELF_OBS_DIM, (16,), 16, gen)  # posterior (training only)
    _mlp(sd, "vae_encoder.output_models.mu.trunk.", [16, 8, s["z"]], gen)
    sd["mu_model.running_obs_norm.mean"] = torch.randn(SELF_OBS_DIM, generator=gen) * 0.5
    sd["mu_model.running_obs_norm.var"] = torch.rand(SELF_OBS_DIM, generator=gen) + 0.3
    sd["mu_model.running_obs_norm.count"] = torch.tensor(123456, dtype=torch.long)
    _mlp(sd, "mu_model.extra_input_models.vae_latent.trunk.", [s["z"], *s["latent_hidden"], s["z"]], gen)
    _mlp(sd, "mu_model.trunk.", [SELF_OBS_DIM + TERRAIN_DIM + s["z"], *s["decoder_hidden"], ACTION_DIM], gen)
    sd["logstd"] = torch.full((ACTION_DIM,), -2.9)
    return sd


def save_ckpt(path, actor: dict) -> None:
    """What ProtoMotions v1 `save` writes: actor, critic, optimisers and counters in one dict."""
    critic = {"mu_model.trunk.0.weight": torch.randn(4, 3)}
    optimizer = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(3)}}, "param_groups": [{"lr": 2e-5, "params": [0]}]}  # fmt: skip
    torch.save(
        {"actor": actor, "critic": critic, "actor_optimizer": optimizer, "epoch": 3, "step": 98304}, path
    )


# --- the independent forward, directly on the v1 state dict (sequence-first, like v1) ---------------
def v1_forward(sd, inputs: dict, task_obs, heads: int, clamp: float | None) -> torch.Tensor:
    def norm(prefix, x):
        y = (x - sd[prefix + "running_obs_norm.mean"]) / torch.sqrt(
            sd[prefix + "running_obs_norm.var"] + 1e-5
        )
        return y if clamp is None else y.clamp(-clamp, clamp)

    def mlp(prefix, x):
        i = 0
        while f"{prefix}{i}.weight" in sd:
            x = F.linear(x, sd[f"{prefix}{i}.weight"], sd[f"{prefix}{i}.bias"])
            if f"{prefix}{i + 2}.weight" in sd:
                x = F.relu(x)
            i += 2
        return x

    obs = inputs["obs"]
    b = obs.shape[0]
    tokens = [mlp(P + "obs_encoder.trunk.", norm(P + "obs_encoder.", obs))[:, None]]
    hidden = [torch.zeros(b, 1, dtype=torch.bool)]  # v1 mask: True = may not attend
    groups = {g.name: g for g in TOKEN_GROUPS}
    feeds = {**inputs, "inversion_obs": task_obs}
    keys = sorted(
        {k.split(".")[3] for k in sd if k.startswith(P + "extra_input_models.")}
    )  # v1 sorts its keys
    for key in keys:
        p = f"{P}extra_input_models.{key}."
        x = feeds[key].reshape(-1, sd[p + "running_obs_norm.mean"].shape[0])  # reshape -> encode -> reshape
        tokens.append(mlp(p + "trunk.", norm(p, x)).reshape(b, -1, tokens[0].shape[-1]))
        g = groups.get(key)
        mask = inputs.get(g.mask_name) if g is not None and g.mask_name else None
        hidden.append(
            ~mask.reshape(b, -1)
            if mask is not None
            else torch.zeros(b, tokens[-1].shape[1], dtype=torch.bool)
        )
    x = torch.cat(tokens, 1).permute(1, 0, 2)  # [seq, batch, d]
    t, d = x.shape[0], x.shape[-1]
    attn_mask = torch.cat(hidden, 1).unsqueeze(1).expand(-1, t, -1).repeat_interleave(heads, dim=0)
    i = 0
    while f"{P}seqTransEncoder.layers.{i}.linear1.weight" in sd:
        L = f"{P}seqTransEncoder.layers.{i}."
        sa = F.multi_head_attention_forward(
            x, x, x, d, heads, sd[L + "self_attn.in_proj_weight"], sd[L + "self_attn.in_proj_bias"], None, None,
            False, 0.0, sd[L + "self_attn.out_proj.weight"], sd[L + "self_attn.out_proj.bias"],
            training=False, attn_mask=attn_mask, need_weights=False,
        )[0]  # fmt: skip
        x = F.layer_norm(x + sa, (d,), sd[L + "norm1.weight"], sd[L + "norm1.bias"], 1e-5)
        ff = F.linear(F.relu(F.linear(x, sd[L + "linear1.weight"], sd[L + "linear1.bias"])), sd[L + "linear2.weight"], sd[L + "linear2.bias"])  # fmt: skip
        x = F.layer_norm(x + ff, (d,), sd[L + "norm2.weight"], sd[L + "norm2.bias"], 1e-5)
        i += 1
    z = mlp("vae_prior.output_models.mu.trunk.", x[0])
    latent = mlp("mu_model.extra_input_models.vae_latent.trunk.", z)
    dec_in = torch.cat([norm("mu_model.", obs), inputs["terrain"], latent], -1)
    return mlp("mu_model.trunk.", dec_in)


def random_inputs(b: int, seed: int, scale: float = 2.0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for g in TOKEN_GROUPS:
        shape = (b, g.feat_dim) if g.n_tokens == 1 else (b, g.n_tokens, g.feat_dim)
        out[g.name] = torch.randn(shape, generator=gen) * scale
        if g.mask_name:
            out[g.mask_name] = torch.rand(b, g.n_tokens, generator=gen) < 0.5
    return out


def ours(bfm, skills, inputs, task_obs):
    with torch.no_grad():
        token = skills["reach"][0](task_obs) if skills else None
        return bfm(inputs, token)


# --- (a) parity against the independent forward ---------------------------------------------------
@pytest.mark.parametrize("sizes", [SMALL, REAL], ids=["small", "real"])
def test_imported_actions_equal_v1_forward(tmp_path, sizes):
    actor = v1_actor(sizes, task_obs_dim=9, seed=1)
    save_ckpt(tmp_path / "last.ckpt", actor)
    (tmp_path / "config.yaml").write_text(REACH_CONFIG)
    bfm, skills = import_protomotions(tmp_path / "last.ckpt", tmp_path / "config.yaml")
    c = bfm.config
    assert (
        c.d_model,
        c.num_layers,
        c.ff_dim,
        c.token_hidden,
        c.latent_dim,
        c.decoder_hidden,
        c.norm_clamp,
    ) == (
        sizes["d"],
        sizes["layers"],
        sizes["ff"],
        sizes["token_hidden"],
        sizes["z"],
        sizes["decoder_hidden"],
        5.0,
    )
    enc, info = skills["reach"]
    assert (info["task_obs_dim"], info["current_pose"], [f["dims"] for f in info["task_obs_spec"]]) == (
        9,
        True,
        [3, 6],
    )
    inputs = random_inputs(5, seed=2)
    task_obs = torch.randn(5, 9) * 3
    with torch.no_grad():
        ref = v1_forward(actor, inputs, task_obs, heads=4, clamp=5.0)
    torch.testing.assert_close(ours(bfm, skills, inputs, task_obs), ref, rtol=0, atol=1e-5)
    assert ref.abs().mean() > 0.05  # a non-degenerate comparison


def test_pretrained_masked_mimic_without_config_has_no_skill_and_no_clamp(tmp_path):
    actor = v1_actor(SMALL, task_obs_dim=None, seed=3)
    save_ckpt(tmp_path / "last.ckpt", actor)
    bfm, skills = import_protomotions(tmp_path / "last.ckpt")
    assert skills == {} and bfm.config.norm_clamp is None and bfm.config.num_heads == 4
    inputs = random_inputs(4, seed=4, scale=20.0)  # far outside +-5 sigma: a clamp would show
    with torch.no_grad():
        torch.testing.assert_close(bfm(inputs), v1_forward(actor, inputs, None, 4, None), rtol=0, atol=1e-5)


# --- (b) strict key accounting --------------------------------------------------------------------
@pytest.mark.parametrize(
    "edit, key",
    [
        ("add", P + "extra_input_models.object_pointclouds.conv1.weight"),
        ("add", "mu_model.extra_input_models.terrain.running_obs_norm.mean"),
        ("add", "some_new_head.weight"),
        ("add", P + "obs_encoder.trunk.1.weight"),  # a LayerNorm between Linear layers
        ("drop", "mu_model.running_obs_norm.var"),
        ("drop", P + "seqTransEncoder.layers.1.norm2.bias"),
        ("drop", P + "extra_input_models.terrain.trunk.0.weight"),
    ],
)
def test_unknown_or_missing_keys_fail_naming_the_key(tmp_path, edit, key):
    actor = v1_actor(SMALL, task_obs_dim=3, seed=5)
    if edit == "add":
        actor[key] = torch.zeros(3, 3)
    else:
        del actor[key]
    save_ckpt(tmp_path / "last.ckpt", actor)
    shown = key if edit == "add" or "trunk.0" not in key else key.rsplit(".", 1)[0]
    with pytest.raises(CheckpointError, match=shown.replace(".", r"\.")):
        import_protomotions(tmp_path / "last.ckpt", skill="reach")


def test_shape_mismatch_and_type_embedding_fail_naming_the_key(tmp_path):
    actor = v1_actor(SMALL, task_obs_dim=None, seed=6)
    actor[P + "extra_input_models.historical_pose_obs.trunk.0.weight"] = torch.zeros(40, 216)
    save_ckpt(tmp_path / "a.ckpt", actor)
    with pytest.raises(
        CheckpointError, match=r"historical_pose_obs\.trunk\.0\.weight takes 216 .* expects 217"
    ):
        import_protomotions(tmp_path / "a.ckpt")
    actor = v1_actor(SMALL, task_obs_dim=None, seed=6)
    actor[P + "type_embedding.projection.weight"] = torch.zeros(4, 6)
    save_ckpt(tmp_path / "b.ckpt", actor)
    with pytest.raises(CheckpointError, match=r"type_embedding\.projection\.weight"):
        import_protomotions(tmp_path / "b.ckpt")


def test_ambiguous_task_width_asks_for_skill(tmp_path):
    save_ckpt(tmp_path / "last.ckpt", v1_actor(SMALL, task_obs_dim=3, seed=7))  # direction or reach
    with pytest.raises(CheckpointError, match="pass --skill"):
        import_protomotions(tmp_path / "last.ckpt")
    _, skills = import_protomotions(tmp_path / "last.ckpt", skill="reach")
    assert skills["reach"][1]["current_pose"] is False


# --- (c) LFS pointer, (d) no unpickling of arbitrary objects --------------------------------------
def test_git_lfs_pointer_gets_a_clear_message(tmp_path):
    p = tmp_path / "last.ckpt"
    p.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:" + "a" * 64 + "\nsize 123456789\n")
    with pytest.raises(CheckpointError, match=r"Git LFS pointer .*git lfs pull"):
        import_protomotions(p)


CALLS: list[str] = []


def _side_effect(msg):
    CALLS.append(msg)
    return msg


class Evil:
    def __reduce__(self):
        return (_side_effect, ("arbitrary code ran",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickled_arbitrary_object_is_refused(tmp_path):
    p = tmp_path / "last.ckpt"
    torch.save({"actor": v1_actor(SMALL, None, seed=8), "hook": Evil()}, p)
    with pytest.raises(CheckpointError, match="weights_only"):
        import_protomotions(p)
    assert CALLS == []
    p.write_bytes(pickle.dumps({"actor": {}}))  # not a torch file at all
    with pytest.raises(CheckpointError, match="weights_only"):
        import_protomotions(p)


# --- (e) end to end: import -> ttdeploy export -> SkillRuntime ------------------------------------
def test_cli_import_export_runtime_equals_v1_forward(tmp_path):
    from typer.testing import CliRunner

    from tt_deploy.cli import _register, app
    from tt_deploy.runtime.skill_runtime import SkillRuntime

    _register()
    actor = v1_actor(SMALL, task_obs_dim=9, seed=9)
    save_ckpt(tmp_path / "last.ckpt", actor)
    (tmp_path / "config.yaml").write_text(REACH_CONFIG)
    out, bundle = tmp_path / "imported", tmp_path / "deploy"
    runner = CliRunner()
    res = runner.invoke(app, ["import-bfm", "--from", "protomotions", str(tmp_path / "last.ckpt"),
                              "--config", str(tmp_path / "config.yaml"), "--out", str(out)], terminal_width=250)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (
        f"ttdeploy export --skill reach --bfm {out / 'bfm.safetensors'} --run {out / 'runs' / 'reach'}"
        in res.output
    )
    bfm, bfm_info = load_bfm(out / "bfm.safetensors")
    enc, enc_info = load_encoder(out / "runs" / "reach" / "checkpoints" / "best.safetensors")
    assert enc_info.bfm_sha256 == bfm_sha256(bfm, {"path": str(out / "bfm.safetensors")})[0]
    assert bfm_info["source_sha256"] == enc_info.extra["source_sha256"] and enc_info.env_steps == 98304
    res = runner.invoke(app, ["export", "--skill", "reach", "--bfm", str(out / "bfm.safetensors"),
                              "--run", str(out / "runs" / "reach"), "--bundle", str(bundle)], terminal_width=250)  # fmt: skip
    assert res.exit_code == 0, res.output

    # the fused reach graph sees obs, history and terrain; every other group is hidden in v1 too
    inputs = random_inputs(1, seed=10)
    for g in TOKEN_GROUPS:
        if g.mask_name and g.name != "historical_pose_obs":
            inputs[g.mask_name][:] = False
    task_obs = torch.randn(1, 9) * 3
    with torch.no_grad():
        ref = v1_forward(actor, inputs, task_obs, heads=4, clamp=5.0).clamp(-1, 1)[0].numpy()
    feeds = {
        k: inputs[k][0].numpy() for k in ("obs", "historical_pose_obs", "historical_pose_obs_mask", "terrain")
    }
    with SkillRuntime(bundle) as rt:
        got = rt.act(feeds, task_obs[0].numpy())
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)
    assert np.abs(ref).mean() > 0.05

    # verify (recorded MuJoCo rollout with the 3 + 6 current-pose task obs) and sim2sim work unchanged
    # atol 2e-5: the "extreme" edge case's fp32 error on this imported model is 1.0e-5 with onnxruntime 1.32
    res = runner.invoke(app, ["verify", "--bundle", str(bundle), "--random", "8", "--rollout-steps", "5",
                              "--atol", "2e-5"], terminal_width=250)  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["sim2sim", "--bundle", str(bundle), "--skill", "reach", "--episodes", "1",
                              "--seconds", "0.5", "--cross-sim", "none"], terminal_width=250)  # fmt: skip
    assert res.exit_code == 0, res.output


def test_cli_lfs_pointer_is_one_line_error(tmp_path, capsys):
    import sys

    from tt_deploy.cli import main

    p = tmp_path / "last.ckpt"
    p.write_text("version https://git-lfs.github.com/spec/v1\n")
    argv = sys.argv
    sys.argv = ["ttdeploy", "import-bfm", "--from", "protomotions", str(p), "--out", str(tmp_path / "o")]
    try:
        with pytest.raises(SystemExit) as exc:
            main()
    finally:
        sys.argv = argv
    assert exc.value.code == 2 and "Git LFS pointer" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
