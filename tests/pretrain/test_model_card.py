import csv

import pytest

from tt_deploy.pretrain.model_card import _panels, write_card

STAND, WALK = "stand 10 s, no prompt", "walk 1 m/s, pelvis target 1 s ahead"  # evaluate.GROUPS rows: their goals
ROWS = [{"ability": STAND, "condition": "nominal", "success_rate": 1.0, "ci95": (0.94, 1.0), "episodes": 64,
         "metrics": {"fall_rate": 0.0}},
        {"ability": WALK, "condition": "nominal", "success_rate": 0.25, "ci95": (0.16, 0.37), "episodes": 64,
         "metrics": {"progress_m_s": 0.31, "heading_err_deg": float("nan")}}]  # fmt: skip


def _log(path, columns):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["env_steps", *columns])
        w.writeheader()
        for i in range(1, 4):
            w.writerow({"env_steps": i * 1000, **{c: 0.1 * i for c in columns}})
    return path


@pytest.mark.parametrize("columns", [["ep_length", "reach_hand_dist", "walk_speed_along"],  # PPO pretraining
                                     ["walk_falls_per_10s", "walk_speed", "beta"]])  # DAgger  # fmt: skip
def test_card_has_cost_table_goals_and_the_curves_of_either_log(tmp_path, columns):
    info = {"recipe": "r", "env_steps": 1000, "wall_seconds": 100.0, "init_env_steps": 9000, "init_wall_seconds": 900.0}
    card = write_card(tmp_path / "card.md", rows=ROWS, bfm_info=info, params=466_000, config="small", recipe=None,
                      log_csv=_log(tmp_path / "log.csv", columns), episodes=64, seed=0)  # fmt: skip
    text = card.read_text()
    assert "| pretraining env steps | 10,000 |" in text  # warm-start cost counted
    assert "0.28 h on 2 CPU cores = 0.56 CPU-hours" in text
    assert f"| {WALK} | nominal | 25 % | 16-37 % | 64 | >= 70 % | progress_m_s 0.31 |" in text
    assert "heading_err_deg" not in text  # NaN metrics are left out
    assert (tmp_path / "img" / "bfm_training_curves.png").stat().st_size > 1000


def test_curves_follow_the_log_kind():
    assert [c for c, _ in _panels(["env_steps", "walk_falls_per_10s", "walk_speed", "beta"])] == [
        "walk_falls_per_10s", "walk_speed", "beta"]
    assert [c for c, _ in _panels(["env_steps", "ep_length", "reach_hand_dist"])] == [
        "ep_length", "reach_hand_dist", "walk_speed_along"]


def test_a_reference_row_is_not_held_to_the_bfm_goal(tmp_path):
    ref = {**ROWS[1], "condition": "the walking controller itself", "reference": True}
    text = write_card(tmp_path / "card.md", rows=[*ROWS, ref], bfm_info={}, params=1, config="small", recipe=None, log_csv=None,
                      episodes=64, seed=0).read_text()  # fmt: skip
    assert f"| {WALK} | nominal | 25 % | 16-37 % | 64 | >= 70 % |" in text
    assert f"| {WALK} | the walking controller itself | 25 % | 16-37 % | 64 | reference |" in text


def test_rows_without_an_issue_goal_say_none(tmp_path):
    high = {**ROWS[0], "condition": "friction x2", "success_rate": 0.0, "ci95": (0.0, 0.06)}  # GROUPS: no goal
    pushed = {**ROWS[0], "condition": "random pushes 0.5 m/s"}
    text = write_card(tmp_path / "card.md", rows=[*ROWS, pushed, high], bfm_info={}, params=1, config="small",
                      recipe=None, log_csv=None, episodes=64, seed=0).read_text()  # fmt: skip
    assert f"| {STAND} | nominal | 100 % | 94-100 % | 64 | >= 95 % |" in text
    assert f"| {STAND} | random pushes 0.5 m/s | 100 % | 94-100 % | 64 | >= 95 % |" in text
    assert f"| {STAND} | friction x2 | 0 % | 0-6 % | 64 | none |" in text


def test_the_weight_noise_table_sits_beside_the_checkpoints_own_rate(tmp_path):
    noise = [{"ability": WALK, "condition": "nominal", "episodes": 64, "weight_noise": 0.002,
              "copies": [0.2, 0.1, 0.15], "mean": 0.15, "min": 0.1, "max": 0.2}]  # fmt: skip
    text = write_card(tmp_path / "card.md", rows=ROWS, bfm_info={}, params=1, config="small", recipe=None, log_csv=None,
                      episodes=64, seed=0, noise_rows=noise).read_text()  # fmt: skip
    assert "## Sensitivity to weight noise (3 copies, noise 0.002 x each weight tensor's std)" in text
    assert f"| {WALK} | nominal | 25 % | 15 % | 10-20 % |" in text
    plain = write_card(tmp_path / "plain.md", rows=ROWS, bfm_info={}, params=1, config="small", recipe=None, log_csv=None,
                       episodes=64, seed=0).read_text()  # fmt: skip
    assert "Sensitivity" not in plain


