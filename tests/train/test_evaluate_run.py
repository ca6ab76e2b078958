"""`ttdeploy evaluate`: a shipped skill and its prior on chosen seeds, paired; the paired gain is the mean of the
per-episode differences, and bad requests fail in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tt_deploy.cli import _register, app
from tt_deploy.demo import SHIPPED_RUNS
from tt_deploy.errors import InputError
from tt_deploy.train.evaluate_run import evaluate_run, paired_gain

_register()


def test_paired_gain_is_the_mean_per_episode_difference():
    def rows(passed, segments):
        return [{"per_env": {"passed": passed, "segments": segments, "fell": [False] * len(passed)}}]

    g = paired_gain(rows([2, 1, 0, 3], [2, 2, 1, 3]), rows([1, 1, 0, 0], [2, 2, 1, 3]))
    d = np.array([0.5, 0.0, 0.0, 1.0])
    assert g["gain"] == pytest.approx(d.mean()) and g["episodes"] == 4
    assert g["ci_low"] < g["gain"] < g["ci_high"]


def test_evaluate_cli_runs_a_shipped_skill_against_its_prior_on_chosen_seeds(tmp_path):
    out = tmp_path / "ev.json"
    res = CliRunner().invoke(app, ["evaluate", "--run", str(SHIPPED_RUNS / "reach"), "--seeds", "7001",
                                   "--episodes", "2", "--json", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["seeds"] == [7001] and set(data["methods"]) == {"trained", "prior-only"}
    for m in data["methods"].values():
        assert m["episodes"] == 2 and 0.0 <= m["ci_low"] <= m["success_rate"] <= m["ci_high"] <= 1.0
    assert -1.0 <= data["paired_gain"]["gain"] <= 1.0 and "paired gain" in res.output


def test_bad_requests_fail_in_one_line():
    with pytest.raises(InputError, match="--method"):
        evaluate_run(SHIPPED_RUNS / "reach", [1], 2, method="oracle")
    with pytest.raises(InputError, match="not a training run"):
        evaluate_run(SHIPPED_RUNS, [1], 2)
    res = CliRunner().invoke(app, ["evaluate", "--run", str(SHIPPED_RUNS / "reach"), "--seeds", "7001,x"])
    assert isinstance(res.exception, InputError) and "comma-separated integers" in str(res.exception)
