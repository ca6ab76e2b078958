"""Why does a DAgger student lose push recovery that its anchor has? Issue #33's v11 candidates keep v10's idle
labels (mse on idle states ~2e-5) yet pass the card's push row 83-84 % against v10's 98 %.

    python scripts/push_probe.py STUDENT.safetensors [--anchor v10.safetensors] [--episodes 64] [--json OUT]

On the card's own push row (stand 10 s, no prompt, 0.5 m/s kicks at 2.5 / 5 / 7.5 s, the same seed), per variant:
- student / anchor alone: falls, and when they fall (control steps after the last kick);
- student, the anchor acting for the first K steps after each kick (K = 10, 30): is the loss in the recovery?
- the student's action error against the anchor on the student's own states, RMS per window: before the first
  kick, 0-10, 10-40 and 40+ steps after a kick (the DAgger label error where it matters).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from tt_deploy.models.checkpoints import DEFAULT_BFM_PATH, resolve_bfm
from tt_deploy.pretrain.evaluate import GROUPS, PUSH_SPEED, PUSH_STEPS, SECONDS, EvalPromptTask
from tt_deploy.pretrain.prompt_task import MODES
from tt_deploy.rl.runner import to_torch
from tt_deploy.sim.mujoco_backend import MujocoSimulator
from tt_deploy.tasks.env import TaskEnv
from tt_deploy.tasks.long_jump import FOOT_IDS

PUSH_ROW = next(g for g in GROUPS if g.pushes)
NO_KICK_YET = 10**6  # "steps since the last kick" before the first one
WINDOWS = {"before the first kick": (NO_KICK_YET, NO_KICK_YET + 10**4), "0-10 after": (0, 10), "10-40 after": (10, 40),
           "40+ after": (40, NO_KICK_YET)}


@torch.no_grad()
def run(student, anchor, episodes: int, seed: int, takeover: int = 0, anchor_first: bool = False) -> dict:
    """One push row; takeover K > 0: the anchor acts for K steps after each kick; anchor_first: the anchor acts
    until the first kick (the stance the kick meets is the anchor's)."""
    modes = np.full(episodes, MODES.index(PUSH_ROW.mode))
    sim = MujocoSimulator(episodes, nthread=2, seed=seed)
    task = EvalPromptTask(modes)
    env = TaskEnv(sim, task, episode_seconds=SECONDS + 1.0, seed=seed)
    rng = np.random.default_rng(seed)
    step = env.reset()
    alive, fall_step = np.ones(episodes, bool), np.full(episodes, -1)
    err = {k: [] for k in WINDOWS}
    last_push = -NO_KICK_YET
    for t in range(int(SECONDS * 30)):
        if t in PUSH_STEPS:
            ang = rng.uniform(0, 2 * np.pi, episodes)
            sim.push(np.arange(episodes), PUSH_SPEED * np.stack([np.cos(ang), np.sin(ang), np.zeros_like(ang)], -1))
            last_push = t
        obs = to_torch(step)
        a_s, a_a = torch.clamp(student(obs), -1, 1), torch.clamp(anchor(obs), -1, 1)
        since = t - last_push
        for name, (lo, hi) in WINDOWS.items():
            if lo <= since < hi and alive.any():
                err[name].append(float(((a_s - a_a)[torch.as_tensor(alive)] ** 2).mean()))
        act = a_a if 0 <= since < takeover or (anchor_first and t < PUSH_STEPS[0]) else a_s
        if t == PUSH_STEPS[0] - 1:  # the stance the first kick meets
            st = sim.body_state()
            feet = st.pos[:, [FOOT_IDS[0], FOOT_IDS[2]], :2]  # L_Ankle, R_Ankle
            stance = {"pelvis_height_m": float(st.pos[:, 0, 2].mean()),
                      "ankle_spread_m": float(np.linalg.norm(feet[:, 0] - feet[:, 1], axis=-1).mean()),
                      "pelvis_over_feet_m": float(np.linalg.norm(st.pos[:, 0, :2] - feet.mean(1), axis=-1).mean())}
        step = env.step(act.numpy())
        new = step.done & alive & step.info["fell"]
        fall_step[new] = t
        alive &= ~step.done
    pushes = np.array(PUSH_STEPS)
    after = [int(s - pushes[pushes <= s].max()) if (pushes <= s).any() else None for s in fall_step[fall_step >= 0]]
    return {"stood": float(alive.mean()), "falls": int((fall_step >= 0).sum()), "stance_before_kicks": stance,
            "fall_steps_after_kick": sorted(a for a in after if a is not None),
            "action_rms_vs_anchor": {k: float(np.sqrt(np.mean(v))) if v else None for k, v in err.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("student", type=Path)
    ap.add_argument("--anchor", type=Path, default=DEFAULT_BFM_PATH)
    ap.add_argument("--episodes", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--variants", default="", help="a ;-separated subset of the variants (default: all)")
    a = ap.parse_args()
    student, _ = resolve_bfm(a.student)
    anchor, _ = resolve_bfm(a.anchor)
    student.eval(), anchor.eval()
    out = {"student": str(a.student), "anchor": str(a.anchor), "episodes": a.episodes, "seed": a.seed, "rows": {}}
    variants = {"student": (student, 0), "anchor": (anchor, 0), "student, anchor 10 steps after kicks": (student, 10),
                "student, anchor 30 steps after kicks": (student, 30),
                "student, anchor from the first kick on": (student, NO_KICK_YET),
                "anchor until the first kick, then the student": (student, -1)}
    chosen = a.variants.split(";") if a.variants else list(variants)
    for name, (policy, k) in ((n, variants[n]) for n in chosen):
        row = run(policy, anchor, a.episodes, a.seed, takeover=max(k, 0), anchor_first=k < 0)
        out["rows"][name] = row
        print(name, json.dumps(row), flush=True)
    if a.json is not None:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
