"""Library side of `ttdeploy sim info` / `ttdeploy sim bench`: model facts and stepping throughput.

Both return plain dicts (JSON-ready); the CLI prints them as tables. Timing uses
time.perf_counter_ns after a warm-up; "control steps/s" counts environment steps at 30 Hz
(num_envs x control steps per wall second), physics substeps included.
"""

from __future__ import annotations

import logging
import time

import mujoco
import numpy as np

from tt_deploy import spec
from tt_deploy.sim.humanoid_model import INTEGRATOR, build_model

log = logging.getLogger(__name__)


def sim_info(mjcf=None) -> dict:
    """Facts of the compiled humanoid: bodies, DoF, masses (kg), gains, timestep (s), integrator, substeps."""
    hm = build_model(mjcf)
    m = hm.model
    integrator = mujoco.mjtIntegrator(m.opt.integrator).name.removeprefix("mjINT_").lower()
    return {
        "mjcf": str(hm.mjcf),
        "bodies": list(spec.BODY_NAMES),
        "num_bodies": len(spec.BODY_NAMES),
        "num_dof": spec.NUM_DOF,
        "nq": int(m.nq), "nv": int(m.nv), "nu": int(m.nu), "ngeom": int(m.ngeom),
        "total_mass": hm.total_mass,
        "body_masses": {n: float(m.body_mass[i]) for n, i in zip(spec.BODY_NAMES, hm.body_ids, strict=True)},
        "pd_gains": {n: {"kp": kp, "kd": kd} for n, (kp, kd) in zip(spec.JOINT_NAMES, spec.PD_GAINS, strict=True)},
        "pd_scale": hm.pd_scale.tolist(), "pd_offset": hm.pd_offset.tolist(),
        "damping_on": hm.damping,
        "timestep": float(m.opt.timestep),
        "integrator": integrator,
        "substeps": hm.substeps,
        "control_dt": spec.CONTROL_DT,
        "self_collision": True,
    }


def _rate(fn, num_envs: int, seconds: float, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    steps, start = 0, time.perf_counter_ns()
    deadline = start + int(seconds * 1e9)
    while True:
        fn()
        steps += 1
        now = time.perf_counter_ns()
        if now >= deadline:
            return num_envs * steps / ((now - start) * 1e-9)


def _bench_cells(sims, num_envs, threads, device):
    """(sim, num_envs, threads or None, constructor kw): mujoco per thread count; MuJoCo Warp schedules its own."""
    for name in sims:
        for n in num_envs:
            if name == "mujoco":
                yield from ((name, n, t, {"nthread": t}) for t in threads)
            else:
                yield name, n, None, {"device": device}


def sim_bench(num_envs=(64, 256), threads=(1, 2), seconds: float = 3.0, mjcf=None, sims=("mujoco",),
              device: str = "cpu") -> list[dict]:
    """30 Hz control steps/s with zero actions from standing, for each (simulator, num_envs, threads) cell.

    Columns: physics (step only), physics_state (+ body_state()), physics_state_obs (+ the whole
    BFM input dict a policy step needs: self obs, 15 history tokens, 11 target tokens, terrain,
    masks, and the history push), obs_overhead = 1 - physics_state_obs / physics,
    world_steps = physics x substeps (physics steps of all worlds per second). sims: registry names
    ("mujoco", "mjwarp"); device: MuJoCo Warp's ("cpu", "cuda:0").
    """
    from tt_deploy.obs.inputs import PoseHistory, bfm_inputs
    from tt_deploy.sim.registry import make_simulator

    rows = []
    for name, n, t, kw in _bench_cells(sims, num_envs, threads, device):
        sim = make_simulator(name, num_envs=n, mjcf=mjcf, **kw)
        zero = np.zeros((n, spec.NUM_DOF))
        ground = np.zeros(n)

        def physics(sim=sim, zero=zero):
            sim.step(zero)

        def with_state(sim=sim, zero=zero):
            sim.step(zero)
            return sim.body_state()

        history = PoseHistory(n)
        history.reset(None, sim.body_state(), ground)

        def with_obs(sim=sim, zero=zero, ground=ground, history=history):
            sim.step(zero)
            state = sim.body_state()
            inputs = bfm_inputs(state, ground, history)
            history.push(state, ground)
            return inputs

        row = {"sim": name if name == "mujoco" else f"{name} {device}", "num_envs": n, "threads": t if t is not None else "-", "integrator": INTEGRATOR,
               "timestep": float(sim.model.opt.timestep), "substeps": sim.hm.substeps,
               "physics": _rate(physics, n, seconds), "physics_state": _rate(with_state, n, seconds),
               "physics_state_obs": _rate(with_obs, n, seconds)}
        row["obs_overhead"] = 1.0 - row["physics_state_obs"] / row["physics"]
        row["world_steps"] = row["physics"] * sim.hm.substeps
        row["unstable_envs"] = sim.num_unstable_total
        log.info("sim bench %s", row)
        rows.append(row)
    return rows
