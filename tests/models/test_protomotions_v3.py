"""ProtoMotions v3 MaskedMimic: the fixture written by ProtoMotions' own v3 code (tests/data/
protomotions_v3_small, see its README) must be reproduced from its checkpoint; pickled code must never run."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tt_deploy.errors import CheckpointError
from tt_deploy.models.protomotions_v3 import V3MaskedMimic, detect, load_v3, parse_config
from tt_deploy.models.safe_checkpoint import load_checkpoint

# a copy of shared/fixtures/protomotions_v3_small (4.5 MB), so CI's clean clone tests the import too
FIXTURE = Path(os.environ.get("TT_PROTOMOTIONS_V3_FIXTURE",
                              Path(__file__).resolve().parents[1] / "data" / "protomotions_v3_small"))  # fmt: skip
needs_fixture = pytest.mark.skipif(not (FIXTURE / "io.npz").is_file(), reason=f"no v3 fixture at {FIXTURE}")
ATOL = 1e-5  # float32; the measured errors are printed (pytest -s)
OUT = {"actions": "action", "actions_mean": "action_mean", "latent_mu": "latent_mu",
       "latent_logvar": "latent_logvar", "latent": "latent", "privileged_actions": "privileged_action",
       "privileged_latent_mu": "privileged_latent_mu", "privileged_latent_logvar": "privileged_latent_logvar"}  # fmt: skip


@pytest.fixture(scope="module")
def io():
    return np.load(FIXTURE / "io.npz")


@pytest.fixture(scope="module")
def model():
    return load_v3(FIXTURE)


def _case(io, group: str, i: int) -> dict:
    return {k.split("/", 1)[1]: torch.from_numpy(io[k][i]) for k in io.files
            if k.startswith(group + "/") and k != "cases/names" and k.split("/", 1)[1] not in OUT}  # fmt: skip


# --- (a) the original's outputs -------------------------------------------------------------------
@needs_fixture
def test_16_mask_cases_match_the_original(model, io):
    m, _ = model
    err = dict.fromkeys(OUT, 0.0)
    with torch.no_grad():
        for i in range(len(io["cases/names"])):
            got = m.outputs(_case(io, "cases", i), privileged=True)
            for ref, ours in OUT.items():
                err[ref] = max(
                    err[ref], float((got[ours] - torch.from_numpy(io[f"cases/{ref}"][i])).abs().max())
                )
            action, mean = m(**_case(io, "cases", i))  # forward = the inference path, by the original names
            assert torch.equal(action, got["action"]) and torch.equal(mean, got["action_mean"])
    print("max abs error over the 16 cases:", err)
    assert max(err.values()) <= ATOL, err
    assert np.abs(io["cases/actions"]).max() > 1 and not np.allclose(
        io["cases/actions"], io["cases/actions_mean"]
    )


@needs_fixture
def test_8_step_rollout_feeding_the_previous_action_back(model, io):
    m, _ = model
    prev, err = None, 0.0
    with torch.no_grad():
        for t in range(io["rollout/actions"].shape[0]):
            step = _case(io, "rollout", t)
            if prev is not None:  # our own previous raw action, not the stored one
                step["previous_actions"] = prev
            prev, _ = m(**step)
            err = max(err, float((prev - torch.from_numpy(io["rollout/actions"][t])).abs().max()))
    print("max abs error over the 8-step rollout:", err)
    assert err <= ATOL
    assert np.array_equal(io["rollout/previous_actions"][1:], io["rollout/actions"][:-1])


@needs_fixture
def test_bool_and_float_target_masks_agree_and_float64_inputs_are_cast(model, io):
    m, _ = model
    x = _case(io, "cases", 13)
    with torch.no_grad():
        a, _ = m(**x)
        b, _ = m(**{**x, "masked_mimic_target_masks": x["masked_mimic_target_masks"].float(),
                    "max_coords_obs": x["max_coords_obs"].double()})  # fmt: skip
    assert torch.equal(a, b)


@needs_fixture
def test_summary_says_what_came_from_where(model):
    m, s = model
    assert (s["version"], s["d_model"], s["num_layers"], s["num_heads"], s["ff_size"], s["latent_dim"]) == (
        "v3",
        32,
        3,
        4,
        64,
        8,
    )
    assert [(g["token"], g["tokens"], g["key_padding"]) for g in s["token_groups"]] == [
        ("current_state_token", 1, None),
        ("masked_mimic_target_poses_token", 5, "masked_mimic_target_poses_masks"),
        ("historical_pose_obs_token", 5, None),
    ]
    assert s["num_tokens"] == 11 and s["parameters"] == 261_157 and s["action_dim"] == 69
    assert s["inputs"] == {"max_coords_obs": 358, "masked_mimic_target_poses": 720, "masked_mimic_target_masks": 60,
                           "masked_mimic_target_times": 5, "masked_mimic_target_poses_masks": 5,
                           "historical_pose_obs": 1795, "previous_actions": 69, "vae_noise": 8}  # fmt: skip
    assert s["mlp_hidden"]["actor_trunk_out"] == [64, 64, 64] and s["norm_clamp"] == [5.0]
    assert s["action_transform"] == "tanh" and s["loader"] == "torch.load(weights_only=True)"
    assert any("num_heads" in k and v.startswith("config only") for k, v in s["provenance"].items())
    assert m.input_names[-1] == "vae_noise" and set(m.input_names) == set(s["inputs"])
    info = detect(FIXTURE)
    assert info["version"] == "v3" and info["supported"] and info["summary"]["parameters"] == 261_157


# --- (b) widths come from the config and the tensors, never assumed ---------------------------------
def _resize(
    cfg: dict, d: int, ff: int, layers: int, heads: int, tok: list[int], z: int, trunk: list[int]
) -> dict:
    model = cfg["agent"]["model"]
    model["vae"]["vae_latent_dim"] = str(z)
    for cname in ("prior", "trunk", "encoder"):
        for m in model[cname]["models"]:
            if m["_target_"].endswith("Transformer"):
                m.update(latent_dim=str(d), transformer_token_size=str(d), ff_size=str(ff), num_layers=str(layers),
                         num_heads=str(heads))  # fmt: skip
            elif m["_target_"].endswith("MLPWithConcat"):
                out = m["out_keys"][0]
                if out.endswith("_token"):
                    units, num_out = tok, d
                elif out in ("prior_mu", "prior_logvar", "encoder_mu", "encoder_logvar"):
                    units, num_out = [tok[0]], z
                elif out == "encoder_trunk_out":
                    units, num_out = trunk, d
                else:  # the action trunk
                    units, num_out = trunk, int(m["num_out"])
                m["layers"] = [
                    {"units": str(u), "activation": "relu", "use_layer_norm": "False"} for u in units
                ]
                m["num_out"] = str(num_out)
    return cfg


def _run_dir(tmp_path: Path, cfg: dict, sd: dict, **extra) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "resolved_configs.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    torch.save({"model": sd, "epoch": 1, "step_count": 2, "evaluator": {"eval_count": 0}, **extra},
               tmp_path / "last.ckpt")  # fmt: skip
    return tmp_path


@needs_fixture
def test_other_widths_are_read_from_the_config_and_tensors(tmp_path, model, io):
    ref_model, ref = model
    cfg = _resize(yaml.safe_load((FIXTURE / "resolved_configs.yaml").read_text()),
                  d=24, ff=40, layers=2, heads=2, tok=[20], z=6, trunk=[30, 30])  # fmt: skip
    dims = {k: (n,) for k, n in ref["inputs"].items() if k != "vae_noise"}
    dims |= {"mimic_target_poses": (576,), "masked_mimic_target_bodies_masks": (60,)}
    torch.manual_seed(0)
    fresh = V3MaskedMimic(parse_config(cfg), input_dims=dims)
    sd = fresh.state_dict()
    for k in sd:  # random statistics, so the normalisers matter
        if k.endswith(".running_obs_norm.mean"):
            sd[k] = torch.randn_like(sd[k]) * 0.3
        elif k.endswith(".running_obs_norm.var"):
            sd[k] = torch.rand_like(sd[k]) + 0.5
    fresh.load_state_dict(sd)
    m, s = load_v3(_run_dir(tmp_path / "run", cfg, sd))
    assert (s["d_model"], s["ff_size"], s["num_layers"], s["num_heads"], s["latent_dim"]) == (24, 40, 2, 2, 6)
    assert s["mlp_hidden"]["current_state_token"] == [20] and s["mlp_hidden"]["actor_trunk_out"] == [30, 30]
    assert s["inputs"]["vae_noise"] == 6 and s["parameters"] == sum(p.numel() for p in fresh.parameters())
    x = _case(io, "cases", 0)
    x["vae_noise"] = torch.randn(4, 6)
    with torch.no_grad():
        want, got = fresh.outputs(x, privileged=True), m.outputs(x, privileged=True)
    for k in want:
        assert torch.equal(want[k], got[k]), k

    # a config width the tensors contradict, or a head count that does not divide, fails naming the key
    bad = yaml.safe_load(yaml.safe_dump(cfg))
    bad["agent"]["model"]["prior"]["models"][4]["layers"][0]["units"] = "21"
    with pytest.raises(CheckpointError, match=r"_prior\.models\.4\.mlp\.0\.weight has shape \(20, 358\)"):
        load_v3(_run_dir(tmp_path / "bad1", bad, sd))
    bad = yaml.safe_load(yaml.safe_dump(cfg))
    bad["agent"]["model"]["prior"]["models"][7]["num_heads"] = "5"
    with pytest.raises(CheckpointError, match="not divisible by num_heads 5"):
        load_v3(_run_dir(tmp_path / "bad2", bad, sd))
    with pytest.raises(CheckpointError, match=r"unexpected key 'extra\.weight'"):
        load_v3(_run_dir(tmp_path / "bad3", cfg, {**sd, "extra.weight": torch.zeros(1)}))
    assert ref_model.spec.container("_prior").modules[7].d_model == 32  # the fixture model is untouched


# --- (c) nothing pickled runs ------------------------------------------------------------------------
class _Payload:
    """Unpickling this runs a shell command that leaves a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _fixture_dir(tmp_path: Path) -> Path:
    d = tmp_path / "run"
    d.mkdir()
    shutil.copy(FIXTURE / "resolved_configs.yaml", d / "resolved_configs.yaml")
    return d


