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
from tt_deploy.pretrain.jump_script import (
    KNOT_GROUPS,
    MIN_FLIGHT,
    PARAMS,
    SECONDS,
    JumpJudge,
    knot_targets,
    targets,
)
from tt_deploy.sim.mujoco_backend import MujocoSimulator


def rollout(sim: MujocoSimulator, p: np.ndarray, run_up: float, offsets: np.ndarray | None = None) -> dict:
    """Score scripts p (N, 15), refined by knot offsets (N, K, groups) if given, on sim's N envs."""
    n = sim.num_envs
    sim.reset(root_lin_vel=np.tile([run_up, 0.0, 0.0], (n, 1)))
    judge = JumpJudge(n)
    for k in range(int(round(SECONDS / spec.CONTROL_DT))):
        t = k * spec.CONTROL_DT
        q = targets(p, t) if offsets is None else knot_targets(p, offsets, t)
        sim.step(q / sim.pd_scale)
        judge.step(sim.body_state().pos, sim.contact_forces(), sim.contact_counts())
        if judge.done.all():  # the first touch after a flight ends the jump, as landing ends the reference episode
            break
    length = judge.length
    return {"flight_s": judge.flight, "length_m": length,
            "length_m_with_flight": np.where(judge.flight >= MIN_FLIGHT, length, length - 5.0)}


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
            row[f"script_for_{key}"] = {name: round(float(x), 3) for (name, _, _), x in zip(PARAMS, best, strict=True)}
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
