"""Closed-loop sim2sim harness: the PyTorch reference and the deployed `SkillRuntime` drive the
same skill from identical seeds and initial states over a perturbation grid (DESIGN.md 6.2), and
the reference is re-run under a physics configuration it was not trained in (DESIGN.md 6.3).

How a job runs (`run_job`): every (cell, episode) pair is one environment of ONE `mujoco.batch`
per arm - e.g. the default grid x 32 episodes = 416 envs - so a grid is never a Python loop over
episodes. The two arms are two `TaskEnv`s built with the same seed and the same per-env
perturbations (two batches, stepped in lockstep): a single batch of 2N envs cannot work because
`TaskEnv` draws goals and observation noise for all of its envs from one generator, so the two
halves would get different goals. Each control step is

    reference actions = torch(reference inputs)                           one batched call
    runtime actions, open-loop actions = runtime([runtime inputs; reference inputs])   one call
    step both arms; record roots, episode ends, task metric

Only each env's FIRST episode counts (auto-reset keeps stepping the envs that ended early, their
later episodes are ignored); a job runs exactly `episode_seconds / CONTROL_DT` control steps.

Known coupling: `TaskEnv`'s generator is shared by its envs, so once an episode ends at a
different step in the two arms (one fell, the other did not), goals drawn afterwards differ for
every env of that arm. Divergence is therefore measured per env on root positions and only
goals drawn before the first mismatch are guaranteed identical (docs/sim2sim.md).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tt_deploy import spec
from tt_deploy.errors import InputError, UnknownNameError
from tt_deploy.export.precision import SIM2SIM_TIERS
from tt_deploy.sim.humanoid_model import INTEGRATOR, TIMESTEP
from tt_deploy.sim.perturbations import NOMINAL, Perturbation
from tt_deploy.sim2sim import metrics

log = logging.getLogger(__name__)

OPEN_LOOP_TIERS = SIM2SIM_TIERS  # per precision: (statistic, tolerance) of the open-loop part of a cell's verdict
ATOL = OPEN_LOOP_TIERS["fp32"][1]  # fp32 open-loop tolerance on actions, see docs/sim2sim.md for why not verify's 1e-5


@dataclass(frozen=True)
class PhysicsConfig:
    """Physics engine (a sim registry name: mujoco, mjwarp), timestep (s, must divide 1/30 s) and integrator of one arm."""

    timestep: float = TIMESTEP
    integrator: str = INTEGRATOR
    engine: str = "mujoco"

    @property
    def name(self) -> str:
        engine = "" if self.engine == "mujoco" else f"{self.engine} "
        return f"{engine}{self.integrator} @ 1/{round(1 / self.timestep)} s"


TRAINING_PHYSICS = PhysicsConfig()
# The cross-simulator configuration (layer 3): 2x finer steps and the explicit semi-implicit
# Euler integrator instead of implicitfast - both a different integrator and a different timestep.
# RK4 was measured too (docs/sim2sim.md); Euler at 1/240 s is stable for the humanoid because kd
# lives on the joint as damping.
CROSS_PHYSICS = PhysicsConfig(timestep=1.0 / 240.0, integrator="euler")
# The cross-engine configuration: the training physics on MuJoCo Warp (sim/mjwarp_backend.py), an independent
# float32 implementation of MuJoCo - same model, solver family and contact model, different code.
MJWARP_PHYSICS = PhysicsConfig(engine="mjwarp")
CROSS_CONFIGS = {"integrator": CROSS_PHYSICS, "mjwarp": MJWARP_PHYSICS}


@dataclass(frozen=True)
class Job:
    """One unit of work for an executor (picklable).

    kind "grid": reference vs runtime on `cells` (index, Perturbation); kind "cross": the
    reference under `physics` vs under the training physics on `cells` (the nominal one, or the grid).
    threads: MuJoCo threads of each batch (the policies always use one thread, see run_job).
    """

    kind: str
    bundle: str
    skill: str
    cells: tuple[tuple[int, Perturbation], ...]
    episodes: int
    episode_seconds: float
    backend: str
    seed: int
    threads: int
    mode: str = "fused"
    physics: PhysicsConfig = CROSS_PHYSICS
    precision: str = "fp32"  # the runtime's graphs (export/precision.py); the reference is always fp32 PyTorch


# --- policies -----------------------------------------------------------------------------------
def _concat(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([a[k], b[k]]) for k in a}


# --- recording ----------------------------------------------------------------------------------
class _ArmRecord:
    """What one arm's first episodes did: roots (T, N, 3), success / fell / length, task metric."""

    def __init__(self, steps: int, n: int, skill: str):
        self.root = np.zeros((steps, n, 3))
        self.length = np.zeros(n, np.int64)
        self.success = np.zeros(n, bool)
        self.fell = np.zeros(n, bool)
        self.ended = np.zeros(n, bool)
        self.metric_sum, self.metric_n = np.zeros(n), np.zeros(n, np.int64)
        self.metric_name, self.metric_fn = metrics.task_metric(skill)
        self.unstable = 0

    def before(self, t: int, env):
        state = env.sim.body_state()
        self.root[t] = state.pos[:, 0]
        return state

    def after(self, env, out, prev_state) -> None:
        ep = out.info["episode"]
        first = ~self.ended[ep["env_ids"]]
        ids = ep["env_ids"][first]
        self.success[ids], self.fell[ids], self.length[ids] = ep["success"][first], ep["fell"][first], ep["length"][first]
        live = ~self.ended & ~out.done  # still in the first episode after this step
        value = out.reward if self.metric_fn is None else self.metric_fn(env.task, prev_state, env.sim.body_state())
        self.metric_sum += np.where(live, value, 0.0)
        self.metric_n += live
        self.ended |= out.done
        self.unstable += int(np.count_nonzero(out.info["unstable"]))

    def cell(self, sl: slice) -> dict:
        with np.errstate(invalid="ignore", divide="ignore"):
            per_env = self.metric_sum[sl] / self.metric_n[sl]
        return {"success": self.success[sl], "fell": self.fell[sl], "length": self.length[sl],
                "metric": float(np.nanmean(per_env)) if np.isfinite(per_env).any() else float("nan"),
                "metric_name": self.metric_name}  # fmt: skip


