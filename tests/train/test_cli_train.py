"""CLI smoke tests of the training verbs with tiny step counts, and the freezing proof."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tt_deploy.cli import _register, app
from tt_deploy.errors import InputError
from tt_deploy.models.checkpoints import load_bfm, load_encoder

_register()
runner = CliRunner()


def _ok(args):
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return res


def test_pretrain_writes_a_loadable_bfm_and_resumes(tmp_path):
    out = tmp_path / "pre"
    _ok(["pretrain", "--num-envs", "4", "--steps", "128", "--out", str(out)])
    bfm, info = load_bfm(out / "checkpoints" / "last.safetensors")
    assert info["env_steps"] == 128 and info["iterations"] == 1
    _ok(["pretrain", "--num-envs", "4", "--steps", "256", "--out", str(out), "--resume"])
    _, info = load_bfm(out / "checkpoints" / "last.safetensors")
    assert info["env_steps"] == 256 and info["iterations"] == 2
    # a warm start carries its starting checkpoint's cost, so model cards count every step
    warm = tmp_path / "warm"
    _ok(["pretrain", "--num-envs", "4", "--steps", "128", "--out", str(warm), "--teacher-coef", "0",
         "--init-bfm", str(out / "checkpoints" / "last.safetensors")])
    _, info = load_bfm(warm / "checkpoints" / "last.safetensors")
    assert info["env_steps"] == 128 and info["init_env_steps"] == 256
    # resuming without --init-bfm keeps the run's own starting cost
    _ok(["pretrain", "--num-envs", "4", "--steps", "256", "--out", str(warm), "--resume", "--teacher-coef", "0"])
    _, info = load_bfm(warm / "checkpoints" / "last.safetensors")
    assert info["env_steps"] == 256 and info["init_env_steps"] == 256


def test_pretrain_takes_a_prompt_mix_and_pushes(tmp_path):
    # a standing / push specialist: idle prompts only, frequent hard pushes, no teachers
    out = tmp_path / "push"
    _ok(["pretrain", "--num-envs", "4", "--steps", "128", "--out", str(out), "--mode-probs", "1,0,0",
         "--push-interval", "2", "--push-speed", "0.3,0.8", "--teacher-coef", "0"])
    modes = np.load(out / "checkpoints" / "last_env.npz")["task/mode"]
    assert modes.shape == (4,) and (modes == 0).all()  # every env is in an idle prompt
    for bad, match in ((["--mode-probs", "0,0,0"], "at least one"), (["--push-speed", "0.8,0.3"], "LOW"),
                       (["--mode-probs", "1,0"], "3 comma-separated")):  # fmt: skip
        res = runner.invoke(app, ["pretrain", "--steps", "128", "--out", str(tmp_path / "bad"), *bad])
        assert res.exit_code != 0 and match in str(res.exception)


def test_pretrain_spreads_ground_friction_over_the_envs(tmp_path):
    from tt_deploy.pretrain.ppo_stage import PretrainConfig, build_runner

    runner_ = build_runner(PretrainConfig(num_envs=4, steps=128, friction=(0.5, 2.0)), tmp_path / "a")
    frictions = [p.friction for p in runner_.env.sim.perturbations]
    np.testing.assert_allclose(frictions, [0.5, 0.7937, 1.2599, 2.0], rtol=1e-4)
    _ok(["pretrain", "--num-envs", "4", "--steps", "128", "--out", str(tmp_path / "b"), "--friction", "0.5,2",
         "--teacher-coef", "0"])  # fmt: skip
    res = runner.invoke(app, ["pretrain", "--steps", "128", "--out", str(tmp_path / "bad"), "--friction", "2,0.5"])
    assert res.exit_code != 0 and "pretrain friction range must be 0 < LOW <= HIGH" in str(res.exception)
    _, info = load_bfm(tmp_path / "b" / "checkpoints" / "last.safetensors")
    assert info["friction"] == [0.5, 2.0]  # the checkpoint says what it was trained on


def test_resumed_pretraining_takes_the_teacher_setting_of_this_invocation(tmp_path):
    from tt_deploy.pretrain.ppo_stage import PretrainConfig, _after_resume, build_runner, pretrain

    cfg = PretrainConfig(num_envs=4, steps=128, teacher_coef=0.0)
    pretrain(cfg, tmp_path)
    runner = build_runner(PretrainConfig(num_envs=4, steps=256, teacher_coef=50.0), tmp_path)
    assert runner.resume()  # the snapshot says "no teacher" ...
    _after_resume(runner, PretrainConfig(num_envs=4, steps=256, teacher_coef=50.0))
    assert runner.env.task.use_teacher  # ... this invocation says 50


def test_train_task_token_keeps_bfm_frozen_and_changes_encoder(tmp_path):
    out = tmp_path / "runs"
    _ok(["train", "--skill", "reach", "--num-envs", "8", "--steps", "256", "--eval-envs", "2", "--out", str(out),
         "--action-std", "0.01", "--explore", "action"])
    run = json.loads((out / "reach" / "run.json").read_text())
    assert run["config"]["ppo"]["action_std"] == 0.01 and run["config"]["ppo"]["actor_lr"] == 1e-3  # the rest default
    fr = run["freezing"]
    assert fr["bfm_unchanged"] and fr["bfm_state_hash_before"] == fr["bfm_state_hash_after"]
    assert fr["trained_state_hash_before"] != fr["trained_state_hash_after"]
    enc, info = load_encoder(out / "reach" / "checkpoints" / "last.safetensors")
    assert info.skill == "reach" and info.bfm_sha256 == run["bfm_sha256"]
    assert enc.config.obs_dim == 3 and info.env_steps == 256


def test_task_tokens_explore_in_token_space_and_resume_only_in_the_space_they_started_in(tmp_path):
    out = tmp_path / "runs"
    base = ["train", "--skill", "reach", "--num-envs", "8", "--eval-envs", "2", "--out", str(out)]
    _ok([*base, "--steps", "256", "--token-std", "0.5"])
    run = json.loads((out / "reach" / "run.json").read_text())
    assert run["exploration"] == {"space": "token", "std": 0.5}
    assert run["freezing"]["bfm_unchanged"] and run["freezing"]["trained_state_hash_before"] != run["freezing"]["trained_state_hash_after"]
    _, info = load_encoder(out / "reach" / "checkpoints" / "last.safetensors")
    assert info.explore == "token"
    res = runner.invoke(app, [*base, "--steps", "512", "--resume", "--explore", "action"])
    assert res.exit_code != 0 and "trained with --explore token" in str(res.exception)
    res = runner.invoke(app, [*base, "--method", "finetune", "--explore", "token", "--steps", "0"])
    assert res.exit_code != 0 and "finetune explores in action space" in str(res.exception)
    assert run["config"]["sim"] == "mujoco"  # and on the engine it started on: its simulator state is that engine's
    res = runner.invoke(app, [*base, "--steps", "512", "--resume", "--sim", "mjwarp"])
    assert res.exit_code != 0 and "trained with --sim mujoco; resume it with --sim mujoco" in str(res.exception)
    res = runner.invoke(app, [*base, "--steps", "0", "--sim", "isaacgym"])
    assert res.exit_code != 0 and "simulator interface only" in str(res.exception)


def test_a_run_resumes_only_beside_the_prior_it_started_with(tmp_path):
    out = tmp_path / "runs"
    base = ["train", "--skill", "strike", "--prior", "--num-envs", "4", "--eval-envs", "2", "--out", str(out)]
    _ok([*base, "--steps", "128"])
    _ok([*base, "--steps", "256", "--resume"])  # the same prior: resumes
    path = out / "strike" / "run.json"
    run = json.loads(path.read_text())
    assert run["env_steps"] == 256 and run["task_prior"]["name"] == "strike"
    run["task_prior"]["params"]["strike_radius"] = 1.2  # as if started by a version with the old default
    path.write_text(json.dumps(run))
    res = runner.invoke(app, [*base, "--steps", "384", "--resume"])
    assert res.exit_code != 0 and "trained beside the prior" in str(res.exception)
    path.write_text("{not json")  # a garbage run.json, then none: never resumed blind
    res = runner.invoke(app, [*base, "--steps", "384", "--resume", "--sim", "mjwarp"])
    assert isinstance(res.exception, InputError) and "not readable JSON" in str(res.exception)
    path.unlink()
    res = runner.invoke(app, [*base, "--steps", "384", "--resume", "--sim", "mjwarp"])
    assert isinstance(res.exception, InputError) and "no run.json" in str(res.exception)


def test_train_rejects_unknown_skill_and_method(tmp_path):
    res = runner.invoke(app, ["train", "--skill", "fly", "--steps", "0", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "unknown task 'fly'" in str(res.exception)
    res = runner.invoke(app, ["train", "--skill", "reach", "--method", "magic", "--out", str(tmp_path)])
    assert "unknown training method 'magic'" in str(res.exception)


@pytest.mark.parametrize("method", ["pure-rl", "prior-only"])
def test_baseline_methods_run(tmp_path, method):
    out = tmp_path / method
    _ok(["train", "--skill", "reach", "--method", method, "--num-envs", "4", "--steps", "128",
         "--eval-envs", "2", "--out", str(out)])
    run = json.loads((out / "reach" / "run.json").read_text())
    assert 0.0 <= run["final_eval"]["success_rate"] <= 1.0
    assert (run["trainable_params"] == 0) == (method == "prior-only")


def test_compare_tabulates_runs_and_plots(tmp_path):
    # two hand-made runs: one reaches 0.5 at 2000 steps, the other never does
    for name, evals in (("a", [0.1, 0.6, 0.8]), ("b", [0.0, 0.2, 0.3])):
        run = tmp_path / name
        run.mkdir()
        (run / "run.json").write_text(json.dumps({"config": {"skill": "reach", "method": name}, "trainable_params": 7,
                                                  "env_steps": 3000, "wall_seconds": 30.0,
                                                  "final_eval": {"success_rate": evals[-1]}}))
        rows = "iteration,env_steps,wall_seconds,eval_success_rate\n" + "".join(
            f"{i + 1},{1000 * (i + 1)},{10 * (i + 1)},{s}\n" for i, s in enumerate(evals))
        (run / "log.csv").write_text(rows)
    png = tmp_path / "cmp.png"
    out = tmp_path / "cmp.json"
    _ok(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--plot", str(png), "--json", str(out)])
    rows = json.loads(out.read_text())
    assert rows[0]["steps_to_0.5"] == 2000 and rows[0]["wall_s_to_0.5"] == 20
    assert rows[1]["steps_to_0.5"] is None and rows[1]["final_success"] == 0.3
    assert png.stat().st_size > 1000


def test_several_skills_and_seeds_run_in_parallel_processes(tmp_path):
    out = tmp_path / "multi"
    _ok(["train", "--skill", "reach", "--skill", "direction", "--seeds", "2", "--num-envs", "4", "--steps", "128",
         "--eval-envs", "2", "--out", str(out)])
    for skill in ("reach", "direction"):
        for seed in (0, 1):
            run = json.loads((out / skill / f"seed{seed}" / "run.json").read_text())
            assert run["config"]["seed"] == seed and run["env_steps"] == 128


@pytest.mark.slow
def test_runs_on_a_local_ray_instance(tmp_path):
    pytest.importorskip("ray", reason="ray is an optional extra: pip install 'tt-deploy[ray]'")
    out = tmp_path / "ray"
    _ok(["train", "--skill", "reach", "--seeds", "2", "--num-envs", "4", "--steps", "128", "--eval-envs", "2",
         "--out", str(out), "--ray-address", "local"])
    assert all((out / "reach" / f"seed{s}" / "run.json").is_file() for s in (0, 1))


def test_evaluate_bfm_writes_a_card_with_the_embedded_bfm_standing(tmp_path):
    card, js = tmp_path / "card.md", tmp_path / "abilities.json"
    _ok(["evaluate-bfm", "--episodes", "2", "--card", str(card), "--json", str(js), "--controller",
         "--steady-envs", "2", "--steady-seconds", "6"])
    data = json.loads(js.read_text())
    rows = data["abilities"]
    steady = data["steadiness"]
    assert [(r["command"], r.get("turn_rate", 0)) for r in steady] == [(0.5, 0), (1.0, 0), (1.5, 0), (0.5, 0.3),
                                                                      (1.0, 0.3), (1.5, 0.3)]  # fmt: skip
    assert all(r["envs"] == 2 and r["seconds"] == 6 for r in steady)
    assert [r["ability"].split()[0] for r in rows] == ["stand"] * 4 + ["hand", "walk", "reach-task", "stand", "walk"]
    assert rows[7]["condition"] == "friction x2"
    assert rows[-1].get("reference") and not rows[5].get("reference")  # the BFM's walk row; the controller's last
    assert rows[0]["success_rate"] == 1.0  # the embedded BFM stands 10 s unprompted (model card: 100 %)
    reach = rows[4]
    assert reach["episodes"] >= 8 and 0.0 <= reach["metrics"]["arm_ik_within_0_2m"] <= 1.0
    assert rows[6]["episodes"] >= 8  # reach-task targets: ~5 a env, no goal in the card
    text = card.read_text()
    assert "| stand 10 s, no prompt | nominal | 100 % |" in text and "## Recipe" in text
    assert "| reach-task target, right hand 0.6 s ahead (within 0.2 m) | root xy +-0.75 m, 0.05-1.6 m high |" in text
    assert "| the walking controller itself (DAgger teacher) |" in text and "| reference |" in text
    assert "| stand 10 s, no prompt | friction x2 | " in text and "| 2 | none |" in text  # no goal for that row
    assert "| stand 10 s, no prompt | nominal | 100 % | " in text and text.count(">= 95 %") == 4  # the four
    assert "## Walk steadiness (per control step, 2 envs x 6 s per row)" in text
    assert "| 0.5 m/s | straight |" in text and "| 1.5 m/s | 0.3 rad/s |" in text


def test_evaluate_bfm_runs_perturbed_copies_on_the_same_rows(tmp_path):
    js = tmp_path / "abilities.json"
    _ok(["evaluate-bfm", "--episodes", "1", "--json", str(js), "--weight-noise", "0.002", "--copies", "2",
         "--steady-envs", "0"])
    out = json.loads(js.read_text())
    noise = out["weight_noise"]
    assert [(r["ability"], r["condition"]) for r in noise] == [(r["ability"], r["condition"]) for r in out["abilities"]]
    assert all(len(r["copies"]) == 2 and r["min"] <= r["mean"] <= r["max"] for r in noise)
    assert noise[0]["copies"] == [1.0, 1.0]  # near-identical copies still stand unprompted
    res = runner.invoke(app, ["evaluate-bfm", "--weight-noise", "-1"])
    assert res.exit_code != 0 and "--weight-noise" in str(res.exception)


def test_train_rejects_a_non_positive_action_std(tmp_path):
    res = runner.invoke(app, ["train", "--skill", "reach", "--action-std", "0", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "--action-std" in str(res.exception)


def test_pretrain_dagger_rejects_a_missing_bfm(tmp_path):
    res = runner.invoke(app, ["pretrain-dagger", "--init-bfm", str(tmp_path / "none.safetensors"), "--rounds", "1",
                              "--out", str(tmp_path)])  # fmt: skip
    assert res.exit_code != 0 and "no such file" in str(res.exception)


def test_pretrain_dagger_rejects_a_bad_beta(tmp_path):
    res = runner.invoke(app, ["pretrain-dagger", "--beta", "0.8,fast", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "START,DECAY,FLOOR" in str(res.exception)


@pytest.mark.parametrize("bad, match", [(["--reach-labels", "teacher"], "reach_labels"),
                                        (["--reach-task-share", "1.5"], "--reach-task-share"),
                                        (["--mode-probs", "0,0,0"], "at least one"),
                                        (["--friction", "2,0.5"], "DAgger friction range must be 0 < LOW <= HIGH"),
                                        (["--friction", "1"], "--friction")])  # fmt: skip
def test_pretrain_dagger_rejects_bad_prompt_options(tmp_path, bad, match):
    res = runner.invoke(app, ["pretrain-dagger", "--rounds", "1", "--out", str(tmp_path), *bad])
    assert res.exit_code != 0 and match in str(res.exception)
    assert not (tmp_path / "checkpoints").exists()  # refused before any work


def test_train_cli_defaults_are_the_config_defaults():
    """`ttdeploy train` reads its defaults from the torch-free TrainConfig (train/config.py); this keeps them equal
    to the config's, and the method defaults its help text quotes, and --help free of torch."""
    import subprocess
    import sys

    code = "import sys; from tt_deploy.cli import _register; _register(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    import dataclasses
    import inspect

    from tt_deploy.cli.train import train_cmd
    from tt_deploy.train.task_token import TrainConfig, default_ppo

    cli = {n: p.default for n, p in inspect.signature(train_cmd).parameters.items()}
    cfg = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
    shared = sorted(set(cli) & set(cfg) - {"goals", "explore", "token_std"})  # CLI None = "the config decides"
    assert shared and {n: cli[n] for n in shared} == {n: cfg[n] for n in shared}
    import re
    import typing

    hints = typing.get_type_hints(train_cmd, include_extras=True)
    help_of = {n: h.__metadata__[0].help for n, h in hints.items() if hasattr(h, "__metadata__")}
    lr = help_of["actor_lr"]
    assert float(re.search(r"default ([0-9][0-9.e-]*[0-9])", lr).group(1)) == default_ppo("task-token").actor_lr
    assert float(re.search(r"([0-9][0-9.e-]*[0-9]) with --method finetune", lr).group(1)) == default_ppo("finetune").actor_lr
    assert float(re.search(r"default ([0-9][0-9.e-]*[0-9])", help_of["token_std"]).group(1)) == cfg["token_std"]
