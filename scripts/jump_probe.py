"""Can this body jump? Issue #33's feasibility measurement for a long-jump expert.

    python scripts/jump_probe.py [--generations 25] [--population 64] [--run-up 0,1.5,3] [--refine 0] [--json OUT]

A scripted, symmetric crouch-extend-tuck of PD targets (15 numbers: crouch hip / knee / ankle / trunk and its
length, extension hip / knee / ankle / toe / shoulder / trunk and its length, tuck hip / knee / shoulder) is optimised by the
cross-entropy method, from a standing start and from a run-up (the body reset with a forward speed, the
stand-in for the walker's run-up). Scored as the reference long jump scores it (tasks/long_jump.py): the jump
line sits at the toes at takeoff; landing is the first step, after a flight, with a foot past the line and
more than 50 N of contact; length = mean body x at landing minus the line. A landing on a non-foot body
(or a first touch behind the line or under 50 N) scores its length minus 5 m. Reported per start: the longest flight (no contact at all), the longest jump length, and the
longest jump length with at least 0.3 s of flight, each the best script's, re-measured on fresh envs.
--refine G then searches G generations of time-varying offsets (8 knots over 1.4 s on hips, knees, ankles,
toes, trunk, shoulders) on top of that last script.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tt_deploy import spec
from tt_deploy.sim.mujoco_backend import MujocoSimulator
from tt_deploy.tasks.base import NON_FOOT
from tt_deploy.tasks.long_jump import FOOT_IDS, LANDING_FORCE

# name, low, high (rad, or s for the two lengths); sign conventions as in gait_teacher.py:
# hip y < 0 swings the thigh forward, knee y > 0 flexes, ankle y > 0 points the toe down.
PARAMS = (("crouch_hip", -1.6, 0.0), ("crouch_knee", 0.0, 2.2), ("crouch_ankle", -0.8, 0.3),
          ("crouch_trunk", 0.0, 0.8), ("crouch_s", 0.1, 0.6),
          ("extend_hip", -0.6, 0.6), ("extend_knee", -0.1, 0.6), ("extend_ankle", 0.0, 1.0),
          ("extend_toe", -0.5, 0.5), ("extend_shoulder", -2.5, 0.5), ("extend_s", 0.05, 0.4),
          ("tuck_hip", -1.8, 0.0), ("extend_trunk", -0.3, 0.9), ("tuck_knee", 0.0, 2.2),
          ("tuck_shoulder", -2.5, 0.5))  # fmt: skip
SECONDS = 2.5
MIN_FLIGHT = 0.3  # s: issue #33's flight for a long jump
CONTACT_N = 1.0  # N: a non-foot body touches the ground at landing


def _col(body: str, axis: str) -> list[int]:
    return [spec.JOINT_NAMES.index(f"{s}_{body}_{axis}") for s in ("L", "R")]


HIP, KNEE, ANKLE, TOE, SHOULDER = (_col(b, "y") for b in ("Hip", "Knee", "Ankle", "Toe", "Shoulder"))
TRUNK = [spec.JOINT_NAMES.index(f"{b}_y") for b in ("Torso", "Spine", "Chest")]


def targets(p: np.ndarray, t: float) -> np.ndarray:
    """(N, 69) PD targets (rad) of scripts p (N, 12) at time t s."""
    n = len(p)
    q = np.zeros((n, spec.NUM_DOF))
    crouch, extend = p[:, 4], p[:, 10]
    in_crouch, in_extend = t < crouch, (t >= crouch) & (t < crouch + extend)
    tuck = t >= crouch + extend
    for cols, a, b, c in ((HIP, 0, 5, 11), (KNEE, 1, 6, None), (ANKLE, 2, 7, None)):
        later = p[:, b] if c is None else np.where(tuck, p[:, c], p[:, b])
        q[:, cols] = np.where(in_crouch, p[:, a], later)[:, None]
    q[:, KNEE] = np.where(tuck, p[:, 13], q[:, KNEE][:, 0])[:, None]
    q[:, TOE] = np.where(in_extend, p[:, 8], 0.0)[:, None]
    q[:, SHOULDER] = np.where(in_crouch, 0.5, np.where(tuck, p[:, 14], p[:, 9]))[:, None]  # arms back, then forward
    q[:, TRUNK] = np.where(in_crouch, p[:, 3], np.where(in_extend, p[:, 12], 0.0))[:, None] / 3
    return q


KNOT_GROUPS = (HIP, KNEE, ANKLE, TOE, TRUNK, SHOULDER)
KNOT_SECONDS = 1.4  # the knots span the crouch, push-off and flight; the last offset holds after


def knot_targets(base: np.ndarray, offsets: np.ndarray, t: float) -> np.ndarray:
    """Refinement: scripts `base` (N, 15) plus offsets (N, K, groups) rad, linear between K knots over 1.4 s."""
    k = offsets.shape[1]
    x = min(t / KNOT_SECONDS, 1.0) * (k - 1)
    i = min(int(x), k - 2)
    off = offsets[:, i] + (x - i) * (offsets[:, i + 1] - offsets[:, i])
    q = targets(base, t)
    for g, cols in enumerate(KNOT_GROUPS):
        q[:, cols] += off[:, g : g + 1]
    return q


def rollout(sim: MujocoSimulator, p: np.ndarray, run_up: float, offsets: np.ndarray | None = None) -> dict:
    """Score scripts p (N, 15), refined by knot offsets (N, K, groups) if given, on sim's N envs."""
    n = sim.num_envs
    sim.reset(root_lin_vel=np.tile([run_up, 0.0, 0.0], (n, 1)))
    steps = int(round(SECONDS / spec.CONTROL_DT))
    airborne = np.zeros(n)
    flight = np.zeros(n)
    took_off = np.zeros(n, bool)
    done = np.zeros(n, bool)
    length = np.full(n, -5.0)
    line = np.zeros(n)
    for k in range(steps):
        t = k * spec.CONTROL_DT
        q = targets(p, t) if offsets is None else knot_targets(p, offsets, t)
        sim.step(q / sim.pd_scale)
        pos = sim.body_state().pos
        force = sim.contact_forces()
        air = sim.contact_counts() == 0  # the per-body forces are the last substep's: they miss contacts
        starts = air & (airborne == 0) & ~took_off
        line = np.where(starts, pos[:, FOOT_IDS, 0].max(-1), line)  # the toes at takeoff
        airborne = np.where(air, airborne + 1, 0)
        flight = np.where(done, flight, np.maximum(flight, airborne * spec.CONTROL_DT))
        took_off |= air & (airborne >= 2)  # two control steps in the air: a flight, not a skid
        touch = took_off & ~air & ~done
        foot_land = touch & (np.sqrt((force**2).sum(-1)) > LANDING_FORCE) & (pos[:, FOOT_IDS, 0] > line[:, None]).any(-1)
        foot_land &= ~(force[:, NON_FOOT] > CONTACT_N).any(-1)
        jump = pos[:, :, 0].mean(-1) - line
        length = np.where(foot_land, jump, np.where(touch, jump - 5.0, length))
        done |= touch  # the first touch after a flight ends the jump, as landing ends the reference episode
        if done.all():
            break
    return {"flight_s": flight, "length_m": length,
            "length_m_with_flight": np.where(flight >= MIN_FLIGHT, length, length - 5.0)}


