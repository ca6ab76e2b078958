"""How the direction success rule fares on a walking gait: the reference's per-step rule against the
same rule on the root velocity averaged over w control steps.

    python scripts/direction_rule_probe.py [--envs 32] [--steps 900] [--driver prior|controller|ENCODER.safetensors]

prior: the embedded BFM with the direction prior (prior-only); controller: the SIMBICON walking
controller the BFM was distilled from (pretrain/gait_teacher.py, other joints at rest); an encoder file:
a trained direction task token with its prior. Goals: the `bfm` preset; envs seeded like training's
evaluation (10,000). Prints, per window, the goal segments passed (max |e_rel| <= 0.2 over every measured
step after the 60-step grace) and the median of the segments' max |e_rel|.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from tt_deploy import spec
from tt_deploy.models.checkpoints import default_bfm, load_encoder
from tt_deploy.rl.runner import to_torch
from tt_deploy.train.policies import TaskTokenPolicy
from tt_deploy.train.task_token import TrainConfig, _make_env, resolve_goals

WINDOWS = (1, 5, 10, 20, 30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--envs", type=int, default=32)
    ap.add_argument("--steps", type=int, default=900)
    ap.add_argument("--driver", default="prior")
    args = ap.parse_args()
    torch.set_num_threads(1)
    bfm, info = default_bfm()
    bfm.freeze()
    cfg = TrainConfig(skill="direction", prior=True, goals="bfm", nthread=1)
    env = _make_env(cfg, args.envs, seed=10_000, goal_kwargs=resolve_goals(cfg, info)[0])
    task, n = env.task, args.envs
    policy = gait = None
    if args.driver == "controller":
        from tt_deploy.pretrain.gait_teacher import GaitTeacher

        gait = GaitTeacher(env.sim.hm, n)
    elif args.driver != "prior":
        enc, _ = load_encoder(args.driver)
        policy = TaskTokenPolicy(bfm, enc, visible_groups=("obs", "historical_pose_obs", "terrain",
                                                            "masked_mimic_target_poses"))  # fmt: skip
    hist = np.zeros((max(WINDOWS) + 1, n, 2))
    valid = np.zeros((max(WINDOWS) + 1, n), dtype=bool)
    seg_max = {w: np.zeros(n) for w in WINDOWS}
    seg_steps = {w: np.zeros(n, dtype=np.int64) for w in WINDOWS}
    closed: dict[int, list[float]] = {w: [] for w in WINDOWS}
    step = env.reset()
    for _ in range(args.steps):
        if gait is not None:
            st = env.sim.body_state()
            ids, act = gait.actions(st, env.sim.joint_state()[0], env.sim.contact_forces(), task.tar_dir, task.tar_speed)
            action = np.zeros((n, spec.ACTION_DIM), np.float32)
            action[:, ids] = act
        else:
            with torch.no_grad():
                obs = to_torch(step)
                out = torch.clamp(bfm(obs), -1, 1) if policy is None else policy.act_deterministic(obs)
            action = out.numpy()
        d, speed, change = task.tar_dir.copy(), task.tar_speed.copy(), task.change_at.copy()
        measuring = task.progress >= task.measure_from
        step = env.step(action)
        hist, valid = np.roll(hist, 1, 0), np.roll(valid, 1, 0)
        hist[0], valid[0] = env.sim.body_state().pos[:, 0, :2], ~step.done
        new_segment = step.done | (task.change_at != change)
        for w in WINDOWS:
            v = (hist[0] - hist[w]) / (w * spec.CONTROL_DT)
            err = speed - np.sum(d * v, axis=-1)
            e_rel = np.where(speed > 1e-4, err / np.maximum(speed, 1e-4), err)
            m = measuring & valid[: w + 1].all(0) & ~step.done
            seg_max[w] = np.where(m, np.maximum(seg_max[w], np.abs(e_rel)), seg_max[w])
            seg_steps[w] += m
            for i in np.flatnonzero(new_segment):
                if seg_steps[w][i]:
                    closed[w].append(seg_max[w][i])
                seg_max[w][i], seg_steps[w][i] = 0.0, 0
        if step.done.any():
            valid[:, step.done] = False
            if gait is not None:
                gait.reset(np.flatnonzero(step.done))
    print(f"driver {args.driver}: {args.envs} envs x {args.steps} steps")
    for w in WINDOWS:
        c = np.asarray(closed[w])
        print(f"window {w:2d} steps ({w * spec.CONTROL_DT:.2f} s): {c.size} segments, passed {np.mean(c <= 0.2):.1%}, "
              f"median max |e_rel| {np.median(c):.2f}")


if __name__ == "__main__":
    main()