def _start_difference(a, b) -> float:
    """Max abs difference of two arms' reset outputs: every BFM input, the task obs, body positions."""
    diffs = [np.max(np.abs(a[0].inputs[k].astype(np.float64) - b[0].inputs[k]), initial=0.0) for k in a[0].inputs]
    diffs.append(np.max(np.abs(a[0].task_obs.astype(np.float64) - b[0].task_obs)))
    diffs.append(np.max(np.abs(a[1].sim.body_state().pos - b[1].sim.body_state().pos)))
    return float(max(diffs))


def _make_env(job: Job, perturbations: list[Perturbation], physics: PhysicsConfig):
    from tt_deploy.runtime.manifest import read_skill
    from tt_deploy.sim.registry import make_simulator
    from tt_deploy.tasks.env import TaskEnv
    from tt_deploy.tasks.registry import make_task_for_skill

    n = len(perturbations)
    task = make_task_for_skill(read_skill(job.bundle, job.skill), n)  # its prior prompt and goals included
    sim = make_simulator(physics.engine, num_envs=n, nthread=job.threads, objects=task.objects,
                         perturbation=perturbations, seed=job.seed, timestep=physics.timestep,
                         integrator=physics.integrator)  # fmt: skip
    return TaskEnv(sim, task, episode_seconds=job.episode_seconds, seed=job.seed)


def _control_steps(episode_seconds: float) -> int:
    """Control steps of one episode: what a job rolls out and what the progress bar counts."""
    return max(1, int(round(episode_seconds / spec.CONTROL_DT)))


