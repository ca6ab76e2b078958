"""A fixed-rate (30 Hz) robot control loop embedding the tt-deploy runtime (no torch).

Per tick: read state -> build the skill's prior prompt (skill.json `task_prior`, tt_deploy.obs.priors),
the BFM inputs and the task observation -> runtime.act_into -> write PD targets -> sleep until the
next tick, counting deadline misses. Here the "robot" is a
MuJoCo humanoid (`MujocoSimulator(1)`); on hardware only read_state / write_targets change.
At --switch-at seconds the controller switches from the skill it started on (the manifest's
`default_skill` unless --start-skill) to the bundle's next skill (a command), whose goals are drawn then.

    python examples/controller_loop.py --bundle deploy --seconds 10          # real time
    python examples/controller_loop.py --bundle deploy --seconds 2 --no-realtime   # CI: no sleeping
    python examples/controller_loop.py --bundle deploy --safety   # PD targets through the SafetyLayer
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tt_deploy.obs.inputs import PoseHistory, bfm_inputs
from tt_deploy.obs.priors import make_prior
from tt_deploy.runtime import SafetyLayer, SkillRuntime
from tt_deploy.sim.mujoco_backend import MujocoSimulator
from tt_deploy.tasks.goals import task_kwargs_from_record
from tt_deploy.tasks.registry import make_task_for


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", default="deploy")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--start-skill", default=None, help="skill to start on; default: the manifest's default_skill")
    p.add_argument("--switch-at", type=float, default=5.0, help="s; switch from the start skill to the next one")
    p.add_argument("--safety", action="store_true", help="guard the PD targets with the runtime's SafetyLayer")
    args = p.parse_args(argv)

    runtime = SkillRuntime(args.bundle, mode="fused")  # all loading happens here, not in the loop
    skills = list(runtime.skills)
    if args.start_skill is not None:
        runtime.switch(args.start_skill)
    start_skill = runtime.active  # by default the manifest's default_skill, not necessarily skills[0]
    rng = np.random.default_rng(0)
    # each skill's task observation + goals (the "command source"), at the width and goal ranges its
    # encoder was trained on, and the prior prompt it was trained beside, rebuilt from skill.json alone
    cards = runtime.skills  # the skill.json of each skill, from the bundle version the runtime loaded
    tasks = {s: make_task_for(s, 1, c.task_obs_dim, **task_kwargs_from_record(s, c.goals)) for s, c in cards.items()}
    priors = {s: make_prior(c.task_prior["name"], 1, **c.task_prior["params"]) if c.task_prior else None
              for s, c in cards.items()}
    # the scene objects the skills act on (strike: its pillar); on hardware, your object tracker
    sim = MujocoSimulator(1, nthread=1, objects=sorted({o for t in tasks.values() for o in t.objects}))
    history = PoseHistory(1)
    ground = np.zeros(1)  # flat floor: terrain height under the root, m
    history.reset(None, sim.body_state(), ground)
    for s, t in tasks.items():
        t.reset(np.arange(1), sim, rng)
        if priors[s] is not None:
            priors[s].reset(np.arange(1), sim.body_state())
    actions = np.zeros((1, runtime.manifest.action_dim), np.float32)  # reused output buffer
    layer = SafetyLayer(runtime) if args.safety else None  # limits, watchdog, damping: from the bundle
    if layer is not None:
        layer.start()  # soft start: the measured pose -> the default pose -> the policy

    period_ns = round(runtime.manifest.control_dt * 1e9)  # 30 Hz
    ticks = round(args.seconds / runtime.manifest.control_dt)
    switch_tick = round(args.switch_at / runtime.manifest.control_dt)
    busy_us, misses = np.empty(ticks), 0
    next_tick = time.perf_counter_ns()
    for k in range(ticks):
        if k == switch_tick and len(skills) > 1:
            new = skills[(skills.index(runtime.active) + 1) % len(skills)]  # any skill but the active one
            print(f"switch={runtime.active}->{new} at_s={k * runtime.manifest.control_dt:.2f}")
            tasks[new].reset(np.arange(1), sim, rng)  # the command: its goals, from the current state
            if priors[new] is not None:
                priors[new].reset(np.arange(1), sim.body_state())
            runtime.switch(new)  # O(1): every skill's session is already loaded
        start = time.perf_counter_ns()
        state = sim.body_state()  # read state
        prior, task = priors[runtime.active], tasks[runtime.active]
        targets = prior(state, task.prior_goal(state, sim)) if prior is not None else None
        inputs = {n: a[0] for n, a in bfm_inputs(state, ground, history, targets=targets).items()}
        task_obs = task.observe(state, sim)[0]
        history.push(state, ground)  # after building this tick's inputs (PoseHistory convention)
        if layer is None:
            runtime.act_into(inputs, task_obs, actions)  # policy
        else:  # policy + guards; the stamp says the state is fresh (on hardware: the sensor's timestamp)
            q, qd = sim.joint_state()
            layer.act(inputs, task_obs, joint_pos=q[0], joint_vel=qd[0], stamp=k)
            actions = layer.actions  # the guarded PD targets as actions
        sim.step(actions)  # write PD targets (offset + scale * action) and let physics run
        task.update(state, sim.body_state(), sim, rng)  # goal resampling
        busy_us[k] = (time.perf_counter_ns() - start) / 1e3
        next_tick += period_ns
        if time.perf_counter_ns() > next_tick:
            misses += 1  # this tick overran its 33.3 ms period
            next_tick = time.perf_counter_ns()  # re-anchor instead of bursting to catch up
        elif args.realtime:
            time.sleep((next_tick - time.perf_counter_ns()) / 1e9)

    summary = {
        "ticks": ticks, "deadline_misses": misses, "skills": ",".join(skills), "start_skill": start_skill,
        "final_skill": runtime.active,
        "tick_p50_us": float(np.percentile(busy_us, 50)), "tick_p99_us": float(np.percentile(busy_us, 99)),
        "root_height_m": float(sim.body_state().pos[0, 0, 2]), "backend": runtime.backend,
    }  # fmt: skip
    if layer is not None:
        status = layer.status()
        summary.update(safety_mode=status["mode"], faults=sum(status["faults"].values()))
    print(" ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))
    runtime.close()
    return summary


if __name__ == "__main__":
    main()
