"""Goal presets: `reference` is the paper's ranges, `bfm` follows the BFM's measured abilities by fixed rules."""

import json

import numpy as np
import pytest
from task_helpers import FakeSim, make_state

from tt_deploy.errors import InputError, UnknownNameError
from tt_deploy.obs.rotations import heading_angle
from tt_deploy.tasks.goals import abilities_path, goal_preset, task_kwargs_from_record
from tt_deploy.tasks.reach import HAND_ROW_HEIGHT
from tt_deploy.tasks.registry import make_task


@pytest.fixture
def abilities(tmp_path):
    doc = {"abilities": [{"ability": "walk 1 m/s, pelvis target 1 s ahead", "condition": "nominal",
                          "metrics": {"mean_progress_m_s": 0.6}},
                         {"ability": "walk 1 m/s, pelvis target 1 s ahead", "condition": "the controller",
                          "metrics": {"mean_progress_m_s": 0.9}}]}
    path = tmp_path / "bfm.abilities.json"
    path.write_text(json.dumps(doc))
    return path


def test_bfm_preset_rules(abilities):
    kw, rec = goal_preset("bfm", "direction", abilities)
    assert kw["goals"].speed_range == (0.3, 0.6) and kw["goals"].fresh_cone == pytest.approx(np.pi / 2)
    assert rec["preset"] == "bfm" and rec["walk_progress_m_s"] == 0.6 and len(rec["abilities_sha256"]) == 64
    assert goal_preset("bfm", "strike", abilities)[0] == {"dist_range": (0.5, 3.6), "near_dist": 1.5}
    assert goal_preset("bfm", "long_jump", abilities)[0] == {"line_dist": 3.6, "goal_dist": 13.6}
    assert goal_preset("bfm", "reach", abilities)[0] == {"targets": "hand_row"}
    assert goal_preset("reference", "reach") == ({}, {"preset": "reference"})


@pytest.mark.parametrize("skill", ["direction", "steering", "reach", "strike", "long_jump"])
def test_a_recorded_preset_rebuilds_the_same_task_kwargs(abilities, skill):
    kw, rec = goal_preset("bfm", skill, abilities)
    assert task_kwargs_from_record(skill, json.loads(json.dumps(rec))) == kw


def test_bfm_goals_stay_inside_the_measured_envelope(abilities):
    n = 2000
    state = make_state(n, root=(0.0, 0.0, 0.9), yaw=1.0)
    sim = FakeSim(state)
    direction = make_task("direction", n, **goal_preset("bfm", "direction", abilities)[0])
    direction.reset(np.arange(n), sim, np.random.default_rng(0))
    moving = direction.tar_speed > 0
    assert np.all((direction.tar_speed[moving] >= 0.3) & (direction.tar_speed[moving] <= 0.6))
    rel = (np.arctan2(direction.tar_dir[:, 1], direction.tar_dir[:, 0]) - heading_angle(state.quat[:, 0]))
    assert np.all(np.abs((rel + np.pi) % (2 * np.pi) - np.pi) <= np.pi / 2 + 1e-9)  # within +-90 deg of heading
    reach = make_task("reach", n, **goal_preset("bfm", "reach", abilities)[0])
    reach.reset(np.arange(n), sim, np.random.default_rng(0))
    assert np.all((reach.target[:, 2] >= HAND_ROW_HEIGHT[0]) & (reach.target[:, 2] <= HAND_ROW_HEIGHT[1]))
    assert np.linalg.norm(reach.target[:, :2], axis=-1).max() < 0.8  # the hand row's reach, not +-0.75 m boxes


def test_bad_presets_and_missing_abilities_are_typed_errors(tmp_path):
    with pytest.raises(UnknownNameError, match="goal preset"):
        goal_preset("easy", "reach")
    with pytest.raises(InputError, match="abilities"):
        goal_preset("bfm", "reach", tmp_path / "nope.abilities.json")
    (tmp_path / "x.abilities.json").write_text("{}")
    with pytest.raises(InputError, match="walk row"):
        goal_preset("bfm", "direction", tmp_path / "x.abilities.json")
    assert abilities_path("/a/b/bfm_small.safetensors").name == "bfm_small.abilities.json"


def _bfm_beside(folder, doc: dict):
    """A (fake) BFM checkpoint path in `folder` whose abilities file beside it holds `doc`."""
    folder.mkdir()
    bfm = folder / "bfm.safetensors"
    abilities_path(bfm).write_text(json.dumps(doc))
    return bfm


def test_a_goal_record_of_another_abilities_file_is_reported_with_both_hashes(abilities, tmp_path):
    """The record keeps the file a skill was trained against; export/verify say when the file beside the BFM
    now differs: INFO when it sets the same goals (only other fields changed), WARNING when it sets others."""
    import logging

    from tt_deploy.hashing import sha256_file
    from tt_deploy.tasks.goals import check_goal_record

    _, rec = goal_preset("bfm", "direction", abilities)
    doc = json.loads(abilities.read_text())
    assert check_goal_record("direction", rec, abilities.with_name("bfm.safetensors")) is None  # the same file
    assert check_goal_record("direction", {"preset": "reference"}, abilities) is None
    assert check_goal_record("direction", rec, tmp_path / "no_file_beside.safetensors") is None
    bfm = _bfm_beside(tmp_path / "recipe", {**doc, "recipe": "reworded", "evaluation": {"seed": 0}})
    level, msg = check_goal_record("direction", rec, bfm)
    assert level == logging.INFO and rec["abilities_sha256"] in msg and sha256_file(abilities_path(bfm)) in msg
    assert "the goal ranges it sets are the recorded ones" in msg
    faster = {"abilities": [{**doc["abilities"][0], "metrics": {"mean_progress_m_s": 0.8}}]}
    level, msg = check_goal_record("direction", rec, _bfm_beside(tmp_path / "faster", faster))
    assert level == logging.WARNING and rec["abilities_sha256"] in msg and "speed_range" in msg
    assert "[0.3, 0.6]" in msg and "[0.4, 0.8]" in msg


def test_the_shipped_skills_goals_still_match_the_embedded_bfms_abilities():
    """reach, direction and steering were trained against earlier versions of bfm_small.abilities.json (its
    machine path scrubbed, the recipe text rewritten, an `evaluation` block added): their recorded hashes differ
    from the file now, but the goals it sets are the recorded ones, so export says so at INFO, never a warning."""
    import logging

    from tt_deploy.demo import SHIPPED_RUNS, shipped_skills
    from tt_deploy.models.checkpoints import DEFAULT_BFM_PATH
    from tt_deploy.tasks.goals import check_goal_record

    for skill in shipped_skills():
        found = check_goal_record(skill, json.loads((SHIPPED_RUNS / skill / "run.json").read_text())["goals"],
                                  DEFAULT_BFM_PATH)
        assert found is None or found[0] == logging.INFO, found