# --- the lockstep loop --------------------------------------------------------------------------
def _lockstep(job: Job, envs, act, steps: int, progress=None) -> tuple[list[_ArmRecord], np.ndarray | None, float, dict]:
    """Step two envs in lockstep for `steps` control steps. act(out_a, out_b) -> (a, b, open-loop
    abs error (N, 69) or None). Returns the two records, errors (T, N, 69) or None, the start
    difference and timings (s)."""
    outs = [env.reset() for env in envs]
    start_diff = _start_difference((outs[0], envs[0]), (outs[1], envs[1]))
    n = envs[0].num_envs
    recs = [_ArmRecord(steps, n, job.skill) for _ in envs]
    errors = None
    timing = {"policy": 0.0, "sim": 0.0}
    for t in range(steps):
        prev = [rec.before(t, env) for rec, env in zip(recs, envs, strict=True)]
        t0 = time.perf_counter()
        actions_a, actions_b, err = act(outs[0], outs[1])
        t1 = time.perf_counter()
        if err is not None:
            if errors is None:
                errors = np.zeros((steps,) + err.shape, np.float32)
            errors[t] = err
        outs = [envs[0].step(actions_a), envs[1].step(actions_b)]
        for rec, env, out, p in zip(recs, envs, outs, prev, strict=True):
            rec.after(env, out, p)
        timing["policy"] += t1 - t0
        timing["sim"] += time.perf_counter() - t1
        if progress is not None:
            progress(1)
    return recs, errors, start_diff, timing


def _cell_records(job: Job, recs, errors, start_diff: float, labels: tuple[str, str]) -> list[dict]:
    e = job.episodes
    out = []
    for c, (index, pert) in enumerate(job.cells):
        sl = slice(c * e, (c + 1) * e)
        steps, diverged = metrics.divergence_steps(recs[0].root[:, sl], recs[1].root[:, sl],
                                                   recs[0].length[sl], recs[1].length[sl])  # fmt: skip
        out.append({
            "kind": job.kind, "index": index, "name": pert.name, "perturbation": dataclasses.asdict(pert),
            labels[0]: recs[0].cell(sl), labels[1]: recs[1].cell(sl),
            "open_loop": None if errors is None else metrics.abs_error_summary(errors[:, sl]),
            "divergence_steps": steps, "diverged": diverged, "start_diff": start_diff,
            "unstable": recs[0].unstable + recs[1].unstable,
        })  # fmt: skip
    return out