def cem(sim, run_up: float, key: str, generations: int, rng: np.random.Generator, elite: int = 8) -> np.ndarray:
    lo, hi = np.array([p[1] for p in PARAMS]), np.array([p[2] for p in PARAMS])
    mean, std = (lo + hi) / 2, (hi - lo) / 3
    best, best_score = mean, -np.inf
    for g in range(generations):
        pop = np.clip(rng.normal(mean, std, (sim.num_envs, len(PARAMS))), lo, hi)
        score = rollout(sim, pop, run_up)[key]
        order = np.argsort(score)[::-1]
        if score[order[0]] > best_score:
            best, best_score = pop[order[0]], float(score[order[0]])
        mean = pop[order[:elite]].mean(0)
        std = np.maximum(pop[order[:elite]].std(0), 0.02 * (hi - lo))
        print(f"  run-up {run_up} m/s, {key}, generation {g}: best {score[order[0]]:.3f}, elite mean "
              f"{score[order[:elite]].mean():.3f}", flush=True)
    return best, best_score


def refine(sim, base: np.ndarray, run_up: float, key: str, generations: int, rng: np.random.Generator,
           knots: int = 8, elite: int = 16) -> tuple[np.ndarray, float]:
    """CEM over knot offsets (+-0.6 rad) on top of one script: a finer, time-varying search."""
    shape = (knots, len(KNOT_GROUPS))
    mean, std = np.zeros(shape), np.full(shape, 0.2)
    p = np.tile(base, (sim.num_envs, 1))
    best, best_score = mean, rollout(sim, p[:1].repeat(sim.num_envs, 0), run_up, np.zeros((sim.num_envs, *shape)))[key][0]
    for g in range(generations):
        pop = np.clip(rng.normal(mean, std, (sim.num_envs, *shape)), -0.6, 0.6)
        pop[0] = best
        score = rollout(sim, p, run_up, pop)[key]
        order = np.argsort(score)[::-1]
        if score[order[0]] > best_score:
            best, best_score = pop[order[0]].copy(), float(score[order[0]])
        mean = pop[order[:elite]].mean(0)
        std = np.maximum(pop[order[:elite]].std(0), 0.02)
        print(f"  refine run-up {run_up} m/s, {key}, generation {g}: best {score[order[0]]:.3f}", flush=True)
    return best, float(best_score)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generations", type=int, default=25)
    ap.add_argument("--population", type=int, default=64)
    ap.add_argument("--run-up", default="0,1.5,3")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--refine", type=int, default=0, help="then this many generations of knot refinement of the "
                                                          "best script with >= 0.3 s of flight (0: none)")
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    sim = MujocoSimulator(a.population, nthread=1)
    check = MujocoSimulator(16, nthread=1)
    out = {"generations": a.generations, "population": a.population, "refine": a.refine, "seconds": SECONDS,
           "rows": []}
    for v in (float(x) for x in a.run_up.split(",")):
        row = {"run_up_m_s": v}
        for key in ("flight_s", "length_m", "length_m_with_flight"):
            best, score = cem(sim, v, key, a.generations, rng)
            again = rollout(check, np.tile(best, (check.num_envs, 1)), v)
            print(f"  best {key} {score:.3f} in the search, {np.median(again[key]):.3f} re-measured", flush=True)
            row[f"script_for_{key}"] = {name: round(float(x), 3) for (name, _, _), x in zip(PARAMS, best)}
            row[f"its_{key}"] = {k: round(float(np.median(x)), 3) for k, x in again.items()}
        if a.refine:
            base = np.array([row["script_for_length_m_with_flight"][name] for name, _, _ in PARAMS])
            key = "length_m_with_flight"
            offsets, score = refine(sim, base, v, key, a.refine, rng)
            again = rollout(check, np.tile(base, (check.num_envs, 1)), v, np.tile(offsets, (check.num_envs, 1, 1)))
            print(f"  refined {key} {score:.3f} in the search, {np.median(again[key]):.3f} re-measured", flush=True)
            row["refined"] = {k: round(float(np.median(x)), 3) for k, x in again.items()}
            row["refined_offsets"] = np.round(offsets, 3).tolist()
        out["rows"].append(row)
        print(json.dumps({k: v for k, v in row.items() if not k.startswith(("script", "refined_"))}), flush=True)
    if a.json is not None:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
