"""Write docs/bfm_card.md: the shipped BFM's recipe, cost, measured abilities and limits.

Everything on the card is data: cost from the checkpoint's info, the recipe (stages, settings,
limitations) from its sidecar (`<name>.recipe.json`, models/checkpoints.recipe_sidecar), abilities
from an `evaluate_bfm` run (fresh, or the abilities file it wrote), curves from the training log.
Why no prose constants: the card may only claim what its tables show, and the history of how each
stage was found lives in docs/history/, not here.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from tt_deploy.atomic import atomic_write_text
from tt_deploy.models.checkpoints import pretraining_cost, recipe_sidecar
from tt_deploy.pretrain.evaluate import row_goal


def _panels(header: list[str]) -> list[tuple[str, str]]:
    """(column, title) of the three curves worth looking at in this kind of training log."""
    if "beta" in header:  # a DAgger log (pretrain/dagger.py): statistics of the executed blend
        return [("walk_falls_per_10s", "walk prompts: falls per 10 s"),
                ("walk_speed", "walk prompts: speed along command (m/s)"),
                ("beta", "controller share of walk actions (rest: BFM)")]  # fmt: skip
    return [("ep_length", "episode length (control steps)"), ("reach_hand_dist", "reach: hand distance (m)"),
            ("walk_speed_along", "walk: speed along command (m/s)")]  # PPO pretraining (pretrain/ppo_stage.py)


def _plot_curves(log_csv: Path, png: Path) -> bool:
    if not log_csv.is_file():
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(open(log_csv)))
    if not rows:
        return False

    def col(name):
        return [float(r.get(name) or "nan") for r in rows]

    steps = [s / 1e6 for s in col("env_steps")]
    panels = _panels(list(rows[0]))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for ax, (name, label) in zip(axes, panels, strict=True):
        ax.plot(steps, col(name), lw=1)
        ax.set_xlabel("env steps (M)")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return True


def _steadiness_section(steady_rows: list[dict]) -> list[str]:
    """The per-step walk rows of `steady_walk.measure_bfm_walk`, each held to issue #33's walk numbers."""
    from tt_deploy.pretrain.steady_walk import MAX_FALLS, MAX_MEAN_ERROR, MAX_SWING, passes

    r0 = steady_rows[0]
    lines = ["", f"## Walk steadiness (per control step, {r0['envs']} envs x {r0['seconds']:g} s per row)", "",
             "Walk prompts at a fixed speed; the pelvis speed along the command over each control step after 5 s, as "
             "the reference direction rule judges it (`pretrain/steady_walk.py`). A row passes with swing (std / own "
             f"mean) <= {100 * MAX_SWING:.0f} %, mean within +-{100 * MAX_MEAN_ERROR:.0f} % of the command and falls "
             f"<= {100 * MAX_FALLS:.0f} %.", "",
             "| command | turning | mean speed | mean error | swing | falls | passes |", "|---|---|---|---|---|---|---|"]
    for r in steady_rows:
        turn = f"{r['turn_rate']:g} rad/s" if r.get("turn_rate") else "straight"
        def pct(x, sign=""):
            return "-" if math.isnan(x) else f"{100 * x:{sign}.1f} %"
        speed = "-" if math.isnan(r["mean_speed"]) else f"{r['mean_speed']:.2f} m/s"
        lines.append(f"| {r['command']:g} m/s | {turn} | {speed} | {pct(r['mean_error'], '+')} | {pct(r['swing'])} | "
                     f"{100 * r['fall_rate']:.0f} % | {'yes' if passes(r) else 'no'} |")  # fmt: skip
    return lines


def _noise_section(rows: list[dict], noise_rows: list[dict]) -> list[str]:
    """The table of `evaluate_bfm.weight_noise_rows`: each row's rate beside its perturbed copies'."""
    own = {(r["ability"], r["condition"]): r["success_rate"] for r in rows}
    n, rel = len(noise_rows[0]["copies"]), noise_rows[0]["weight_noise"]
    lines = ["", f"## Sensitivity to weight noise ({n} copies, noise {rel:g} x each weight tensor's std)", "",
             "The same episodes on copies of this BFM whose weights differ by a tiny random amount: where the copies",
             "score well below the checkpoint, its number is fragile: it belongs to this one set of weights.", "",
             "| ability | condition | this BFM | copies: mean | copies: min-max |", "|---|---|---|---|---|"]  # fmt: skip
    for r in noise_rows:
        mine = own.get((r["ability"], r["condition"]))
        lines.append(f"| {r['ability']} | {r['condition']} | {'-' if mine is None else f'{100 * mine:.0f} %'} | "
                     f"{100 * r['mean']:.0f} % | {100 * r['min']:.0f}-{100 * r['max']:.0f} % |")  # fmt: skip
    return lines


