"""The task-token results table ("Table 1") generated from committed run directories.

Layout read: `<root>/<preset>/<method>/seed<k>/<skill>/run.json` (+ log.csv), as the training runs
write it (`ttdeploy train --goals PRESET --method METHOD --seed K --out <root>/<preset>/<method>/seed<k>`).
The <method> folder names the row: a training method, or a variant of one (`task-token-action`:
task tokens trained with `--explore action`, PPO's noise on the joint actions; `task-token-oracle`: task
tokens whose encoder was first DAgger-distilled toward the task's oracle, `--oracle-start`;
`task-token-oracle-lr1e-4`: the same with the encoder's normaliser frozen after distillation and actor lr 1e-4, which
is what --oracle-start does now; `task-token-oracle` runs used lr 3e-4 and a normaliser that kept updating;
`task-token-finetune-oracle`: the same start with a finetune run's policy as the oracle, `--oracle-policy`).
A run's success is its LAST deterministic evaluation (the reference's per-goal-segment rate); the best
evaluation is shown beside it but not used, because it is picked on the same evaluation episodes.
Per (preset, skill, method): mean and std over seeds, a 95 % Wilson interval over the pooled goal
segments of all seeds, trainable parameters, env steps and CPU-hours until the evaluation first reached
90 % of the final success, and a success-vs-steps plot per skill.
`<root>/robustness/<skill>.json` (written by `ttdeploy robustness --json`) adds the robustness figure:
success per perturbation cell for each run, as a table and a plot.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from tt_deploy.atomic import atomic_write_text
from tt_deploy.errors import InputError
from tt_deploy.hashing import strip_checkout_paths
from tt_deploy.stats import wilson_interval
from tt_deploy.train.compare import _curve

METHOD_ORDER = ("task-token", "task-token-oracle", "task-token-oracle-lr1e-4", "task-token-finetune-oracle",
                "task-token-action", "prior-only", "finetune", "pure-rl")
SKILL_ORDER = ("reach", "direction", "steering", "strike", "long_jump")
# Table 1 of the Task Tokens paper (success %, 5 seeds): reference goals on a 25 M-parameter MaskedMimic
PAPER = {"reach": {"task-token": 94.9, "prior-only": 24.8, "finetune": 93.7, "pure-rl": 89.9},
         "direction": {"task-token": 99.3, "prior-only": 2.2, "finetune": 99.1, "pure-rl": 97.7},
         "steering": {"task-token": 88.7, "prior-only": 3.8, "finetune": 87.4, "pure-rl": 32.6},
         "long_jump": {"task-token": 99.8, "finetune": 47.4, "pure-rl": 61.9},
         "strike": {"task-token": 76.6, "finetune": 83.1, "pure-rl": 81.4}}
LEVEL = 0.9  # "steps to 90 % of the final success"


def find_runs(root: Path) -> list[Path]:
    runs = sorted(p.parent for p in Path(root).glob("*/*/seed*/*/run.json"))
    if not runs:
        raise InputError(f"no runs under {root} (expected <preset>/<method>/seed<k>/<skill>/run.json)")
    return runs


_CURRENT_PRIOR: dict[str, dict] = {}


def prior_note(skill: str | None, task_prior: dict | None) -> str:
    """'' when a run was trained beside the prior its task builds today, else the parameters that differ
    ("strike_radius 1.2"): a prior's default can change (obs/priors.py), and rows must not mix priors."""
    if not skill or not task_prior:
        return ""
    if skill not in _CURRENT_PRIOR:
        from tt_deploy.tasks.registry import make_task

        _CURRENT_PRIOR[skill] = make_task(skill, 1, prior=True).prior_prompt.describe()["params"]
    now = _CURRENT_PRIOR[skill]
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in sorted(task_prior.get("params", {}).items()) if now.get(k) != v)


def run_record(run: Path) -> dict:
    meta = json.loads((run / "run.json").read_text())
    cfg = meta.get("config", {})
    ev = meta.get("final_eval") or {}
    curve = _curve(run)
    final = ev.get("success_rate", curve[-1][2] if curve else float("nan"))
    target = LEVEL * final
    reached = next(((st, wall) for st, wall, s in curve if s >= target), (None, None)) if final > 0 else (None, None)
    segs = ev.get("segments")
    return {"run": run.as_posix(), "preset": (meta.get("goals") or {}).get("preset", run.parts[-4]),
            "skill": cfg.get("skill"), "method": run.parts[-3], "seed": cfg.get("seed"),
            "success": final, "best": max((s for *_, s in curve), default=final),
            "segments": segs, "passed": None if segs is None else round(final * segs),
            "episode_success": ev.get("episode_success_rate"), "fall_rate": ev.get("fall_rate"),
            "stride_success": ev.get("stride_success_rate"),
            "trainable_params": meta.get("trainable_params", 0), "env_steps": meta.get("env_steps", 0),
            "wall_seconds": meta.get("wall_seconds", 0.0), "nthread": cfg.get("nthread", 1),
            "steps_to_90": reached[0], "wall_s_to_90": reached[1], "curve": curve,
            "goals": meta.get("goals"), "prior_note": prior_note(cfg.get("skill"), meta.get("task_prior"))}  # fmt: skip


