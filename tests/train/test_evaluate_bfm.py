from tt_deploy.train.evaluate_bfm import evaluate_walk_controller


def test_the_walking_controller_walks_its_evaluation_commands():
    # the reference row is the controller's own walk: forward along the command, upright, stepping
    row = evaluate_walk_controller(episodes=4, seed=0, nthread=1)
    m = row["metrics"]
    assert row["reference"] and row["episodes"] == 4
    assert m["mean_progress_m_s"] > 0.3 and m["fall_rate"] <= 0.25
    assert m["mean_min_foot_clear_frac"] > 0.25  # both feet off the ground (> 3 cm) in a quarter of the steps


def test_reach_task_rows_prompt_the_reach_tasks_targets():
    """task_targets envs get the reference reach task's targets (right hand, root xy +-0.75 m, 0.05-1.6 m
    high), the others the pretraining sector (within ~0.6 m of the shoulder line, 0.6-1.6 m high)."""
    import numpy as np

    from tt_deploy import spec
    from tt_deploy.sim.mujoco_backend import MujocoSimulator
    from tt_deploy.tasks.env import TaskEnv
    from tt_deploy.tasks.reach import HEIGHT_RANGE, XY_RANGE
    from tt_deploy.train.evaluate_bfm import EvalPromptTask
    from tt_deploy.train.pretrain_task import MODES

    n = 16
    like = np.arange(n) % 2 == 0
    sim = MujocoSimulator(n, nthread=1, seed=2)
    task = EvalPromptTask(np.full(n, MODES.index("reach")), task_targets=like)
    TaskEnv(sim, task, seed=2).reset()
    pelvis = sim.body_state().pos[:, 0]
    off = task.hand_target - pelvis
    assert (task.hand[like] == spec.BODY_NAMES.index("R_Hand")).all()
    assert np.all(np.abs(off[like, :2]) <= XY_RANGE)
    assert np.all((task.hand_target[like, 2] >= HEIGHT_RANGE[0]) & (task.hand_target[like, 2] <= HEIGHT_RANGE[1]))
    assert np.all(task.hand_target[~like, 2] >= 0.6)  # the pretraining sector's heights
    assert np.linalg.norm(off[like, :2], axis=-1).max() > np.linalg.norm(off[~like, :2], axis=-1).max()
    assert np.isfinite(task.target_ik).all()  # each target's arm-only IK residual is booked