def _one_line(exc) -> str:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    return msg


@needs_fixture
def test_a_malicious_trainer_entry_is_skipped_inertly(tmp_path, model, io):
    marker = tmp_path / "pwned"
    d = _fixture_dir(tmp_path)
    ckpt = torch.load(FIXTURE / "last.ckpt", weights_only=True)
    ckpt["evaluator"] = {"eval_count": 3, "state": _Payload(marker)}
    ckpt["best_evaluated_score"] = np.float64(
        0.5
    )  # a realistic non-tensor: torch's allow-list refuses it too
    torch.save(ckpt, d / "last.ckpt")
    loaded = load_checkpoint(d / "last.ckpt")
    assert (
        set(loaded.skipped) == {"evaluator", "best_evaluated_score"}
        and "system" in loaded.skipped["evaluator"]
    )
    assert loaded.loader.startswith("restricted") and loaded.data["epoch"] == 10
    m, s = load_v3(d)
    assert not marker.exists()
    assert set(s["skipped_entries"]) == {"evaluator", "best_evaluated_score"}
    x = _case(io, "cases", 5)
    with torch.no_grad():
        assert torch.equal(m(**x)[0], model[0](**x)[0])
    for k, v in ckpt["model"].items():  # the restricted reader rebuilds the same tensors
        assert torch.equal(loaded.data["model"][k], v) and loaded.data["model"][k].dtype == v.dtype, k


