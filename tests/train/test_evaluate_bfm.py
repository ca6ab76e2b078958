from tt_deploy.train.evaluate_bfm import evaluate_walk_controller


def test_the_walking_controller_walks_its_evaluation_commands():
    # the reference row is the controller's own walk: forward along the command, upright, stepping
    row = evaluate_walk_controller(episodes=4, seed=0, nthread=1)
    m = row["metrics"]
    assert row["reference"] and row["episodes"] == 4
    assert m["mean_progress_m_s"] > 0.3 and m["fall_rate"] <= 0.25
    assert m["mean_min_foot_clear_frac"] > 0.25  # both feet off the ground (> 3 cm) in a quarter of the steps
