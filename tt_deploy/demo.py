"""`ttdeploy demo`: the whole chain on the embedded default, offline, in a few minutes on 2 cores.

embedded BFM -> every shipped trained skill (`tt_deploy/skills/<task>/`; a seeded fresh encoder only
if the package ships none, and the output says so) -> deploy bundle -> open-loop verification ->
latency benchmark -> a closed-loop check per skill: the deployed runtime drives MuJoCo humanoids for a
few seconds, fed the skill's prior prompt, beside the skill's measured success and its prior-only one.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
SHIPPED_RUNS = Path(__file__).parent / "skills"  # trained skill runs shipped in the package
PRIOR_ONLY_FILE = "prior_only.json"  # a shipped skill's prior-only run.json on the same evaluation seeds


def shipped_skills() -> tuple[str, ...]:
    """The trained skills the package ships (a run dir with checkpoints under tt_deploy/skills/)."""
    return tuple(sorted(p.name for p in SHIPPED_RUNS.iterdir() if (p / "checkpoints").is_dir())) \
        if SHIPPED_RUNS.is_dir() else ()


def measured_success(skill: str) -> dict:
    """A shipped skill's success (its run's last evaluation) and its prior-only success, from the
    committed run.json files; None where a file or number is missing."""
    import json

    def rate(path: Path):
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError):
            return None, None, None
        ev = meta.get("final_eval") or {}
        return ev.get("success_rate"), ev.get("stride_success_rate"), (meta.get("goals") or {}).get("preset")

    trained, stride, preset = rate(SHIPPED_RUNS / skill / "run.json")
    prior_only, prior_stride, _ = rate(SHIPPED_RUNS / skill / PRIOR_ONLY_FILE)
    return {"success": trained, "prior_only": prior_only, "goals": preset, "stride": stride,
            "prior_only_stride": prior_stride}


@dataclass(frozen=True)
class DemoConfig:
    out: Path = Path("demo_out")
    skills: tuple[str, ...] | None = None  # None: every shipped trained skill
    bench_calls: int = 300
    closed_loop_seconds: float = 5.0
    closed_loop_envs: int = 16


def closed_loop(bundle: Path, skill: str, seconds: float, envs: int, seed: int = 0) -> dict:
    """Run the deployed runtime (batched graph) in MuJoCo; falls and task reward over `seconds`."""
    from tt_deploy.runtime import SkillRuntime
    from tt_deploy.runtime.manifest import read_skill
    from tt_deploy.sim.mujoco_backend import MujocoSimulator
    from tt_deploy.tasks.env import TaskEnv
    from tt_deploy.tasks.registry import make_task_for_skill

    task = make_task_for_skill(read_skill(bundle, skill), envs)  # its prior prompt and goals included
    env = TaskEnv(MujocoSimulator(envs, objects=task.objects, seed=seed), task,
                  episode_seconds=seconds + 1.0, seed=seed)  # fmt: skip
    steps, falls, reward = int(seconds * 30), np.zeros(envs, bool), 0.0
    t0 = time.perf_counter()
    with SkillRuntime(bundle, skills=[skill], batch=None) as rt:
        step = env.reset()
        for _ in range(steps):
            step = env.step(rt.act_batch(step.inputs, step.task_obs))
            falls |= step.info["fell"]
            reward += float(step.reward.mean())
    return {"skill": skill, "envs": envs, "seconds": seconds, "fell": int(falls.sum()),
            "mean_reward_per_step": reward / steps, "wall_s": time.perf_counter() - t0}  # fmt: skip


def _clear_old_bundle(bundle: Path) -> None:
    """The demo rebuilds its bundle every run: one from an earlier run (maybe of another BFM) goes;
    a non-empty directory that is not a bundle is left alone and reported."""
    from tt_deploy.errors import InputError
    from tt_deploy.runtime.manifest import MANIFEST_FILE

    if not bundle.exists():
        return
    if not bundle.is_dir():
        raise InputError(f"{bundle} is a file, not a bundle directory: choose another --out for the demo")
    if (bundle / MANIFEST_FILE).is_file():
        shutil.rmtree(bundle)
    elif any(bundle.iterdir()):
        raise InputError(f"{bundle} exists and is not a deploy bundle: choose another --out for the demo")


def run_demo(cfg: DemoConfig, say: Callable[[str], None] = log.info) -> dict:
    """Run every stage; returns a summary dict with the paths it wrote and the numbers it measured."""
    from tt_deploy.bench.latency import bench_bundle
    from tt_deploy.export.bundle import export_skill
    from tt_deploy.export.verify import verify_bundle
    from tt_deploy.models.checkpoints import default_bfm, pretraining_cost

    out = Path(cfg.out)
    bundle = out / "deploy"
    bfm, info = default_bfm()
    say("BFM: " + (f"embedded pretrained checkpoint {info['path']} ({pretraining_cost(info)[0] or 0:,} training steps)"
                   if info.get("pretrained") else "no pretrained BFM embedded: a seeded fresh `small` BFM"))
    summary: dict = {"bfm": {k: v for k, v in info.items()}, "bundle": str(bundle), "skills": {}}
    _clear_old_bundle(bundle)
    skills = cfg.skills or shipped_skills() or ("reach",)
    for skill in skills:
        run = SHIPPED_RUNS / skill
        run_dir = run if (run / "checkpoints").is_dir() else None
        export_skill(skill, bundle_dir=bundle, run_dir=run_dir)
        src = f"trained encoder {run_dir}" if run_dir else "fresh seeded encoder (untrained: no trained skill shipped)"
        say(f"exported skill {skill!r} ({src}) into {bundle}")
        summary["skills"][skill] = {"encoder": src, **measured_success(skill)}
    report = verify_bundle(bundle, record=True)
    summary["verify"] = {"passed": report.passed, "max_abs": max(r.max_abs for r in report.rows)}
    say(f"verify: {'PASSED' if report.passed else 'FAILED'}, max abs error {summary['verify']['max_abs']:.2e}")
    rows = bench_bundle(bundle, skills[0], batches=(1,), calls=cfg.bench_calls, warmup=50,
                        json_path=out / "bench.json", memory=False)  # fmt: skip
    summary["bench"] = [r for r in rows if r.get("kind") == "latency"] or rows
    say(f"bench: wrote {out / 'bench.json'}")
    summary["closed_loop"] = {}
    for skill in skills:
        cl = summary["closed_loop"][skill] = closed_loop(bundle, skill, cfg.closed_loop_seconds, cfg.closed_loop_envs)
        m = summary["skills"][skill]
        pct = lambda x: "n/a" if x is None else f"{100 * x:.1f} %"  # noqa: E731
        stride = (f" (stride rule {pct(m['stride'])} vs {pct(m['prior_only_stride'])})"
                  if m.get("stride") is not None else "")
        say(f"closed loop {skill!r} (prior prompt fed): runtime drove {cl['envs']} humanoids for {cl['seconds']} s, "
            f"{cl['fell']} fell; measured success {pct(m['success'])} vs prior-only {pct(m['prior_only'])}{stride} "
            f"({m['goals'] or 'reference'} goals, tt_deploy/skills/{skill}/run.json)")
    return summary