def run_job(job: Job, progress: Callable[[int], None] | None = None) -> dict:
    """Run one job in this process; returns {"cells": [raw cell records], "timing": {...}}.

    Top-level and argument-picklable so process pools and Ray can ship it. progress(k): k control steps
    done (the in-process executor's progress bar).
    """
    import torch

    from tt_deploy.export.reference import torch_threads
    from tt_deploy.runtime import SessionConfig, SkillRuntime

    t_start = time.perf_counter()
    steps = _control_steps(job.episode_seconds)
    from tt_deploy.export.reference import ReferencePolicy

    reference = ReferencePolicy(job.bundle, job.skill)
    perts = [p for _, p in job.cells for _ in range(job.episodes)]
    # one torch / ONNX Runtime thread: measured 1.3-5x faster than 2 at batch 26-832 on the shared
    # 2-core machine (barrier contention, cf. export.verify.torch_threads); MuJoCo gets `threads`
    with torch_threads(1), torch.inference_mode():
        if job.kind == "grid":
            envs = [_make_env(job, perts, TRAINING_PHYSICS), _make_env(job, perts, TRAINING_PHYSICS)]
            config = SessionConfig(intra_op_threads=1)
            with SkillRuntime(job.bundle, job.backend, skills=[job.skill], mode=job.mode, batch=None, config=config,
                              precision=job.precision, allow_unverified_precision=True) as rt:  # the gate itself
                n = len(perts)

                def act(ref_out, rt_out):
                    a_ref = reference(ref_out.inputs, ref_out.task_obs)
                    both = rt.act_batch(_concat(rt_out.inputs, ref_out.inputs),
                                        np.concatenate([rt_out.task_obs, ref_out.task_obs]))  # fmt: skip
                    return a_ref, both[:n], np.abs(both[n:] - a_ref)

                t_setup = time.perf_counter() - t_start
                recs, errors, start_diff, timing = _lockstep(job, envs, act, steps, progress)
                backend = rt.backend
            cells = _cell_records(job, recs, errors, start_diff, ("reference", "runtime"))
        elif job.kind == "cross":
            envs = [_make_env(job, perts, TRAINING_PHYSICS), _make_env(job, perts, job.physics)]
            n = len(perts)

            def act(a_out, b_out):
                both = reference(_concat(a_out.inputs, b_out.inputs), np.concatenate([a_out.task_obs, b_out.task_obs]))
                return both[:n], both[n:], None

            t_setup = time.perf_counter() - t_start
            recs, errors, start_diff, timing = _lockstep(job, envs, act, steps, progress)
            backend = "torch"
            cells = _cell_records(job, recs, errors, start_diff, ("training", "cross"))
        else:
            raise ValueError(f"unknown job kind {job.kind!r}")
    timing.update(setup=t_setup, total=time.perf_counter() - t_start, envs=len(perts), steps=steps,
                  pid=os.getpid(), backend=backend)  # fmt: skip
    log.info("sim2sim %s job: %d envs x %d steps in %.1f s", job.kind, len(perts), steps, timing["total"])
    return {"cells": cells, "timing": timing}


def plan_jobs(bundle: Path, skill: str, cells: tuple[Perturbation, ...], *, chunks: int, episodes: int,
              episode_seconds: float, backend: str, seed: int, threads: int, cross: PhysicsConfig | None,
              mode: str = "fused", precision: str = "fp32", cross_grid: bool = False) -> list[Job]:  # fmt: skip
    """Split the grid into `chunks` jobs (round-robin over cells, so chunks are about equal) plus
    the cross-simulator job (on the nominal cell, or on every grid cell with cross_grid). Every job gets
    the same seed; since a TaskEnv's goal generator is shared by its batch, a cell's goals depend on
    which cells share its job (module docstring)."""
    indexed = list(enumerate(cells))
    common = dict(bundle=str(bundle), skill=skill, episodes=episodes, episode_seconds=episode_seconds,
                  backend=backend, seed=seed, threads=threads, mode=mode, precision=precision)  # fmt: skip
    jobs = [Job("grid", cells=tuple(indexed[i::chunks]), **common) for i in range(min(chunks, len(indexed)))]
    if cross is not None:
        jobs.append(Job("cross", cells=tuple(indexed) if cross_grid else ((-1, NOMINAL),), physics=cross, **common))
    return jobs


