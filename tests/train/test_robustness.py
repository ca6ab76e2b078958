"""The robustness figure: a run's policy rebuilt from its directory, evaluated under perturbation cells."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tt_deploy.cli import _register, app
from tt_deploy.errors import InputError
from tt_deploy.rl.runner import to_torch
from tt_deploy.sim.perturbations import Perturbation
from tt_deploy.train.robustness import evaluate_under, robustness_cells
from tt_deploy.train.run_policy import load_run_policy
from tt_deploy.train.task_token import TrainConfig, _make_env, train_skill

_register()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "direction"
    cfg = TrainConfig(skill="direction", prior=True, num_envs=8, steps=256, eval_envs=2, nthread=1, goals="bfm")
    train_skill(cfg, out)
    return out


def test_cells_sweep_friction_and_gravity_with_the_papers_point_and_nominal_once():
    cells = robustness_cells()
    names = [c.name for c in cells]
    assert names.count("nominal") == 1
    assert {c.friction for c in cells} == {0.4, 0.7, 1.0, 1.5, 2.0}
    assert any(abs(c.gravity * 9.81 - 15.0) < 1e-3 for c in cells)  # the paper's 15 m/s^2
    assert all(c.friction == 1.0 or c.gravity == 1.0 for c in cells)  # one knob per cell


def test_a_run_rebuilt_from_disk_acts_like_its_encoder_checkpoint(tiny_run):
    from tt_deploy.models.checkpoints import load_encoder

    cfg, policy, goals, used = load_run_policy(tiny_run)
    assert (cfg.skill, cfg.method, used) == ("direction", "task-token", "last.safetensors")
    enc, _ = load_encoder(tiny_run / "checkpoints" / "last.safetensors")
    step = _make_env(cfg, 3, seed=5, goal_kwargs=goals).reset()
    obs = to_torch(step)
    with torch.no_grad():
        expected = policy.joint_action(obs, enc(obs["task_obs"]))
        np.testing.assert_array_equal(policy.act_deterministic(obs).numpy(), expected.numpy())
        assert not torch.equal(expected, policy.joint_action(obs, torch.zeros_like(enc(obs["task_obs"]))))


def test_low_gravity_changes_the_outcome_and_rows_follow_the_cells(tiny_run):
    res = evaluate_under(tiny_run, [Perturbation(), Perturbation(gravity=0.5)], episodes=2)
    assert [c["cell"] for c in res["cells"]] == ["nominal", "gravity=0.5"]
    nominal, low = res["cells"]
    assert {"success_rate", "stride_success_rate", "fall_rate", "return"} <= set(nominal)
    assert nominal["return"] != low["return"]


def test_bad_runs_get_one_line_errors(tmp_path, tiny_run):
    with pytest.raises(InputError, match="no run.json"):
        load_run_policy(tmp_path)
    meta = json.loads((tiny_run / "run.json").read_text())
    bad = tmp_path / "other"
    (bad / "checkpoints").mkdir(parents=True)
    (bad / "run.json").write_text(json.dumps({**meta, "bfm_sha256": "0" * 64}))
    with pytest.raises(InputError, match="was trained on BFM"):
        load_run_policy(bad)
    (bad / "run.json").write_text(json.dumps({**meta, "config": {**meta["config"], "method": "prior-only"}}))
    with pytest.raises(InputError, match="prior-only"):
        load_run_policy(bad)


def test_cli_writes_json_and_plot(tiny_run, tmp_path, monkeypatch):
    import tt_deploy.train.robustness as rob

    monkeypatch.setattr(rob, "robustness_cells", lambda: (Perturbation(), Perturbation(friction=2.0)))
    res = CliRunner().invoke(app, ["robustness", str(tiny_run), "--episodes", "2", "--json", str(tmp_path / "r.json"),
                                   "--plot", str(tmp_path / "r.png")])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert [c["cell"] for c in data[0]["cells"]] == ["nominal", "friction=2"]
    assert (tmp_path / "r.png").stat().st_size > 1000
