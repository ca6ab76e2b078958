"""Success under physics perturbations: the paper's robustness figure, for finished training runs.

Each run's last policy acts deterministically on its own evaluation episodes (the evaluation seed of
its training, 10000 + seed), with every environment under one perturbation cell of the grid at a
time, and is scored by the reference protocol (`evaluate_policy`). The cells are the issue's sweep:
friction x0.4-2 and gravity x0.5-1.5 one knob at a time, plus the paper's out-of-distribution point
(gravity 15 m/s^2, i.e. x1.53). Methods are compared on the same cells and episodes.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tt_deploy.rl.runner import to_torch
from tt_deploy.sim.perturbations import G, Perturbation
from tt_deploy.train.run_policy import load_run_policy
from tt_deploy.train.task_token import _make_env, evaluate_policy

FRICTION = (0.4, 0.7, 1.0, 1.5, 2.0)
GRAVITY = (0.5, 0.75, 1.0, 1.25, 1.5, round(15.0 / G, 4))  # 15 m/s^2: the paper's out-of-distribution gravity


def robustness_cells() -> tuple[Perturbation, ...]:
    """Friction and gravity sweeps, one knob per cell; the nominal cell once."""
    cells = [Perturbation(friction=f) for f in FRICTION] + [Perturbation(gravity=g) for g in GRAVITY]
    return tuple(dict.fromkeys(cells))


def evaluate_under(run: Path, cells=None, *, episodes: int = 32, bfm_path=None, progress=None) -> dict:
    """{run, skill, method, seed, cells: [{cell, friction, gravity, success_rate, ...}]} for one run."""
    cfg, policy, goal_kwargs, used = load_run_policy(Path(run), bfm_path=bfm_path)
    cells = tuple(cells or robustness_cells())
    rows = []
    for cell in cells:
        env = _make_env(cfg, episodes, seed=10_000 + cfg.seed, goal_kwargs=goal_kwargs)
        env.sim.set_perturbation(cell)
        with torch.no_grad():
            res = evaluate_policy(env, lambda s: policy.act_deterministic(to_torch(s)).numpy())
        rows.append({"cell": cell.name, "friction": cell.friction, "gravity": cell.gravity, **res})
        if progress is not None:
            progress(rows[-1])
    return {"run": str(run), "skill": cfg.skill, "method": cfg.method, "seed": cfg.seed, "episodes": episodes,
            "checkpoint": used, "goals": cfg.goals, "cells": rows}


def plot_robustness(results: list[dict], png: Path, rule: str = "success_rate") -> Path:
    """Success vs friction and vs gravity multiplier, one line per run (method, seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for knob, ax in zip(("friction", "gravity"), axes, strict=True):
        for r in results:
            pts = sorted((c[knob], 100 * c.get(rule, float("nan"))) for c in r["cells"]
                         if all(c[k] == 1.0 for k in ("friction", "gravity") if k != knob))
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=f"{r['method']} seed {r['seed']}")
        ax.axvline(1.0, color="gray", lw=0.8, ls=":")
        ax.set_xlabel(f"{knob} multiplier")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"{'success' if rule == 'success_rate' else rule.replace('_', ' ')} (%)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{results[0]['skill']}: success under perturbation ({results[0]['episodes']} episodes a cell)",
                 fontsize=10)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png