# --- the public entry point ---------------------------------------------------------------------
@dataclass
class Sim2SimResult:
    """Everything `run_sim2sim` measured; `passed` = every cell passed (the CI gate)."""

    bundle: str
    skill: str
    grid: str
    episodes: int
    episode_seconds: float
    backend: str
    executor: str
    seed: int
    atol: float
    cells: list[metrics.CellResult]
    precision: str
    cross_sim: metrics.CrossSimResult | None  # the nominal cell's (the first cross cell's)
    wall_seconds: float
    jobs: list[dict]
    report_files: list[str] = dataclasses.field(default_factory=list)
    cross_cells: list[metrics.CrossSimResult] = dataclasses.field(default_factory=list)  # every cross cell
    evidence: dict = dataclasses.field(default_factory=dict)  # what was measured (runtime/verdicts.py)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.cells)

    @property
    def open_loop_max(self) -> float:
        return max((c.open_loop_max for c in self.cells), default=float("nan"))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.update(passed=self.passed, open_loop_max=self.open_loop_max,
                 cells_passed=sum(c.passed for c in self.cells))  # fmt: skip
        return d

    def manifest_record(self) -> dict:
        """The compact verdict stored in skill.json (`sim2sim`)."""
        cs = self.cross_sim
        return {
            "passed": self.passed, "grid": self.grid, "episodes": self.episodes,
            "episode_seconds": self.episode_seconds, "backend": self.backend, "atol": self.atol,
            "precision": self.precision, "open_loop_statistic": OPEN_LOOP_TIERS[self.precision][0],
            "cells": len(self.cells), "cells_passed": sum(c.passed for c in self.cells),
            "cell_names": [c.name for c in self.cells],
            "failed_cells": {c.name: c.reasons for c in self.cells if not c.passed},
            "open_loop_max_abs": self.open_loop_max,
            "open_loop_p99_abs": max((c.open_loop_p99 for c in self.cells), default=float("nan")),
            "cross_sim": None if cs is None else {
                "physics": cs.cross_physics, "training_physics": cs.training_physics,
                "success_training": cs.training.rate, "success_cross": cs.cross.rate,
                "gap": cs.gap, "gap_ci95": [cs.gap_low, cs.gap_high]},
            **({"cross_cells": {c.cell: {"gap": c.gap, "gap_ci95": [c.gap_low, c.gap_high]} for c in self.cross_cells}}
               if len(self.cross_cells) > 1 else {}),
            "wall_seconds": round(self.wall_seconds, 1),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "evidence": self.evidence,
        }  # fmt: skip


def _cross_physics(cross_sim) -> PhysicsConfig | None:
    if cross_sim is True:
        return CROSS_PHYSICS
    if isinstance(cross_sim, str):
        if cross_sim == "none":
            return None
        if cross_sim not in CROSS_CONFIGS:
            raise UnknownNameError("cross-simulator configuration", cross_sim, (*CROSS_CONFIGS, "none"))
        return CROSS_CONFIGS[cross_sim]
    return cross_sim or None


def _cells_of(grid) -> tuple[str, tuple[Perturbation, ...]]:
    from tt_deploy.sim.perturbations import grid as named_grid

    if isinstance(grid, str):
        return grid, named_grid(grid)
    cells = tuple(grid)
    if not cells or not all(isinstance(c, Perturbation) for c in cells):
        raise InputError(f"grid must be a grid name or a non-empty sequence of Perturbation; got {grid!r}")
    return "custom", cells


