from tt_deploy.pretrain.evaluate import evaluate_reach_teacher, evaluate_walk_controller


def test_the_walking_controller_walks_its_evaluation_commands():
    # the reference row is the controller's own walk: forward along the command, upright, stepping
    row = evaluate_walk_controller(episodes=4, seed=0, nthread=1)
    m = row["metrics"]
    assert row["reference"] and row["episodes"] == 4
    assert m["mean_progress_m_s"] > 0.3 and m["fall_rate"] <= 0.25
    assert m["mean_min_foot_clear_frac"] > 0.25  # both feet off the ground (> 3 cm) in a quarter of the steps


def test_the_ik_teachers_arm_puts_the_hand_on_its_targets():
    # the reference hand row: the embedded BFM's action with the prompted arm from the IK teacher
    from tt_deploy.models.checkpoints import DEFAULT_BFM_PATH, load_bfm

    row = evaluate_reach_teacher(load_bfm(DEFAULT_BFM_PATH)[0], episodes=4, seed=0, nthread=1)
    assert row["reference"] and row["episodes"] >= 16  # 4 envs x ~5 targets of 2 s
    assert row["metrics"]["median_min_hand_dist_m"] < 0.2 and row["success_rate"] >= 0.5


def test_reach_task_rows_prompt_the_reach_tasks_targets():
    """task_targets envs get the reference reach task's targets (right hand, root xy +-0.75 m, 0.05-1.6 m
    high), the others the pretraining sector (within ~0.6 m of the shoulder line, 0.6-1.6 m high)."""
    import numpy as np

    from tt_deploy import spec
    from tt_deploy.pretrain.evaluate import EvalPromptTask
    from tt_deploy.pretrain.prompt_task import MODES
    from tt_deploy.sim.mujoco_backend import MujocoSimulator
    from tt_deploy.tasks.env import TaskEnv
    from tt_deploy.tasks.reach import HEIGHT_RANGE, XY_RANGE

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


def test_perturbed_copies_differ_slightly_and_leave_the_bfm_and_its_statistics_alone():
    import numpy as np
    import pytest
    import torch

    from tt_deploy.errors import InputError
    from tt_deploy.runtime.parity import random_inputs
    from tt_deploy.models.checkpoints import DEFAULT_BFM_PATH, load_bfm
    from tt_deploy.pretrain.evaluate import perturbed_copy

    bfm, _ = load_bfm(DEFAULT_BFM_PATH)
    before = {k: v.clone() for k, v in bfm.state_dict().items()}
    a, b, a2 = perturbed_copy(bfm, 0.002, 1), perturbed_copy(bfm, 0.002, 2), perturbed_copy(bfm, 0.002, 1)
    for k, v in bfm.state_dict().items():
        assert torch.equal(v, before[k])  # the original is untouched
    stats = {k for k, _ in bfm.named_buffers()}
    for k, v in a.state_dict().items():
        assert torch.equal(v, a2.state_dict()[k])  # a noise seed is one copy
        if k in stats:
            assert torch.equal(v, before[k])  # normaliser statistics stay
    changed = [k for k, v in a.named_parameters() if not torch.equal(v, before[k])]
    assert len(changed) > len(list(a.parameters())) // 2
    with torch.no_grad():
        obs = {k: torch.from_numpy(v) for k, v in random_inputs(32, np.random.default_rng(0), scale=1.0).items()}
        ref, da, db = (torch.clamp(m.eval()(obs), -1, 1) for m in (bfm, a, b))
    rms_a, rms_b = ((da - ref) ** 2).mean().sqrt().item(), ((db - ref) ** 2).mean().sqrt().item()
    assert 1e-5 < rms_a < 0.02 and 1e-5 < rms_b < 0.02 and rms_a != rms_b  # near-identical, not identical
    with pytest.raises(InputError):
        perturbed_copy(bfm, -0.1, 0)
