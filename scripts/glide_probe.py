"""Why a glide expert's walk swings: how much of its residual it uses, and where the speed swing sits.

    python scripts/glide_probe.py RUN_DIR [--speeds 0.5,0.7] [--envs 16] [--seconds 12] [--json OUT]

For each straight command: the deterministic residual's mean |r| per hinge group (rad; the bound is the run's
residual_rad) and the share of the bound it reaches; the per-step speed swing (std / mean along the command
after 2 s) of the expert and of the controller alone; and the share of the swing's variance within +-0.5 Hz
of the step frequency (the spectrum's peak between 1 and 5 Hz).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from tt_deploy import spec
from tt_deploy.pretrain.glide_expert import (
    COMMAND_DIM,
    DESIGNS,
    GlidePolicy,
    load_policy_weights,
    make_env,
    residual_joint_ids,
)
from tt_deploy.rl.runner import to_torch
from tt_deploy.spec import TASK_OBS_NAME

GROUPS = {"hips": ("Hip",), "knees": ("Knee",), "ankles/toes": ("Ankle", "Toe"),
          "trunk": ("Torso", "Spine", "Chest"), "arms/neck": ("Neck", "Head", "Thorax", "Shoulder", "Elbow", "Wrist", "Hand")}  # fmt: skip


def walk(cfg, policy, speed: float, envs: int, seconds: float) -> dict:
    goals = replace(cfg.goals, speed_range=(speed, speed), change_steps=(10**6, 10**6 + 1), random_prob=1.0,
                    fresh_cone=0.0)  # fmt: skip
    env = make_env(replace(cfg, episode_seconds=seconds + 1, nthread=1), envs, 10_000, goals)
    step, d = env.reset(), None
    steps = int(round(seconds / spec.CONTROL_DT))
    speeds, residuals = np.full((steps, envs), np.nan), []
    alive = np.ones(envs, bool)
    for k in range(steps):
        obs = to_torch(step)
        with torch.no_grad():
            r = policy.action_mean(obs) if policy is not None else torch.zeros(envs, len(residual_joint_ids()))
            action = (policy.env_action(obs, r) if policy is not None else obs[TASK_OBS_NAME][:, COMMAND_DIM:]).numpy()
        residuals.append(np.abs(r.numpy())[alive])
        d = env.task.tar_dir.copy() if d is None else d
        prev = env.sim.body_state().pos[:, 0, :2].copy()
        step = env.step(np.clip(action, -1, 1))
        alive &= ~step.done
        speeds[k] = np.where(alive, np.sum((env.sim.body_state().pos[:, 0, :2] - prev) / spec.CONTROL_DT * d, -1), np.nan)
    steady = speeds[int(2 / spec.CONTROL_DT):, alive]
    out = {"command": speed, "fall_rate": round(float(1 - alive.mean()), 3)}
    if alive.any():
        dev = steady - steady.mean(0)
        out["swing"] = round(float(np.mean(dev.std(0) / np.abs(steady.mean(0)))), 4)
        power = np.abs(np.fft.rfft(dev, axis=0)) ** 2
        freq = np.fft.rfftfreq(dev.shape[0], spec.CONTROL_DT)
        band = (freq >= 1) & (freq <= 5)
        peak = freq[band][np.argmax(power[band].sum(1))]
        near = np.abs(freq - peak) <= 0.5
        out["step_hz"], out["share_at_step_hz"] = round(float(peak), 2), round(float(power[near].sum() / power[1:].sum()), 3)
    res = np.concatenate(residuals, 0).mean(0)
    names = np.array(spec.JOINT_NAMES)[residual_joint_ids()]
    out["residual_rad"] = {g: round(float(res[[any(b in n for b in bodies) for n in names]].mean()), 4)
                           for g, bodies in GROUPS.items()}  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--speeds", default="0.5,0.7")
    ap.add_argument("--envs", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    record = json.loads((args.run / "run.json").read_text())
    cfg = DESIGNS[record["config"].get("design", "v1")]
    policy = GlidePolicy(make_env(replace(cfg, nthread=1), 1, 0).sim.hm.pd_scale, cfg.residual_rad, cfg.hidden)
    policy.load_state_dict(load_policy_weights(args.run / "checkpoints" / "last_policy.safetensors"))
    rows = []
    for v in (float(x) for x in args.speeds.split(",")):
        for who, p in (("expert", policy), ("controller", None)):
            row = {"walker": who, **walk(cfg, p, v, args.envs, args.seconds)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"run": str(args.run), "env_steps": record.get("env_steps"), "rows": rows},
                                        indent=2) + "\n")


if __name__ == "__main__":
    main()
