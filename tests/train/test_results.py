"""`ttdeploy compare --results ROOT`: the results table, its intervals and the robustness section, from run files."""

import json

import pytest

from tt_deploy.errors import InputError
from tt_deploy.stats import wilson_interval
from tt_deploy.train.results import write_results


def _run(root, method, seed, success, segments):
    run = root / "bfm" / method / f"seed{seed}" / "reach"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({
        "config": {"skill": "reach", "method": method.split("-oracle")[0], "seed": seed, "nthread": 1},
        "goals": {"preset": "bfm"}, "trainable_params": 0 if method == "prior-only" else 83264,
        "env_steps": 0 if method == "prior-only" else 2000, "wall_seconds": 20.0,
        "final_eval": {"success_rate": success, "segments": segments, "fall_rate": 0.05}}))
    if method != "prior-only":
        (run / "log.csv").write_text("iteration,env_steps,wall_seconds,eval_success_rate\n" + "".join(
            f"{i + 1},{1000 * (i + 1)},{10 * (i + 1)},{s}\n" for i, s in enumerate((0.3, success))))
    return run


def test_rows_pool_segments_over_seeds_and_the_robustness_section_renders(tmp_path):
    root = tmp_path / "results"
    _run(root, "task-token-oracle", 0, 0.75, 100)
    _run(root, "task-token-oracle", 1, 0.65, 100)
    _run(root, "prior-only", 0, 0.40, 100)
    rob = root / "robustness"
    rob.mkdir()
    cells = lambda s: [{"cell": "nominal", "friction": 1.0, "gravity": 1.0, "success_rate": s, "fall_rate": 0.0},  # noqa: E731
                       {"cell": "gravity=1.5", "friction": 1.0, "gravity": 1.5, "success_rate": s / 2, "fall_rate": 0.5}]
    (rob / "reach.json").write_text(json.dumps([
        {"skill": "reach", "method": "task-token", "seed": 0, "episodes": 4, "checkpoint": "last.safetensors",
         "cells": cells(0.8)},
        {"skill": "reach", "method": "finetune", "seed": 0, "episodes": 4, "checkpoint": "best_policy.safetensors",
         "cells": cells(0.6)}]))
    md = tmp_path / "docs" / "results.md"
    rows = write_results(root, md, tmp_path / "docs" / "results.json", tmp_path / "docs" / "img")
    oracle = next(r for r in rows if r["method"] == "task-token-oracle")
    assert oracle["seeds"] == 2 and oracle["success_mean"] == pytest.approx(0.70)
    assert oracle["ci95"] == pytest.approx(list(wilson_interval(140, 200)))  # pooled segments, not seed means
    assert oracle["steps_to_90"] == 2000  # the first evaluation at >= 90 % of each seed's final success
    text = md.read_text()
    assert "| bfm | reach | task-token-oracle | 2 | 70.0 +- 7.1 |" in text
    assert "| cell | task-token s0 | finetune s0 (best ckpt) |" in text
    assert "| gravity=1.5 | 40.0 (50.0) | 30.0 (50.0) |" in text
    assert (tmp_path / "docs" / "img" / "robustness_reach.png").stat().st_size > 1000
    assert "](img/robustness_reach.png)" in text


def test_an_empty_results_root_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="no runs under"):
        write_results(tmp_path, tmp_path / "r.md")


def test_runs_beside_an_earlier_prior_get_their_own_labelled_row(tmp_path):
    from tt_deploy.obs.priors import make_prior

    root = tmp_path / "results"
    for seed, (radius, success) in enumerate([(None, 0.10), (1.2, 0.02)]):
        run = root / ("bfm" if radius is None else "bfm-earlier") / "prior-only" / f"seed{seed}" / "strike"
        run.mkdir(parents=True)
        prior = make_prior("strike", 1, **({} if radius is None else {"strike_radius": radius})).describe()
        (run / "run.json").write_text(json.dumps({
            "config": {"skill": "strike", "method": "prior-only", "seed": seed}, "goals": {"preset": "bfm"},
            "task_prior": prior, "final_eval": {"success_rate": success, "segments": 50}}))
    rows = write_results(root, tmp_path / "results.md")
    assert [(r["prior_note"], r["seeds"], r["success_mean"]) for r in rows] == [("", 1, 0.10), ("strike_radius 1.2", 1, 0.02)]
    assert "| bfm | strike | prior-only (earlier prior: strike_radius 1.2) | 1 | 2.0 +- 0.0 |" in (tmp_path / "results.md").read_text()
