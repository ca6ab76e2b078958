"""Many independent training runs (skills x seeds) on an executor from tt_deploy.executors.

Local: spawned processes, each with cores // workers MuJoCo threads and one torch thread; Ray:
one task per run on the cluster. Each run writes its own directory OUT/<skill>/seed<k>, so runs
never share files and each one can be resumed on its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainJob:
    """One run (picklable): its config, directory and BFM."""

    cfg: object  # TrainConfig
    out_dir: str
    bfm_path: str | None
    resume: bool


def run_train_job(job: TrainJob) -> dict:
    """Executor entry point: one training run, in whatever process the executor chose."""
    import torch

    from tt_deploy.train.task_token import train_skill

    torch.set_num_threads(1)
    summary = train_skill(job.cfg, job.out_dir, bfm_path=job.bfm_path, resume=job.resume)
    ev = summary.get("final_eval") or {}
    return {"skill": job.cfg.skill, "seed": job.cfg.seed, "method": job.cfg.method, "run": job.out_dir,
            "env_steps": summary.get("env_steps", 0), "eval success": ev.get("success_rate", float("nan"))}  # fmt: skip


def plan_runs(cfgs: list, seeds: int, out: Path, bfm_path=None, resume=False, threads: int = 1) -> list[TrainJob]:
    """Jobs for every config x seed (seed offsets 0..seeds-1 from each config's seed)."""
    jobs = []
    for cfg in cfgs:
        for k in range(seeds):
            run_cfg = replace(cfg, seed=cfg.seed + k, nthread=threads)
            jobs.append(TrainJob(run_cfg, str(out / cfg.skill / f"seed{run_cfg.seed}"),
                                 None if bfm_path is None else str(bfm_path), resume))  # fmt: skip
    return jobs


def launch(cfgs: list, seeds: int, out: Path, *, bfm_path=None, resume=False, ray_address=None,
           workers: int | None = None) -> list[dict]:
    """Run every skill x seed in parallel (processes locally, Ray with an address); returns summaries."""
    from tt_deploy.executors import ProcessExecutor, make_executor

    n = len(cfgs) * seeds
    if ray_address is not None:
        ex = make_executor("ray", ray_address=ray_address)
    else:
        ex = ProcessExecutor(workers or min(n, 2))
    jobs = plan_runs(cfgs, seeds, Path(out), bfm_path, resume, ex.threads)
    log.info("launching %d runs on %s (%d threads each)", n, ex.name, ex.threads)
    return ex.map(run_train_job, jobs)