def _recipe_section(recipe: dict) -> list[str]:
    """The sidecar rendered: settings as lists and tables, one row per stage."""
    lines = ["## Recipe", "", f"Start: {recipe['start']}.", "",
             "Prompt modes (tt_deploy/pretrain/prompt_task.py), one per env at a time:", "",
             "| mode | share | prompt | reward |", "|---|---|---|---|"]  # fmt: skip
    lines += [f"| {m['mode']} | {m['share']} | {m['prompt']} | {m['reward']} |" for m in recipe["prompt_modes"]]
    lines += ["", f"Every mode: {recipe['common_reward']}.", ""]
    for stage, title in (("ppo", "PPO"), ("dagger", "DAgger")):
        cfg = dict(recipe[stage])
        lines.append(f"- {title} (`{cfg.pop('module')}`): " + "; ".join(f"{k}: {v}" for k, v in cfg.items()))
    lines += ["", "| teacher | module | what it labels |", "|---|---|---|"]
    lines += [f"| {t['name']} | `{t['module']}` | {t['what']} |" for t in recipe["teachers"]]
    lines += ["", "| stage | method | from | env steps | wall-clock (h) | what it added |", "|---|---|---|---|---|---|"]
    for st in recipe["stages"]:
        lines.append(f"| {st['version']} | {st['method']} | {st['from']} | {st['env_steps'] / 1e6:.2f} M | "
                     f"{st['wall_hours']:.2f} | {st['change']} |")  # fmt: skip
    lines += ["", f"Shipped: {recipe['shipped']}. How each stage was found, measured and picked: "
              f"{recipe['history']} (a frozen log).", ""]  # fmt: skip
    return lines


def write_card(path: Path, *, rows: list[dict], bfm_info: dict, params: int, config: str, recipe: dict | None,
               log_csv: Path | None, episodes: int, seed: int, noise_rows: list[dict] | None = None,
               mjwarp_rows: list[dict] | None = None, steady_rows: list[dict] | None = None) -> Path:
    """The card at `path`; `recipe` is the checkpoint's sidecar (None: the card says it has none); mjwarp_rows: the
    same table measured on MuJoCo Warp (`evaluate-bfm --sim mjwarp`), a column beside MuJoCo's."""
    path = Path(path)
    steps, wall = pretraining_cost(bfm_info)
    plot = path.parent / "img" / "bfm_training_curves.png"
    has_plot = (log_csv is not None and _plot_curves(Path(log_csv), plot)) or plot.is_file()
    machine, cores = (recipe.get("machine", "2 CPU cores"), recipe.get("cpu_cores", 2)) if recipe else ("2 CPU cores", 2)
    lines = [
        "# Model card: the embedded `small` BFM",
        "",
        "Generated by `ttdeploy bfm-card` (or `ttdeploy evaluate-bfm --card`) from the checkpoint, its recipe file and",
        "its measured abilities; do not edit by hand.",
        "",
        "| field | value |",
        "|---|---|",
        f"| configuration | `{config}` (same token interface as `paper`) |",
        f"| parameters | {params:,} |",
        f"| pretraining env steps | {steps:,} |" if steps else "| pretraining env steps | not recorded |",
        (f"| wall-clock | {wall / 3600:.2f} h on {machine} = {cores * wall / 3600:.2f} CPU-hours |"
         if wall else "| wall-clock | not recorded |"),  # fmt: skip
        (f"| sample throughput | {steps / wall:,.0f} env steps/s end to end |" if steps and wall else ""),
        f"| recipe | {recipe['name'] if recipe else bfm_info.get('recipe', 'unknown')} |",
        "",
        *(_recipe_section(recipe) if recipe else ["No recipe file beside this checkpoint.", ""]),
        f"## Abilities (mean action, seed {seed}, {episodes} episodes per row, 95 % Wilson intervals)",
        "",
        *(["Success is measured on MuJoCo C, the training engine; the MuJoCo Warp column runs the same rows, "
           "episodes and seed on MuJoCo Warp (`ttdeploy evaluate-bfm --sim mjwarp`), an independent float32 "
           "implementation: the cross-engine gap (docs/simulation.md).", ""] if mjwarp_rows else []),
        "| ability | condition | success | 95 % CI | episodes | goal |"
        + (" MuJoCo Warp (95 % CI) |" if mjwarp_rows else "") + " details |",
        "|---|---|---|---|---|---|" + ("---|" if mjwarp_rows else "") + "---|",
    ]
    warp = {(r["ability"], r["condition"]): r for r in mjwarp_rows or []}
    for r in rows:
        target = row_goal(r)  # evaluate.GROUPS: the one home of each row's goal
        goal = "reference" if r.get("reference") else "none" if target is None else f">= {100 * target:.0f} %"
        det = ", ".join(f"{k} {v:.3g}" for k, v in r["metrics"].items() if not (isinstance(v, float) and math.isnan(v)))
        lo, hi = r["ci95"]
        w = warp.get((r["ability"], r["condition"]))
        wcol = "" if not mjwarp_rows else " - |" if w is None else \
            f" {100 * w['success_rate']:.0f} % ({100 * w['ci95'][0]:.0f}-{100 * w['ci95'][1]:.0f} %) |"
        lines.append(f"| {r['ability']} | {r['condition']} | {100 * r['success_rate']:.0f} % | "
                     f"{100 * lo:.0f}-{100 * hi:.0f} % | {r['episodes']} | {goal} |{wcol} {det} |")  # fmt: skip
    if steady_rows:
        lines += _steadiness_section(steady_rows)
    if noise_rows:
        lines += _noise_section(rows, noise_rows)
    if has_plot:
        lines += ["", "## Training curves", "", f"![training curves]({plot.relative_to(path.parent)})"]
    limits = recipe.get("limitations", []) if recipe else []
    lines += ["", "## Limitations", "", *(f"- {x}" for x in limits or ["none recorded (no recipe file)"]), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "\n".join(x for x in lines if x is not None) + "\n")
    return path


def read_recipe(bfm_path) -> dict | None:
    """The recipe sidecar of a BFM checkpoint, or None where it has none (or the BFM came from no file)."""
    if bfm_path is None:
        return None
    sidecar = recipe_sidecar(bfm_path)
    return json.loads(sidecar.read_text()) if sidecar.is_file() else None
