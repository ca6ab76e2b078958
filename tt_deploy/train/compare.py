"""`ttdeploy compare`: the paper's method comparison from finished run directories.

Per run: method, trainable parameters, env steps and wall-clock until the deterministic
evaluation first reached `level`, final success, plus success-vs-steps curves in one PNG.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from tt_deploy.errors import InputError


def _curve(run: Path) -> list[tuple[float, float, float]]:
    """(env_steps, wall_seconds, eval success) at every evaluated iteration of a run's log.csv."""
    path = run / "log.csv"
    if not path.is_file():
        return []
    out = []
    for r in csv.DictReader(open(path)):
        s = float(r.get("eval_success_rate") or "nan")
        if not math.isnan(s):
            out.append((float(r["env_steps"]), float(r["wall_seconds"]), s))
    return out


def summarize_run(run: Path, level: float) -> dict:
    meta_path = run / "run.json"
    if not meta_path.is_file():
        raise InputError(f"{run} is not a training run directory (no run.json)")
    meta = json.loads(meta_path.read_text())
    curve = _curve(run)
    reached = next(((st, wall) for st, wall, s in curve if s >= level), (None, None))
    final = (meta.get("final_eval") or {}).get("success_rate", curve[-1][2] if curve else float("nan"))
    cfg = meta.get("config", {})
    return {"run": str(run), "skill": cfg.get("skill"), "method": cfg.get("method"),
            "trainable_params": meta.get("trainable_params", 0), "env_steps": meta.get("env_steps", 0),
            "wall_seconds": meta.get("wall_seconds", 0.0), f"steps_to_{level:g}": reached[0],
            f"wall_s_to_{level:g}": reached[1], "final_success": final, "curve": curve}  # fmt: skip


def plot_curves(rows: list[dict], png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for r in rows:
        if r["curve"]:
            xs, _, ys = zip(*r["curve"], strict=True)
            ax.plot([x / 1e6 for x in xs], [100 * y for y in ys], marker=".", label=f"{r['method']} ({r['skill']})")
        elif r["method"] == "prior-only":
            ax.axhline(100 * r["final_success"], ls="--", color="gray", label="prior-only (no training)")
    ax.set_xlabel("env steps (M)")
    ax.set_ylabel("success, deterministic eval (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png


def compare_runs(runs: list[Path], level: float = 0.5, plot: Path | None = None) -> list[dict]:
    if not runs:
        raise InputError("compare needs at least one run directory")
    rows = [summarize_run(Path(r), level) for r in runs]
    if plot is not None:
        plot_curves(rows, Path(plot))
    return rows