@needs_fixture
def test_malicious_model_or_top_level_is_a_one_line_error_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    d = _fixture_dir(tmp_path)
    ckpt = torch.load(FIXTURE / "last.ckpt", weights_only=True)
    ckpt["model"]["_prior.models.4.mlp.0.weight"] = _Payload(marker)
    torch.save(ckpt, d / "last.ckpt")
    with pytest.raises(CheckpointError) as exc:
        load_v3(d)
    assert "'model' is not a state dict of tensors" in _one_line(exc) and "system" in _one_line(exc)

    torch.save(_Payload(marker), d / "last.ckpt")  # the whole file is the payload
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(d / "last.ckpt")
    assert "not a plain dict" in _one_line(exc)

    (d / "last.ckpt").write_bytes(pickle.dumps({"model": _Payload(marker)}))  # a bare pickle, not a torch zip
    with pytest.raises(CheckpointError) as exc:
        load_v3(d)
    assert "never unpickled" in _one_line(exc)

    (d / "last.ckpt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError) as exc:
        load_v3(d)
    _one_line(exc)
    assert not marker.exists()


@needs_fixture
def test_resolved_configs_pt_is_never_opened(tmp_path, monkeypatch):
    import builtins
    import io as io_module

    marker = tmp_path / "pwned"
    d = _fixture_dir(tmp_path)
    shutil.copy(FIXTURE / "last.ckpt", d / "last.ckpt")
    for name in ("resolved_configs.pt", "resolved_configs_inference.pt"):
        torch.save({"agent": _Payload(marker)}, d / name)
    opened, real_open, real_load = [], builtins.open, torch.load
    spy = lambda f, *a, **k: opened.append(str(f)) or real_open(f, *a, **k)  # noqa: E731
    monkeypatch.setattr(builtins, "open", spy)
    monkeypatch.setattr(io_module, "open", spy)  # pathlib's read_text/read_bytes
    monkeypatch.setattr(torch, "load", lambda f, *a, **k: opened.append(str(f)) or real_load(f, *a, **k))
    _, s = load_v3(d)
    assert s["config"].endswith("resolved_configs.yaml") and not marker.exists()
    assert opened and not [f for f in opened if f.endswith(".pt")], opened

    (d / "resolved_configs.yaml").unlink()  # only the pickles left
    with pytest.raises(CheckpointError) as exc:
        load_v3(d)
    assert "resolved_configs_inference.pt" in _one_line(exc) and "YAML sidecar" in _one_line(exc)
    with pytest.raises(CheckpointError, match="never opened"):
        load_v3(d, config=d / "resolved_configs.pt")
    assert not marker.exists()


# --- (d) versions ----------------------------------------------------------------------------------------
def test_v2_is_detected_and_refused(tmp_path):
    sd = {"_prior._mu_head.mlp.0.weight": torch.zeros(2, 2), "_trunk._trunk.0.weight": torch.zeros(2, 2)}
    torch.save(
        {"model": sd, "optimizer": {"state": {}, "param_groups": []}, "epoch": 1}, tmp_path / "last.ckpt"
    )
    info = detect(tmp_path)
    assert info["version"] == "v2" and not info["supported"] and "not supported yet" in info["reason"]
    with pytest.raises(CheckpointError, match="v2 not supported yet"):
        load_v3(tmp_path)


def test_v1_is_detected_and_summarised(tmp_path):
    from test_protomotions_import import SMALL, save_ckpt, v1_actor

    save_ckpt(tmp_path / "last.ckpt", v1_actor(SMALL, task_obs_dim=None, seed=1))
    info = detect(tmp_path / "last.ckpt")
    assert info["version"] == "v1" and info["supported"] and info["summary"]["d_model"] == SMALL["d"]
    with pytest.raises(CheckpointError, match="v1 checkpoint, not v3"):
        load_v3(tmp_path)


@needs_fixture
def test_cli_prints_the_v3_summary_and_writes_its_graphs_with_out(tmp_path):
    import json

    from typer.testing import CliRunner

    from tt_deploy.cli import _register, app
    from tt_deploy.hashing import sha256_file

    _register()
    runner = CliRunner()
    res = runner.invoke(app, ["import-bfm", "--from", "protomotions", str(FIXTURE)], terminal_width=250)
    assert res.exit_code == 0, res.output
    assert "d=32 layers=3 heads=4 ff=64" in res.output and "261,157" in res.output
    assert "read and checked only" in res.output
    res = runner.invoke(app, ["import-bfm", "--from", "protomotions", str(FIXTURE), "--skill", "reach"])
    assert isinstance(res.exception, CheckpointError) and "no Task Tokens encoder" in str(res.exception)
    out = tmp_path / "o"
    res = runner.invoke(app, ["import-bfm", "--from", "protomotions", str(FIXTURE), "--out", str(out)],
                        terminal_width=250)  # fmt: skip
    assert res.exit_code == 0, res.output
    record = json.loads((out / "protomotions_v3.json").read_text())
    for g in record["graphs"].values():
        assert sha256_file(out / g["path"]) == g["sha256"] and g["export_parity_max_abs"] <= 1e-5
    assert record["graphs"]["dynamic"]["inputs"][0]["shape"][0] == "batch"
    assert record["source_sha256"] == sha256_file(FIXTURE / "last.ckpt")