def run_sim2sim(
    bundle_dir: str | os.PathLike,
    skill: str,
    *,
    grid="default",
    episodes: int = 32,
    episode_seconds: float = 10.0,
    backend: str = "auto",
    seed: int = 0,
    executor="local",
    ray_address: str | None = None,
    cross_sim: bool | str | PhysicsConfig = True,
    cross_grid: bool = False,
    report_dir: str | os.PathLike | None = None,
    atol: float | None = None,
    mode: str = "fused",
    record: bool = True,
    precision: str = "fp32",
    progress: Callable[[int, int], None] | None = None,
) -> Sim2SimResult:
    """Reference vs deployed runtime of `skill` over a perturbation grid, plus the cross-sim gap.

    grid: "default" | "paper" | a sequence of Perturbation; episodes per cell; episode_seconds
    (s); backend: SkillRuntime backend; executor: "local" | "processes" | "ray" or an executor
    object (executor.py); cross_sim: True (CROSS_PHYSICS), False, a CROSS_CONFIGS name ("integrator",
    "mjwarp") or a PhysicsConfig; cross_grid: the cross arm runs every grid cell, not only the nominal one;
    report_dir: write JSON + Markdown + HTML + plots there; record: store the verdict in the
    skill's skill.json (a reduced `precision`'s verdict goes to skill.json precision_gates: the runtime loads that
    precision only where it passed); atol: the open-loop tolerance, default per precision (OPEN_LOOP_TIERS, which also names the statistic);
    progress(done, total) in control steps (in-process executor only). Raises InputError / UnknownNameError / BundleError for bad arguments or a
    bundle whose reference cannot be rebuilt.
    """
    from tt_deploy.executors import make_executor
    from tt_deploy.runtime import manifest as mf

    if precision not in OPEN_LOOP_TIERS:
        raise UnknownNameError("precision", precision, tuple(OPEN_LOOP_TIERS))
    from tt_deploy.runtime.skill_runtime import TRT_PRECISIONS

    if precision in TRT_PRECISIONS and backend not in ("trt", "ort-trt"):
        raise InputError(f"precision {precision!r} is TensorRT's: pass --backend trt (or ort-trt for fp16)")
    statistic, tier = OPEN_LOOP_TIERS[precision]
    atol = tier if atol is None else atol
    if int(episodes) != episodes or episodes < 1 or not episode_seconds > 0 or not atol > 0:
        raise InputError(f"episodes must be >= 1, episode_seconds > 0 and atol > 0; "
                         f"got {episodes}, {episode_seconds}, {atol}")  # fmt: skip
    bundle = Path(bundle_dir)
    manifest = mf.read_manifest(bundle)
    if skill not in manifest.skills:
        raise UnknownNameError("skill", skill, manifest.skills)
    grid_name, cells = _cells_of(grid)
    from tt_deploy.runtime.verdicts import measured_evidence

    evidence = measured_evidence(bundle, skill)  # before measuring: recording compares it with the bundle then
    ex = make_executor(executor, ray_address=ray_address) if isinstance(executor, str) else executor
    cross = _cross_physics(cross_sim)
    jobs = plan_jobs(bundle, skill, cells, chunks=ex.chunks, episodes=int(episodes),
                     episode_seconds=episode_seconds, backend=backend, seed=seed, threads=ex.threads,
                     cross=cross, mode=mode, precision=precision, cross_grid=cross_grid)  # fmt: skip
    t0 = time.perf_counter()
    fn = run_job
    if progress is not None and ex.name == "local":  # other executors run jobs elsewhere, unobserved
        total, done = len(jobs) * _control_steps(episode_seconds), [0]

        def tick(k: int) -> None:
            done[0] += k
            progress(done[0], total)

        fn = functools.partial(run_job, progress=tick)
    outputs = ex.map(fn, jobs)
    wall = time.perf_counter() - t0
    raws = [c for out in outputs for c in out["cells"]]
    grid_raw = sorted((r for r in raws if r["kind"] == "grid"), key=lambda r: r["index"])
    cross_raw = sorted((r for r in raws if r["kind"] == "cross"), key=lambda r: (r["name"] != "nominal", r["index"]))
    cross_cells = [metrics.summarise_cross(r, TRAINING_PHYSICS.name, cross.name) for r in cross_raw]
    backends = {o["timing"]["backend"] for o in outputs} - {"torch"}
    result = Sim2SimResult(
        str(bundle), skill, grid_name, int(episodes), float(episode_seconds), ",".join(sorted(backends)),
        ex.name, seed, atol, [metrics.summarise_cell(r, atol, statistic) for r in grid_raw],
        precision,
        cross_cells[0] if cross_cells else None,
        wall, [o["timing"] for o in outputs], cross_cells=cross_cells, evidence=evidence,
    )  # fmt: skip
    if report_dir is not None:
        from tt_deploy.sim2sim.report import write_report

        result.report_files = [str(p) for p in write_report(result, report_dir)]
    if record:
        from tt_deploy.export.bundle import record_skill_results  # torch side, only when recording

        if precision == "fp32":
            record_skill_results(bundle, skill, measured=evidence, sim2sim=result.manifest_record())
        else:
            record_skill_results(bundle, skill, measured=evidence, precision_gate=(precision, result.manifest_record()))
    log.info("sim2sim %s/%s: %d/%d cells passed in %.1f s", bundle, skill,
             sum(c.passed for c in result.cells), len(result.cells), wall)  # fmt: skip
    return result
