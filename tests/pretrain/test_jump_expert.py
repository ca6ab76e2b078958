"""The jump expert: its env replays the probe's scripted jump exactly, residual 0 is the script, a crash pays a
miss, and training measures and obeys its stop rule."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from tt_deploy.errors import InputError
from tt_deploy.pretrain.jump_expert import (
    CLOCK_DIM,
    DESIGNS,
    JumpConfig,
    JumpPolicy,
    JumpReward,
    JumpStopRule,
    SpeedCurriculum,
    make_env,
    measure_jumps,
    record_reference,
    train_jump,
)
from tt_deploy.pretrain.jump_script import MISSED, JumpJudge, ScriptedJump, knot_targets, script_path
from tt_deploy.rl.runner import to_torch
from tt_deploy.spec import TASK_OBS_NAME

CFG = JumpConfig(nthread=1)


def test_the_script_alone_jumps_as_the_probe_measured_and_fails_from_a_moving_start():
    """results/probes/jump_feasibility.json: 1.958 m with 0.733 s of flight from the reset pose."""
    still, moving = measure_jumps(None, CFG, start_speeds=(0.0, 1.0), envs=4, jitter=(0.0, 0.0))
    assert still["success"] == 1.0 and still["median_length_m"] == pytest.approx(1.958, abs=2e-3)
    assert still["median_flight_s"] == pytest.approx(0.733, abs=0.02)
    assert moving["success"] == 0.0  # open loop: what the expert is for


def test_measured_starts_differ_so_a_measurement_is_not_one_jump_repeated():
    env = make_env(CFG, 6, 0, (0.5, 0.5), jitter=(0.05, 0.02))
    env.reset()
    st = env.sim.body_state()
    speeds = st.lin_vel[:, 0, 0]
    assert len(np.unique(np.round(speeds, 6))) == 6 and np.all(np.abs(speeds - 0.5) <= 0.05 + 1e-6)
    assert len(np.unique(np.round(env.sim.joint_state()[0][:, 0], 9))) == 6


def test_per_env_script_times_equal_the_scalar_clock():
    s = ScriptedJump.from_probe()
    t = np.array([0.0, 0.21, 0.5, 1.3, 2.0])
    base, off = np.tile(s.base, (5, 1)), np.tile(np.asarray(s.offsets), (5, 1, 1))
    per_env = s.targets(t)
    for i, ti in enumerate(t):
        assert np.array_equal(per_env[i], knot_targets(base[i : i + 1], off[i : i + 1], ti)[0])


def test_zero_residual_is_the_script_and_the_residual_is_in_radians():
    env = make_env(CFG, 3, 0, (0.0, 0.5))
    obs = to_torch(env.reset())
    policy = JumpPolicy(env.sim.hm.pd_scale)
    ids = policy.joint_ids.numpy()
    script_row = obs[TASK_OBS_NAME][:, CLOCK_DIM:]
    assert torch.equal(policy.env_action(obs, torch.zeros(3, len(ids))), script_row)
    moved = policy.env_action(obs, torch.full((3, len(ids)), 0.1)).numpy() - script_row.numpy()
    assert np.allclose(moved[:, ids] * env.sim.hm.pd_scale[ids], 0.1, atol=1e-6)
    assert np.allclose(np.delete(moved, ids, axis=1), 0.0)


def test_a_start_on_the_ground_is_a_miss_and_ends_the_episode():
    env = make_env(CFG, 2, 0, (0.0, 0.0))
    env._start_state = lambda ids: {"root_quat": np.tile([0.7071068, 0, 0, 0.7071068], (len(ids), 1)),
                                    "root_pos": np.tile([0.0, 0.0, 0.25], (len(ids), 1))}  # fmt: skip
    env.reset()
    step = env.step(np.zeros((2, 69)))
    assert step.done.all() and step.info["task_terminated"].all() and not step.info["success"].any()
    assert np.all(step.reward <= MISSED + 0.1)


def test_the_judge_needs_two_steps_in_the_air_and_a_foot_past_the_line():
    judge = JumpJudge(1)
    pos = np.zeros((1, 24, 3))
    none, ground = np.zeros((1, 24)), np.zeros((1, 24))
    for _ in range(2):
        assert not judge.step(pos, none, np.array([0]))[0]
    assert judge.took_off[0] and judge.line[0] == 0.0
    pos[:, :, 0] = 1.7  # every body 1.7 m past the line, the feet too
    ground[0, 3] = 600.0  # a foot body (L_Ankle) carries the landing
    assert judge.step(pos, ground, np.array([4]))[0]
    assert judge.landed[0] and judge.length[0] == pytest.approx(1.7)


def test_v3_trains_on_jittered_starts_and_a_timeout_without_a_jump_pays_a_miss():
    cfg = replace(DESIGNS["v3"], nthread=1)
    env = make_env(cfg, 2, 0)
    assert env.jitter == (0.05, 0.02)  # training starts as jittered as the measurement's
    env.reset()
    rewards = []
    for _ in range(env.max_steps):  # the rest pose held: it never jumps
        step = env.step(np.zeros((2, 69)))
        rewards.append(step.reward.copy())
        if step.done.any():
            break
    assert step.info["timeout"].all() and np.all(rewards[-1] <= MISSED + 0.1) and np.all(np.abs(rewards[-2]) < 0.1)


def test_v4_tracks_the_scripts_own_jump_and_starts_inside_it_before_takeoff():
    cfg = replace(DESIGNS["v4"], nthread=1, start_jitter=(0.0, 0.0))
    ref = record_reference(cfg.script, cfg.script_run_up, cfg.takeoff_steps)
    assert 0 < ref.takeoff < len(ref) and ref.root_pos[-1, 0] > 1.5  # a push-off on the ground, then the flight
    env = make_env(cfg, 64, 3)
    step = env.reset()
    k = env.task.start_step.copy()
    assert (k == 0).any() and (k > 0).any() and k.max() < ref.takeoff  # reference starts, only before takeoff
    q = env.sim.joint_state()[0]
    assert np.allclose(q, ref.joint_pos[k], atol=1e-9)  # each env starts in its reference frame
    # the script's clock starts at the frame: its observation is the script's action at that time
    assert np.allclose(to_torch(step)[TASK_OBS_NAME][:, 0].numpy(), k * 1 / 30 / 2.5, atol=1e-6)
    step = env.step(to_torch(step)[TASK_OBS_NAME][:, CLOCK_DIM:].numpy())
    assert np.all(env.task.terms["imitation"] > 0.9)  # the script from its own frames stays on its own jump
    env = make_env(cfg, 1, 3)
    env.reset()
    step = env.step(np.zeros((1, 69)))  # the rest pose held while the reference crouches: tracked worse
    assert env.task.terms["imitation"][0] < 0.9
    assert make_env(cfg, 2, 0, (0.0, 0.0)).rsi_prob == 0.0  # a measurement starts at the reset pose


def test_v5_seats_jittered_starts_on_their_lowest_foot_and_names_each_miss():
    from tt_deploy.tasks.long_jump import FOOT_IDS

    cfg = replace(DESIGNS["v5"], nthread=1)
    lowest = []
    for seat in (False, True):
        env = make_env(replace(cfg, seat_jitter=seat), 16, 0, (0.0, 0.0), jitter=(0.0, 0.02))
        env.reset()
        lowest.append(env.sim.body_state().pos[:, FOOT_IDS, 2].min(-1))
    assert np.ptp(lowest[0]) > 5e-3 and np.ptp(lowest[1]) < 1e-6  # unseated, a foot sinks or hangs by mm
    row = measure_jumps(None, cfg, start_speeds=(0.0,), envs=8)[0]
    assert sum(row["outcomes"].values()) == 8 and row["outcomes"].get("success", 0) == round(row["success"] * 8)


def test_v7_seats_jittered_starts_by_their_lowest_geom_not_a_foot_bodys_origin():
    from tt_deploy.sim.humanoid_model import lowest_geom_z

    lowest = {}
    for by in ("foot_body", "geom"):
        cfg = replace(DESIGNS["v7"], nthread=1, seat_by=by)
        env = make_env(cfg, 16, 0, (0.0, 0.0), jitter=(0.0, 0.02))
        env.reset()
        lowest[by] = lowest_geom_z(env.sim.hm, env.sim.raw_qpos(np.arange(16)))
    stand = lowest_geom_z(env.sim.hm, env.sim._stand[None])[0]  # the reset pose: 2 mm of clearance
    assert np.allclose(lowest["geom"], stand, atol=1e-9)
    assert lowest["foot_body"].min() < stand - 1e-3  # a foot origin seated, a box corner still in the floor
    with pytest.raises(InputError, match="seat_by"):
        replace(CFG, seat_by="toes")


def test_a_hop_shorter_than_the_takeoff_is_not_a_jump():
    """v2's judge: 2 steps in the air (the script's crouch under action noise) do not end the jump."""
    judge = JumpJudge(1, takeoff_steps=5)
    pos, ground = np.zeros((1, 24, 3)), np.zeros((1, 24))
    ground[0, 3] = 600.0
    for _ in range(2):
        judge.step(pos, np.zeros((1, 24)), np.array([0]))
    assert not judge.step(pos, ground, np.array([4]))[0] and not judge.took_off[0]
    for _ in range(5):
        judge.step(pos, np.zeros((1, 24)), np.array([0]))
    pos[:, :, 0] = 1.6
    assert judge.step(pos, ground, np.array([4]))[0] and judge.landed[0]


def test_a_firm_landing_judge_waits_past_a_light_first_touch_as_the_reference_does():
    """v6: the reference lands at the first step with > 50 N; a lighter touch neither lands nor misses."""
    results = []
    for firm in (False, True):
        judge = JumpJudge(1, takeoff_steps=2, firm_landing=firm)
        pos, light, ground = np.zeros((1, 24, 3)), np.zeros((1, 24)), np.zeros((1, 24))
        for _ in range(3):
            judge.step(pos, np.zeros((1, 24)), np.array([0]))
        pos[:, :, 0] = 1.6
        light[0, 3], ground[0, 3] = 20.0, 600.0  # a foot grazes the ground, then carries the landing
        first = bool(judge.step(pos, light, np.array([1]))[0])
        results.append((first, bool(judge.step(pos, ground, np.array([4]))[0]), bool(judge.landed[0])))
    assert results[0] == (True, False, False) and judge.miss[0] == 0  # the old judge: a miss at the graze
    assert results[1] == (False, True, True) and judge.length[0] == pytest.approx(1.6)
    assert DESIGNS["v6"].firm_landing and not DESIGNS["v5"].firm_landing


def test_training_measures_and_obeys_its_stop_rule(tmp_path):
    cfg = replace(CFG, num_envs=8, steps=8 * 32 * 2, eval_every=1000,
                  stop_rule=JumpStopRule(at_steps=8 * 32, start_speeds=(0.0,), envs=4, min_success=1.01))  # fmt: skip
    result = train_jump(cfg, tmp_path / "run")
    verdict = json.loads((tmp_path / "run" / "stop_rule.json").read_text())
    assert result["stop_rule"]["passed"] is False and verdict["rows"][0]["start_speed"] == 0.0
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["status"] == "stopped by the stop rule" and len(run["script_sha256"]) == 64
    assert (tmp_path / "run" / "checkpoints" / "last_policy.safetensors").is_file()
    with pytest.raises(InputError, match="stop rule failed"):
        train_jump(cfg, tmp_path / "run", resume=True)
    with pytest.raises(InputError, match="other settings"):
        train_jump(replace(cfg, start_speed=(0.0, 2.0)), tmp_path / "run", resume=True)
    other = tmp_path / "script.json"  # the same path setting, another file behind it
    other.write_text((script_path(cfg.script)).read_text().replace("1", "2", 1))
    with pytest.raises(InputError, match="script_sha256"):
        train_jump(replace(cfg, script=str(other)), tmp_path / "run", resume=True, past_stop_rule=True)
    glide = "results/experts/glide-v3/seed0/checkpoints/last_policy.safetensors"
    with pytest.raises(InputError, match="not a 'tt-deploy jump expert' one"):
        train_jump(replace(cfg, init_policy=str(script_path(glide))), tmp_path / "warm")
    assert set(DESIGNS) == {"v1", "v2", "v3", "v4", "v5", "v6", "v7"} and DESIGNS["v2"].curriculum.step > 0 and DESIGNS["v2"].reward.success_w > 0


def test_the_curriculum_raises_the_start_speed_only_as_jumps_succeed():
    """v2: from the script's own 0 m/s start, the top start speed rises 0.1 m/s once the success EMA reaches 60 %."""
    cfg = replace(CFG, start_speed=(0.0, 0.3), curriculum=SpeedCurriculum(step=0.1, promote_at=0.6, ema=0.5),
                  reward=JumpReward(success_w=2.0))  # fmt: skip
    env = make_env(cfg, 4, 0)
    assert env.task.speed_top == 0.0
    step = env.reset()
    paid = []
    for _ in range(env.max_steps):
        step = env.step(to_torch(step)[TASK_OBS_NAME][:, CLOCK_DIM:].numpy())  # the script: succeeds at 0 m/s
        paid += list(step.reward[step.info["success"]])
        if step.done.any():
            break
    assert step.info["success"].all() and env.task.speed_top == pytest.approx(0.1)
    assert min(paid) == pytest.approx(1.958 + 2.0, abs=5e-3)  # its length plus the success bonus
    fixed = make_env(cfg, 2, 0, (0.5, 0.5))  # a measurement draws exactly its speed, no curriculum
    assert fixed.task.speed_top == 0.5 and fixed.task.curriculum.step == 0
