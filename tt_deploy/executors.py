"""Pluggable executors for independent jobs (sim2sim grid chunks, training runs): in this
process, a local process pool, or a Ray cluster.

An executor says how many chunks it wants (`chunks`) and how many threads each job may use
(`threads`), and maps a picklable module-level function over the jobs, returning results in
job order.

Measured on the 2-core machine (docs/sim2sim.md): one in-process job stepping all cells in one
`mujoco.batch` with 2 threads beat a 2-process pool (1 thread each) - the pool pays a second
torch import, reference rebuild and ONNX Runtime session per worker, and the batched MuJoCo /
ONNX Runtime calls already use both cores. So "local" means in-process; "processes" is there for
machines with more cores, "ray" for clusters (optional extra, imported only when asked for).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

from tt_deploy.errors import InputError, MissingExtraError, UnknownNameError

log = logging.getLogger(__name__)
EXECUTORS = ("local", "processes", "ray")


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class InProcessExecutor:
    """All grid cells in one job, run here with every core (the fastest choice on 2 cores)."""

    name = "local"

    def __init__(self, threads: int | None = None):
        self.threads = threads or min(2, _cores())
        self.chunks = 1

    def map(self, fn: Callable, jobs: Sequence) -> list:
        return [fn(job) for job in jobs]


class ProcessExecutor:
    """`workers` spawned processes (spawn: torch and MuJoCo thread pools do not survive fork),
    the grid split into `workers` chunks, each job with cores // workers threads."""

    name = "processes"

    def __init__(self, workers: int = 2):
        if workers < 1:
            raise InputError(f"workers must be >= 1; got {workers}")
        self.chunks = workers
        self.threads = max(1, _cores() // workers)

    def map(self, fn: Callable, jobs: Sequence) -> list:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=self.chunks, mp_context=ctx) as pool:
            return list(pool.map(fn, jobs))


class RayExecutor:
    """Jobs as Ray tasks (`ray.remote`, num_cpus=threads each) on the cluster at `address`
    ("local" starts a local instance with the machine's cores; "auto" joins a running one).

    chunks: grid chunks (default: one per two cluster CPUs, at most 16); every worker must be
    able to import tt_deploy and read the bundle path (shared filesystem or identical paths).
    """

    name = "ray"

    def __init__(self, address: str | None = None, chunks: int | None = None, threads: int = 2):
        try:
            import ray
        except ImportError as exc:
            raise MissingExtraError(
                "the Ray executor needs ray: pip install 'tt-deploy[ray]' (or pip install ray)"
            ) from exc
        self._ray = ray
        if not ray.is_initialized():
            if address in (None, "local"):
                ray.init(num_cpus=_cores(), include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.threads = max(1, min(threads, cpus))
        self.chunks = chunks or max(1, min(16, cpus // self.threads))

    def map(self, fn: Callable, jobs: Sequence) -> list:
        remote = self._ray.remote(num_cpus=self.threads)(fn)
        return self._ray.get([remote.remote(job) for job in jobs])


def make_executor(name: str = "local", *, ray_address: str | None = None, workers: int = 2):
    """Executor by name; a Ray address implies "ray". Unknown names list the known ones."""
    if ray_address is not None:
        name = "ray"
    if name == "local":
        return InProcessExecutor()
    if name == "processes":
        return ProcessExecutor(workers)
    if name == "ray":
        return RayExecutor(ray_address)
    raise UnknownNameError("executor", name, EXECUTORS)
