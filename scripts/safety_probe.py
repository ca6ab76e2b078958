"""Inject faults into a 30 Hz MuJoCo control loop with and without the runtime's SafetyLayer (issue #36 item 4).

    python scripts/safety_probe.py --bundle BUNDLE [--json results/probes/safety_faults.json]

BUNDLE needs the skills `--start-skill` (default reach) and `--switch-to` (default steering); the measured bundle is
the shipped trained ones: `ttdeploy export --skill reach --run tt_deploy/skills/reach --bundle B`, the same for
steering. The loop is examples/controller_loop.py's (state -> prior prompt, BFM inputs, task obs -> policy -> PD
targets -> 4 physics substeps); the layer starts in standby and ramps into the policy (start() at t = 0). At
`--fault-at` s (default 3) one fault begins and lasts to the end (`--seconds`, default 5):

- stale: the controller's state freezes (same stamp, inputs built from the frozen state); physics runs on;
- stale_resume: the same for 0.5 s, then the state is fresh again and the operator calls resume() (the layer ramps
  back into the policy);
- nan_input: the BFM input `obs` holds a NaN;
- nan_state: the measured joint positions hold a NaN (the inputs are still built from the true state);
- sensor_breach: one measured joint (R_Knee_y) reads 2 rad beyond its range;
- target_breach: the policy's action of R_Knee_y is -1 (in [-1, 1], but its PD target, -180 deg, lies 175 deg
  beyond the knee's range -5..150 deg);
- action_breach: the policy's actions are multiplied by 10 (far out of [-1, 1]: targets far outside the ranges);
- switch: the skill switches abruptly (start skill -> switch-to skill, its goals drawn then);
- none: no fault (what the layer changes on a healthy run).

Per episode, over the 2 s after the fault: fell (pelvis below 0.5 m), peak joint speed (rad/s), time to damping
(s from the first faulty call), the largest per-step PD-target change (rad), targets outside the MJCF ranges (rad,
the largest excess), NaN targets sent, and the layer's status. Without the layer, a call that raises (NaN inputs)
keeps the last actions (what a loop that catches the error and carries on sends). tests/runtime/test_safety_layer.py
runs `episode` with these same faults.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path

import numpy as np

from tt_deploy import spec
from tt_deploy.errors import TTDeployError
from tt_deploy.obs.inputs import PoseHistory, bfm_inputs
from tt_deploy.obs.priors import make_prior
from tt_deploy.runtime import SkillRuntime
from tt_deploy.runtime.safety import Mode, SafetyConfig, SafetyLayer
from tt_deploy.sim.mujoco_backend import MujocoSimulator
from tt_deploy.tasks.goals import task_kwargs_from_record
from tt_deploy.tasks.registry import make_task_for

FAULTS = ("none", "stale", "stale_resume", "nan_input", "nan_state", "sensor_breach", "target_breach", "action_breach",
          "switch")
FALL_HEIGHT = 0.5  # m, pelvis
WINDOW_S = 2.0  # s after the fault that is measured
BREACH_JOINT = spec.JOINT_NAMES.index("R_Knee_y")


def _breach(fault: str, actions: np.ndarray) -> np.ndarray:
    """The injected actions of the breach faults (a new array)."""
    if fault == "action_breach":
        return actions * 10.0
    out = actions.copy()
    out[0, BREACH_JOINT] = -1.0
    return out


def episode(runtime: SkillRuntime, fault: str, *, layer: bool = True, seconds: float = 5.0, fault_at: float = 3.0,
            start_skill: str | None = None, switch_to: str | None = None, seed: int = 0,
            config: SafetyConfig | None = None, trace: list | None = None) -> dict:
    """One episode (module docstring); the runtime is left on whatever skill the episode ended with. trace: a list
    that gets (largest PD-target change rad, largest measured joint excess beyond its range rad) per tick."""
    if fault not in FAULTS:
        raise ValueError(f"fault {fault!r} is not one of {FAULTS}")
    skills = list(runtime.skills)
    start_skill = start_skill or runtime.manifest.default_skill or skills[0]
    switch_to = switch_to or next(s for s in skills if s != start_skill)
    runtime.switch(start_skill)
    cards = runtime.skills
    rng = np.random.default_rng(seed)
    tasks = {s: make_task_for(s, 1, c.task_obs_dim, **task_kwargs_from_record(s, c.goals)) for s, c in cards.items()}
    priors = {s: make_prior(c.task_prior["name"], 1, **c.task_prior["params"]) if c.task_prior else None
              for s, c in cards.items()}  # fmt: skip
    sim = MujocoSimulator(1, nthread=1, objects=sorted({o for t in tasks.values() for o in t.objects}))
    history, ground = PoseHistory(1), np.zeros(1)
    history.reset(None, sim.body_state(), ground)
    for s, t in tasks.items():
        t.reset(np.arange(1), sim, rng)
        if priors[s] is not None:
            priors[s].reset(np.arange(1), sim.body_state())
    guard = SafetyLayer(runtime, config) if layer else None
    if guard is not None:
        guard.start()
    cfg = guard.config if guard is not None else SafetyConfig.from_bundle(runtime.bundle_dir, runtime.manifest)
    lo, hi = np.array(cfg.lower), np.array(cfg.upper)
    offset, scale = np.array(cfg.pd_offset), np.array(cfg.pd_scale)
    dt = runtime.manifest.control_dt
    ticks, fault_tick = round(seconds / dt), round(fault_at / dt)
    end_tick = min(ticks, fault_tick + round(WINDOW_S / dt))
    actions = np.zeros((1, runtime.manifest.action_dim), np.float32)
    sent = np.zeros(runtime.manifest.action_dim)  # the PD targets of the last tick
    frozen = None
    m = {"fell": False, "min_pelvis_m": math.inf, "peak_joint_speed": 0.0, "max_target_step": 0.0,
         "max_target_excess": 0.0, "nan_targets": 0, "raised": 0, "damping_at_s": None, "damping_after_calls": None,
         "pre_fault_max_target_step": 0.0, "pre_fault_min_pelvis_m": math.inf, "max_joint_excess": 0.0}  # fmt: skip
    rewards = []  # the active task's reward per tick from 1 s on (after the layer's ramp)
    for k in range(ticks):
        faulty = fault != "none" and k >= fault_tick
        if fault == "switch" and k == fault_tick:
            tasks[switch_to].reset(np.arange(1), sim, rng)
            if priors[switch_to] is not None:
                priors[switch_to].reset(np.arange(1), sim.body_state())
            (guard or runtime).switch(switch_to)
        state = pre = sim.body_state()
        q, qd = sim.joint_state()
        stamp = k
        stale_now = faulty and (fault == "stale" or (fault == "stale_resume" and k < fault_tick + round(0.5 / dt)))
        if fault == "stale_resume" and faulty and not stale_now:
            frozen = None
            if guard is not None and guard.mode is Mode.DAMPING:
                guard.resume()
        if stale_now:
            if frozen is None:
                frozen = (state, q, qd, k - 1)
            state, q, qd, stamp = frozen
        prior, task = priors[runtime.active], tasks[runtime.active]
        targets = prior(state, task.prior_goal(state, sim)) if prior is not None else None
        inputs = {n: a[0] for n, a in bfm_inputs(state, ground, history, targets=targets).items()}
        task_obs = task.observe(state, sim)[0]
        history.push(state, ground)
        if fault == "nan_input" and faulty:
            inputs["obs"] = inputs["obs"].copy()
            inputs["obs"][0] = np.nan
        if fault == "nan_state" and faulty:
            q = q.copy()
            q[0, 0] = np.nan
        if fault == "sensor_breach" and faulty:
            q = q.copy()
            q[0, BREACH_JOINT] = hi[BREACH_JOINT] + 2.0
        before = sent.copy()
        if guard is not None:
            if fault in ("action_breach", "target_breach") and faulty:
                runtime.act_into(inputs, task_obs, actions)
                guard.filter_actions(_breach(fault, actions), joint_pos=q, joint_vel=qd, stamp=stamp)
            else:
                guard.act(inputs, task_obs, joint_pos=q, joint_vel=qd, stamp=stamp)
            np.copyto(sent, guard.targets)
            step_actions = guard.actions
            if guard.mode is Mode.DAMPING and m["damping_at_s"] is None and k >= fault_tick:
                m["damping_after_calls"] = k - fault_tick  # calls after the first faulty one
                m["damping_at_s"] = round((k - fault_tick) * dt, 6)
        else:
            try:
                runtime.act_into(inputs, task_obs, actions)
            except TTDeployError:
                m["raised"] += 1  # the last actions stay
            step_actions = _breach(fault, actions) if fault in ("action_breach", "target_breach") and faulty else actions
            np.copyto(sent, offset + scale * np.clip(step_actions[0], -cfg.action_clamp, cfg.action_clamp))
        if not np.isfinite(sent).all():
            m["nan_targets"] += 1
            step_actions = np.zeros_like(actions)  # the simulator refuses NaN
        sim.step(step_actions)
        true_state = sim.body_state()
        if k * dt >= 1.0:
            rewards.append(float(task.reward(pre, true_state, sim)[0]))
        task.update(pre, true_state, sim, rng)
        z = float(true_state.pos[0, 0, 2])
        jq = sim.joint_state()[0][0]
        m["max_joint_excess"] = max(m["max_joint_excess"], float(np.maximum(jq - hi, lo - jq).max()))
        step = float(np.abs(sent - before).max()) if k > 0 else 0.0
        if trace is not None:
            trace.append((step, float(np.maximum(jq - hi, lo - jq).max())))
        if k < fault_tick:
            m["pre_fault_max_target_step"] = max(m["pre_fault_max_target_step"], step)
            m["pre_fault_min_pelvis_m"] = min(m["pre_fault_min_pelvis_m"], z)
        elif k < end_tick:
            m["min_pelvis_m"] = min(m["min_pelvis_m"], z)
            m["fell"] |= z < FALL_HEIGHT
            m["peak_joint_speed"] = max(m["peak_joint_speed"], float(np.abs(sim.joint_state()[1]).max()))
            m["max_target_step"] = max(m["max_target_step"], step)
            excess = np.maximum(sent - hi, lo - sent)
            m["max_target_excess"] = max(m["max_target_excess"], float(np.nan_to_num(excess, nan=0.0).max()))
    m["final_pelvis_m"] = float(sim.body_state().pos[0, 0, 2])
    m["mean_reward"] = float(np.mean(rewards)) if rewards else None
    m["unstable_resets"] = int(sim.num_unstable_total)
    if guard is not None:
        m["status"] = guard.status()
    m.update(fault=fault, layer=layer, start_skill=start_skill, switch_to=switch_to if fault == "switch" else None)
    for key in ("min_pelvis_m", "pre_fault_min_pelvis_m", "final_pelvis_m", "peak_joint_speed", "max_target_step",
                "pre_fault_max_target_step", "max_target_excess", "max_joint_excess", "mean_reward"):
        m[key] = round(m[key], 4)
    return m


IMPACT = {  # SafetyConfig overrides of the guard-impact table (healthy runs, no soft start: the guards alone)
    "layer, defaults": {},
    "layer, no position limits": {"position_limits": False, "breach_tolerance": None},  # bare-like joint excess
    "layer, no rate limit": {"rate_limit": None},
    "layer, rate limit 0.5": {"rate_limit": 0.5},
}


def guard_impact(runtime: SkillRuntime, skills, seeds: int, seconds: float) -> dict:
    """What each guard changes on healthy runs (fault none) of each skill: falls, the task reward per control step
    (the skill's own reward, from 1 s on) and how often each guard changed a target, bare loop first."""
    table = {}
    for start in skills:
        for name, overrides in {"bare": None, **IMPACT}.items():
            rs = []
            for seed in range(seeds):
                cfg = None if overrides is None else SafetyConfig.from_bundle(
                    runtime.bundle_dir, runtime.manifest, ramp_seconds=0.0, blend_seconds=0.0, **overrides)
                rs.append(episode(runtime, "none", layer=cfg is not None, seconds=seconds, fault_at=seconds,
                                  start_skill=start, seed=seed, config=cfg))  # fmt: skip
            row = {"falls": sum(r["pre_fault_min_pelvis_m"] < FALL_HEIGHT for r in rs), "episodes": len(rs),
                   "mean_reward": round(float(np.mean([r["mean_reward"] for r in rs])), 4),
                   "max_joint_excess": max(r["max_joint_excess"] for r in rs)}  # fmt: skip
            if overrides is not None:
                steps = sum(r["status"]["steps"] for r in rs)
                row["clipped_fraction"] = {k: round(sum(r["status"]["clips"][k] for r in rs) / steps, 4)
                                           for k in ("rate", "position")}  # fmt: skip
            table[f"{start}/{name}"] = row
            print(f"impact {start:9s} {name:28s} {row}")
    return table


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", required=True)
    p.add_argument("--json", default=None)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--fault-at", type=float, default=3.0)
    p.add_argument("--skills", default="reach,steering", help="two skills: each episode starts on one, switch "
                   "goes to the other")
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--impact-seconds", type=float, default=10.0, help="healthy runs of the guard-impact table")
    args = p.parse_args(argv)
    skills = args.skills.split(",")
    runtime = SkillRuntime(args.bundle, backend="ort-cpu", skills=skills)
    cfg = SafetyConfig.from_bundle(args.bundle, runtime.manifest)
    rows = []
    for fault, layer, start, seed in itertools.product(FAULTS, (False, True), skills, range(args.seeds)):
        other = next(s for s in skills if s != start)
        r = episode(runtime, fault, layer=layer, seconds=args.seconds, fault_at=args.fault_at, start_skill=start,
                    switch_to=other, seed=seed)
        r["seed"] = seed
        rows.append(r)
        print(f"{fault:14s} layer={layer!s:5s} {start:9s} seed={seed} fell={r['fell']!s:5s} "
              f"min_pelvis={r['min_pelvis_m']:.2f} peak_qd={r['peak_joint_speed']:.1f} "
              f"damping_at={r['damping_at_s']} step={r['max_target_step']:.2f} "
              f"excess={r['max_target_excess']:.2f} nan={r['nan_targets']} raised={r['raised']}")
    summary = {}
    for fault, layer, start in itertools.product(FAULTS, (False, True), skills):
        rs = [r for r in rows if r["fault"] == fault and r["layer"] == layer and r["start_skill"] == start]
        calls = [r["damping_after_calls"] for r in rs if r["damping_after_calls"] is not None]
        summary[f"{fault}/{start}/{'layer' if layer else 'bare'}"] = {
            "falls": sum(r["fell"] for r in rs), "episodes": len(rs),
            "peak_joint_speed_max": max(r["peak_joint_speed"] for r in rs),
            "damping_after_calls_max": max(calls) if calls else None, "damped": len(calls),
            "max_target_step": max(r["max_target_step"] for r in rs),
            "max_target_excess": max(r["max_target_excess"] for r in rs),
            "nan_targets": sum(r["nan_targets"] for r in rs),
            "mean_reward": round(float(np.mean([r["mean_reward"] for r in rs])), 4),
        }  # fmt: skip
    impact = guard_impact(runtime, skills, args.seeds, args.impact_seconds)
    columns = ("fault", "layer", "start_skill", "seed", "fell", "min_pelvis_m", "peak_joint_speed",
               "damping_after_calls", "max_target_step", "max_target_excess", "nan_targets", "mean_reward")
    tunables = {k: v for k, v in vars(cfg).items() if not isinstance(v, tuple) or k == "torque_limit"}
    out = {"bundle_skills": skills, "seconds": args.seconds, "fault_at_s": args.fault_at,
           "window_s": WINDOW_S, "fall_height_m": FALL_HEIGHT, "seeds": args.seeds, "config": tunables,
           "summary": summary, "guard_impact": impact, "columns": columns,
           "episodes": [[r[c] for c in columns] for r in rows]}  # fmt: skip
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    runtime.close()
    return out


if __name__ == "__main__":
    main()