def aggregate(records: list[dict]) -> list[dict]:
    """One row per (preset, skill, method, prior) over its seeds: runs beside an earlier prior get their own row."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        groups[(r["preset"], r["skill"], r["method"], r.get("prior_note", ""))].append(r)
    rows = []
    for (preset, skill, method, note), rs in groups.items():
        s = np.array([r["success"] for r in rs], dtype=float)
        passed = sum(r["passed"] or 0 for r in rs)
        total = sum(r["segments"] or 0 for r in rs)
        lo, hi = wilson_interval(passed, total) if total else (float("nan"), float("nan"))
        to90 = [r["steps_to_90"] for r in rs if r["steps_to_90"] is not None]
        wall90 = [r["wall_s_to_90"] * r["nthread"] / 3600 for r in rs if r["wall_s_to_90"] is not None]
        stride = [r["stride_success"] for r in rs if r.get("stride_success") is not None]
        falls = [r["fall_rate"] for r in rs if r.get("fall_rate") is not None]
        rows.append({"preset": preset, "skill": skill, "method": method, "prior_note": note, "seeds": len(rs),
                     "stride_mean": float(np.mean(stride)) if stride else None,
                     "falls_mean": float(np.mean(falls)) if falls else None,
                     "success_mean": float(s.mean()), "success_std": float(s.std(ddof=1)) if len(s) > 1 else 0.0,
                     "ci95": [lo, hi], "segments": total, "trainable_params": rs[0]["trainable_params"],
                     "env_steps": int(np.mean([r["env_steps"] for r in rs])),
                     "steps_to_90": float(np.mean(to90)) if to90 else None,
                     "cpu_hours_to_90": float(np.mean(wall90)) if wall90 else None,
                     "paper": PAPER.get(skill, {}).get(method) if preset == "reference" and not note else None})  # fmt: skip
    key = lambda r: (r["preset"], SKILL_ORDER.index(r["skill"]) if r["skill"] in SKILL_ORDER else 99,  # noqa: E731
                     bool(r["prior_note"]), METHOD_ORDER.index(r["method"]) if r["method"] in METHOD_ORDER else 99)
    return sorted(rows, key=key)


def _pct(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def plot_skill(skill: str, records: list[dict], png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, r in enumerate(sorted(records, key=lambda r: (r["preset"], r["method"], r["seed"]))):
        label = f"{r['method']} seed {r['seed']} ({r['preset']} goals" + (
            f"; earlier prior: {r['prior_note']})" if r.get("prior_note") else ")")
        if r["curve"]:
            xs, _, ys = zip(*r["curve"], strict=True)
            ax.plot([x / 1e6 for x in xs], [100 * y for y in ys], marker=".", label=label, color=f"C{i % 10}")
        else:
            ax.axhline(100 * r["success"], ls="--", color=f"C{i % 10}", label=label + ", no training")
    ax.set_title(f"{skill}: success per goal segment (deterministic evaluation)")
    ax.set_xlabel("env steps (M)")
    ax.set_ylabel("success (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png


def render_markdown(rows: list[dict], records: list[dict], plots: dict[str, str], command: str) -> str:
    out = ["# Task-token results", "",
           f"Generated by `{command}` from the committed runs under `results/` - do not edit by hand.", "",
           "Success is the reference's rate: passed goal segments over all segments (docs/tasks.md), from each "
           "run's last deterministic evaluation (64 episodes of 10 s, the evaluation seeds 10000 + seed). "
           "Mean and std are over seeds, the 95 % interval is a Wilson interval over the pooled segments. "
           "`bfm` goals stay inside the embedded BFM's measured abilities (tasks/goals.py); `reference` goals "
           "are the paper's. Paper: the Task Tokens paper's Table 1 on the reference goals (25 M-parameter "
           "MaskedMimic); our BFM is the 0.47 M-parameter `small` one. Stride rule (direction, steering; ours, "
           "beside the reference's): the same 20 % speed rule on the root velocity averaged over one stride "
           "(docs/tasks.md). Methods: `task-token` PPO from the null token; `task-token-oracle` PPO after an "
           "oracle-distilled start (`--oracle-start`, docs/diagnostics.md; its env steps include the distillation's); "
           "`task-token-oracle-lr1e-4` the same with the encoder normaliser frozen after distillation and "
           "actor lr 1e-4 (today's `--oracle-start`; the `task-token-oracle` runs predate both); "
           "`task-token-finetune-oracle` the same start with the finetune run's policy as the oracle "
           "(`--oracle-policy`); `task-token-action` PPO with joint-action exploration (older runs). \"(earlier prior: "
           "...)\" marks runs trained and evaluated beside a prior whose parameters have since changed "
           "(obs/priors.py says why); they are kept, never pooled with today's. A goal segment "
           "counts once its measurement started (the reference's grace window): a method whose episodes all fall "
           "before that has 0 segments and no interval; `falls %` says so.", "",
           "| goals | task | method | seeds | success % (mean +- std) | 95 % interval | segments | falls % "
           "| trainable params | env steps | steps to 90 % of final | CPU-h to 90 % | paper % | stride rule % |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lo, hi = r["ci95"]
        interval = "-" if math.isnan(lo) else f"{_pct(lo)}-{_pct(hi)}"  # no segment measured: no interval
        to90 = "-" if r["steps_to_90"] is None else f"{r['steps_to_90'] / 1e6:.2f} M"
        cpu = "-" if r["cpu_hours_to_90"] is None else f"{r['cpu_hours_to_90']:.2f}"
        paper = "-" if r["paper"] is None else f"{r['paper']:.1f}"
        method = r["method"] + (f" (earlier prior: {r['prior_note']})" if r.get("prior_note") else "")
        out.append(f"| {r['preset']} | {r['skill']} | {method} | {r['seeds']} | {_pct(r['success_mean'])} +- "
                   f"{_pct(r['success_std'])} | {interval} | {r['segments']} | {_pct(r['falls_mean'])} "
                   f"| {r['trainable_params']:,} "
                   f"| {r['env_steps']:,} | {to90} | {cpu} | {paper} | {_pct(r['stride_mean'])} |")
    out += ["", "## Runs", "",
            "| run | success % (last eval) | best eval % | per-episode % | falls % | stride rule % | env steps |",
            "|---|---|---|---|---|---|---|"]
    for r in records:
        out.append(f"| `{r['run']}` | {_pct(r['success'])} | {_pct(r['best'])} | {_pct(r['episode_success'])} "
                   f"| {_pct(r['fall_rate'])} | {_pct(r.get('stride_success'))} | {r['env_steps']:,} |")
    if plots:
        out += ["", "## Success vs env steps", ""] + [f"![{k}]({v})" for k, v in plots.items()]
    return "\n".join(out) + "\n"


def robustness_section(root: Path, img_dir: Path | None, md: Path) -> list[str]:
    """Markdown (table + plot) for every `<root>/robustness/<skill>.json`; [] when there is none."""
    from tt_deploy.train.robustness import plot_robustness

    out = []
    for path in sorted((Path(root) / "robustness").glob("*.json")):
        results = json.loads(path.read_text())
        if not results:
            continue
        skill, rule = results[0]["skill"], "stride_success_rate" if "stride_success_rate" in results[0]["cells"][0] \
            else "success_rate"
        runs = [f"{r['method']} s{r['seed']}" + (" (best ckpt)" if str(r.get("checkpoint", "")).startswith("best") else "")
                for r in results]  # a finetune run commits only its best whole-policy checkpoint
        out += ["", f"### {skill} (`{path.as_posix()}`, {results[0]['episodes']} episodes a cell)", "",
                "Success % per cell, the reference rule" + (" / the stride rule" if rule != "success_rate" else "")
                + "; falls % in brackets.", "",
                "| cell | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
        for i, cell in enumerate(results[0]["cells"]):
            vals = []
            for r in results:
                c = r["cells"][i]
                v = _pct(c["success_rate"]) + (f" / {_pct(c[rule])}" if rule != "success_rate" else "")
                vals.append(f"{v} ({_pct(c['fall_rate'])})")
            out.append(f"| {cell['cell']} | " + " | ".join(vals) + " |")
        if img_dir is not None:
            png = plot_robustness(results, Path(img_dir) / f"robustness_{skill}.png", rule=rule)
            rel = png.relative_to(md.parent).as_posix() if png.is_relative_to(md.parent) else png.as_posix()
            out += ["", f"![{skill} robustness]({rel})"]
    if out:
        out = ["", "## Robustness (the paper's figure)", "",
               "Each run's last policy on its own evaluation episodes with every env under one perturbation "
               "(`ttdeploy robustness RUN... --json results/robustness/<skill>.json`): friction x0.4-2, gravity "
               "x0.5-1.5 and the paper's out-of-distribution 15 m/s^2 (x1.53)."] + out
    return out


def write_results(root: Path, md: Path, json_path: Path | None = None, img_dir: Path | None = None,
                  command: str = "ttdeploy compare --results results") -> list[dict]:
    records = [run_record(r) for r in find_runs(Path(root))]
    rows = aggregate(records)
    plots = {}
    if img_dir is not None:
        for skill in sorted({r["skill"] for r in records}):
            png = plot_skill(skill, [r for r in records if r["skill"] == skill], Path(img_dir) / f"results_{skill}.png")
            plots[skill] = Path(png).relative_to(Path(md).parent).as_posix() if png.is_relative_to(Path(md).parent) \
                else png.as_posix()
    text = render_markdown(rows, records, plots, command) + "\n".join(robustness_section(root, img_dir, Path(md)))
    atomic_write_text(Path(md), text.rstrip("\n") + "\n")
    if json_path is not None:
        slim = [{k: v for k, v in r.items() if k != "curve"} for r in records]
        text = json.dumps({"rows": rows, "runs": slim}, indent=2, default=str)
        atomic_write_text(Path(json_path), strip_checkout_paths(text))  # a published file: no machine paths
    return rows
