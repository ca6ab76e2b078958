"""Does the embedded BFM ever leave the ground? Long jump success needs the mean body x 1.5 m past the line
at the first foot contact beyond it, i.e. a flight of well over a metre.

On the training's own evaluation episodes (`bfm` goals, seed 10000 + seed, the prior prompt fed) this runs
the prior-only BFM and, if given, a trained run's last encoder, and records per episode (first episode of
each env only): the longest flight (consecutive control steps with every foot/toe body under 1 N of
contact force; the first steps after the spawn count), how far the pelvis got past the take-off line,
its sideways drift, and which termination rule ended the episode (`tasks/long_jump.py`).

    python scripts/long_jump_probe.py [--run results/bfm/task-token/seed0/long_jump] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from probe_setup import probe_setup

from tt_deploy.models.checkpoints import load_encoder
from tt_deploy.rl.runner import to_torch
from tt_deploy.spec import CONTROL_DT, TASK_OBS_NAME
from tt_deploy.tasks.long_jump import FOOT_IDS, SUCCESS_LENGTH
from tt_deploy.train.task_token import _make_env

AIRBORNE_N = 1.0  # N: a foot body under this contact force is off the ground


@torch.no_grad()
def probe(env, act, steps: int) -> dict:
    n = env.num_envs
    task = env.task
    reason = np.array([""] * n, dtype=object)
    progress = np.full(n, -np.inf)  # the pelvis's furthest x relative to the line, m
    drift = np.zeros(n)  # the pelvis's largest |y - start y|, m (the corridor is +- 0.5 m)

    def terminate(prev_state, state, sim, orig=task.terminate):
        from tt_deploy.tasks.long_jump import landing, low_non_foot

        parts = {"landed past the line": landing(state, sim.contact_forces(), task.line_x),
                 "left the corridor": task.out_of_corridor(state),
                 "non-foot contact > 50 N": task.non_foot_contact(sim),
                 "non-foot body too low": low_non_foot(state, sim, task._heights)}
        pelvis = state.pos[:, 0]
        progress[:] = np.where(alive, np.maximum(progress, pelvis[:, 0] - task.line_x), progress)
        drift[:] = np.where(alive, np.maximum(drift, np.abs(pelvis[:, 1] - task.start_y)), drift)
        for i in np.flatnonzero(alive & (reason == "")):
            hit = [k for k, v in parts.items() if v[i]]
            if hit:
                reason[i] = " + ".join(hit)
        return orig(prev_state, state, sim)

    task.terminate = terminate
    step = env.reset()
    alive = np.ones(n, bool)
    flight = np.zeros(n, int)
    longest = np.zeros(n, int)
    for _ in range(steps):
        step = env.step(act(step))
        off = (env.sim.contact_forces()[:, FOOT_IDS] < AIRBORNE_N).all(axis=1)
        flight = np.where(off & alive, flight + 1, 0)
        longest = np.maximum(longest, flight)
        alive &= ~step.done
    return {"episodes": n, "longest_flight_s": float(longest.max() * CONTROL_DT),
            "median_longest_flight_s": float(np.median(longest) * CONTROL_DT),
            "episodes_with_any_flight": int((longest > 0).sum()),
            "success_length_m": SUCCESS_LENGTH,
            "pelvis_past_line_m_max": float(progress.max()), "pelvis_past_line_m_median": float(np.median(progress)),
            "corridor_drift_m_median": float(np.median(drift)),
            "ended": {k or "timeout": int((reason == k).sum()) for k in sorted(set(reason))}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=None, help="a long_jump training run dir (its checkpoints/last.safetensors)")
    ap.add_argument("--episodes", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    bfm, cfg, goal_kwargs, prior_only = probe_setup("long_jump", args.episodes)
    policies = {"prior-only": prior_only}
    if args.run:
        enc, _ = load_encoder(Path(args.run) / "checkpoints" / "last.safetensors")

        def token(step):
            obs = to_torch(step)
            return torch.clamp(bfm(obs, enc(obs[TASK_OBS_NAME])), -1, 1).numpy()

        policies[f"task token ({args.run})"] = token
    out = {}
    for name, act in policies.items():
        env = _make_env(cfg, args.episodes, seed=10_000 + args.seed, goal_kwargs=goal_kwargs)
        out[name] = probe(env, act, steps=round(cfg.episode_seconds / CONTROL_DT))
        print(name, json.dumps(out[name]))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