def test_the_recipe_is_rendered_from_the_embedded_bfms_sidecar_as_data(tmp_path):
    import json

    from tt_deploy.models.checkpoints import DEFAULT_BFM_PATH, default_bfm, recipe_sidecar
    from tt_deploy.pretrain.model_card import read_recipe

    recipe = read_recipe(DEFAULT_BFM_PATH)
    assert recipe_sidecar(DEFAULT_BFM_PATH).name == "bfm_small.recipe.json"
    _, info = default_bfm()
    assert info["recipe"] == recipe["name"]  # the checkpoint's own free-text recipe is ignored
    text = write_card(tmp_path / "card.md", rows=ROWS, bfm_info=info, params=1, config="small", recipe=recipe,
                      log_csv=None, episodes=64, seed=0).read_text()  # fmt: skip
    assert f"| recipe | {recipe['name']} |" in text
    last = recipe["stages"][-1]
    assert f"| {last['version']} | {last['method']} | {last['from']} | {last['env_steps'] / 1e6:.2f} M |" in text
    assert all(f"- {x}" in text for x in recipe["limitations"])
    assert "session" not in json.dumps(recipe) and "session" not in text.lower()
    bare = write_card(tmp_path / "bare.md", rows=ROWS, bfm_info={}, params=1, config="small", recipe=None,
                      log_csv=None, episodes=64, seed=0).read_text()  # fmt: skip
    assert "No recipe file beside this checkpoint." in bare and "- none recorded" in bare


def test_bfm_card_renders_from_an_abilities_file_and_refuses_other_json(tmp_path):
    import json

    from typer.testing import CliRunner

    from tt_deploy.cli import _register, app

    _register()
    good = tmp_path / "abilities.json"
    good.write_text(json.dumps({"evaluation": {"seed": 7, "episodes": 64}, "abilities": ROWS}))
    res = CliRunner().invoke(app, ["bfm-card", "--abilities", str(good), "--out", str(tmp_path / "card.md")])
    assert res.exit_code == 0, res.output
    text = (tmp_path / "card.md").read_text()
    assert "seed 7, 64 episodes per row" in text and f"| {STAND} | nominal | 100 % | 94-100 % | 64 | >= 95 % |" in text
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"rows": []}))
    res = CliRunner().invoke(app, ["bfm-card", "--abilities", str(bad), "--out", str(tmp_path / "x.md")])
    assert res.exit_code != 0 and "not an abilities file" in str(res.exception)
    assert not (tmp_path / "x.md").exists()


def test_the_mujoco_warp_column_sits_beside_each_row_and_must_match_the_card_episodes(tmp_path):
    import json

    from typer.testing import CliRunner

    from tt_deploy.cli import _register, app

    _register()
    good = tmp_path / "abilities.json"
    good.write_text(json.dumps({"evaluation": {"seed": 7, "episodes": 64}, "abilities": ROWS}))
    warp_rows = [dict(ROWS[0], success_rate=0.5, ci95=[0.38, 0.62])]
    warp = tmp_path / "warp.json"
    warp.write_text(json.dumps({"evaluation": {"seed": 7, "episodes": 64, "sim": "mjwarp"}, "abilities": warp_rows}))
    res = CliRunner().invoke(app, ["bfm-card", "--abilities", str(good), "--mjwarp-abilities", str(warp),
                                   "--out", str(tmp_path / "card.md")])  # fmt: skip
    assert res.exit_code == 0, res.output
    text = (tmp_path / "card.md").read_text()
    assert "| MuJoCo Warp (95 % CI) |" in text
    assert f"| {STAND} | nominal | 100 % | 94-100 % | 64 | >= 95 % | 50 % (38-62 %) |" in text
    assert all(" - |" in line for line in text.splitlines()[1:] if line.startswith("|") and ROWS[1]["condition"] in line
               and ROWS[1]["ability"] in line)  # a row MuJoCo Warp did not run says so
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"evaluation": {"seed": 8, "episodes": 64, "sim": "mjwarp"}, "abilities": warp_rows}))
    res = CliRunner().invoke(app, ["bfm-card", "--abilities", str(good), "--mjwarp-abilities", str(other),
                                   "--out", str(tmp_path / "x.md")])  # fmt: skip
    assert res.exit_code != 0 and "seed 7" in str(res.exception) and not (tmp_path / "x.md").exists()
