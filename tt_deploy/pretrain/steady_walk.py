"""How steadily a walker holds a commanded speed: the per-step numbers the reference direction rule judges.

Why its own measurement: the card's walk row (pretrain/evaluate.py) averages progress over 10 s, and a gait
whose pelvis speed swings 20 % within every step passes it, while the reference rule fails a goal segment the
first control step the speed is 20 % off. Here the speed is the pelvis displacement along the command over
one control step (as the reference computes it), after `settle_s`:
- swing: the mean over envs still up of std / own mean;
- mean error: the mean speed over those envs / command - 1;
- falls: the share of envs that fell within `seconds`.
One meter serves every walker: the glide expert (glide_expert.measure_walk) and a BFM on walk prompts
(`measure_bfm_walk`, the card's steadiness rows).
"""

from __future__ import annotations

import numpy as np
import torch

from tt_deploy import spec
from tt_deploy.pretrain.evaluate import EvalPromptTask
from tt_deploy.pretrain.prompt_task import MODES
from tt_deploy.rl.runner import to_torch
from tt_deploy.tasks.base import root_heading, unit_from_angle
from tt_deploy.tasks.env import TaskEnv

# issue #33's v11 walk numbers: each steadiness row passes with all three
MAX_SWING, MAX_MEAN_ERROR, MAX_FALLS = 0.08, 0.07, 0.05
CARD_SPEEDS = (0.5, 1.0, 1.5)  # m/s
CARD_TURN_RATE = 0.3  # rad/s: the turning rows' command direction turns at this rate


class SpeedMeter:
    """Per-step speed along each env's command, booked only while the env has not fallen."""

    def __init__(self, steps: int, envs: int):
        self.speed_along = np.full((steps, envs), np.nan)
        self.alive = np.ones(envs, bool)

    def book(self, k: int, prev_xy: np.ndarray, xy: np.ndarray, direction: np.ndarray, done: np.ndarray) -> None:
        self.alive &= ~done
        vel = (xy - prev_xy) / spec.CONTROL_DT
        self.speed_along[k] = np.where(self.alive, np.sum(vel * direction, -1), np.nan)

    def row(self, command: float, settle: int, ids: np.ndarray | None = None) -> dict:
        """The steadiness numbers of envs `ids` (default all) walked at `command` m/s."""
        ids = np.arange(self.alive.size) if ids is None else np.asarray(ids)
        alive = ids[self.alive[ids]]
        steady = self.speed_along[settle:, alive]
        if alive.size:
            mean = steady.mean(0)
            swing = steady.std(0) / np.maximum(np.abs(mean), 1e-6)
            mean_speed, swing_ = float(mean.mean()), float(swing.mean())
        else:
            mean_speed = swing_ = float("nan")
        return {"command": command, "mean_speed": round(mean_speed, 4), "mean_error": round(mean_speed / command - 1.0, 4),
                "swing": round(swing_, 4), "fall_rate": round(float(1.0 - self.alive[ids].mean()), 4),
                "envs": int(ids.size)}  # fmt: skip


def passes(row: dict) -> bool:
    """Issue #33's walk numbers: swing <= 8 %, mean within +-7 % of the command, falls <= 5 %."""
    return bool(row["swing"] <= MAX_SWING and abs(row["mean_error"]) <= MAX_MEAN_ERROR and row["fall_rate"] <= MAX_FALLS)


class SteadyWalkTask(EvalPromptTask):
    """Walk prompts only, each env at its own fixed speed, starting straight ahead; no goal changes."""

    def __init__(self, speeds: np.ndarray):
        super().__init__(np.full(len(speeds), MODES.index("walk")))
        self.speeds = np.asarray(speeds, np.float64)

    def _sample(self, env_ids, state, sim, rng) -> None:
        super()._sample(env_ids, state, sim, rng)
        self.walk_speed[env_ids] = self.speeds[env_ids]
        self.walk_dir[env_ids] = unit_from_angle(root_heading(state.select(env_ids)))


@torch.no_grad()
def measure_bfm_walk(bfm, speeds=CARD_SPEEDS, *, turn_rate: float = 0.0, envs: int = 32, seconds: float = 20.0,
                     settle_s: float = 5.0, seed: int = 10_000, nthread: int = 2, sim: str = "mujoco") -> list[dict]:
    """`bfm` (its mean action) on walk prompts at each fixed speed, all speeds in one batched simulation;
    turn_rate (rad/s): the command's direction turns at this rate from the start. One row per speed."""
    from tt_deploy.sim.registry import make_simulator

    bfm.eval()
    per_env = np.repeat(np.asarray(speeds, np.float64), envs)
    simulator = make_simulator(sim, num_envs=per_env.size, nthread=nthread, seed=seed)
    task = SteadyWalkTask(per_env)
    env = TaskEnv(simulator, task, episode_seconds=seconds + 1.0, seed=seed)
    steps = int(round(seconds / spec.CONTROL_DT))
    settle = min(int(round(settle_s / spec.CONTROL_DT)), steps // 2)
    meter = SpeedMeter(steps, per_env.size)
    step = env.reset()
    for k in range(steps):
        if turn_rate:
            theta = np.arctan2(task.walk_dir[:, 1], task.walk_dir[:, 0]) + turn_rate * spec.CONTROL_DT
            task.walk_dir[:] = unit_from_angle(theta)  # the prompt shows it from the next step on (0.01 rad late)
        direction = task.walk_dir.copy()
        prev = simulator.body_state().pos[:, 0, :2].copy()
        step = env.step(torch.clamp(bfm(to_torch(step)), -1.0, 1.0).numpy())
        meter.book(k, prev, simulator.body_state().pos[:, 0, :2], direction, step.done)
    rows = []
    for i, v in enumerate(speeds):
        row = meter.row(float(v), settle, np.arange(i * envs, (i + 1) * envs))
        rows.append({**row, "seconds": seconds, **({"turn_rate": turn_rate} if turn_rate else {})})
    return rows
