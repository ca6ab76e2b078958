"""`ttdeploy train`, `compare`, `robustness`: task-token training and its results (thin shells).

The embedded BFM's own making (pretrain, pretrain-dagger, evaluate-bfm) is in cli/pretrain.py."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import fields, replace
from pathlib import Path
from typing import Annotated

import typer

from tt_deploy.cli import app
from tt_deploy.cli._output import console, print_table, write_json
from tt_deploy.errors import InputError
from tt_deploy.train.config import METHODS, TrainConfig, default_ppo

# `ttdeploy train`'s defaults and the defaults its help quotes, read from the torch-free config (written once)
_D = {f.name: f.default for f in fields(TrainConfig)}
_TOKEN, _FINETUNE = default_ppo("task-token"), default_ppo("finetune")

JsonOpt = Annotated[Path | None, typer.Option("--json", help="Also write the result as JSON to this path.")]


def _ppo_stats(row: dict) -> str:
    stats = f"{row['steps_per_s']:,.0f} st/s  ret {row['ep_return']:.1f}  len {row['ep_length']:.0f}"
    ev = row.get("eval_success_rate")
    if ev is not None and ev == ev:  # evaluated this iteration (not NaN)
        stats += f"  eval success {100 * ev:.0f} %"
    return stats


@contextmanager
def _progress(total: int, stats=_ppo_stats, unit: str = "steps", key: str = "env_steps"):
    """A rich progress bar fed by the trainer's per-iteration rows (throughput, reward, success, ETA)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    cols = (TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
            TextColumn("{task.fields[stats]}"), TimeRemainingColumn())  # fmt: skip
    with Progress(*cols, console=console) as bar:
        task = bar.add_task(unit, total=total, stats="")

        def update(row: dict) -> None:  # a row may also move the goal post ("total": work found on the way)
            bar.update(task, completed=row[key], stats=stats(row), **({"total": row["total"]} if "total" in row else {}))

        yield update


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(message)s")


@app.command("train")
def train_cmd(
    skill: Annotated[list[str], typer.Option("--skill", help="Task: direction, steering, reach, strike, long_jump "
                                                              "(paper names; the reference code's "
                                                              "direction_facing = steering).")],
    method: Annotated[str, typer.Option(help=" | ".join(METHODS))] = _D["method"],
    bfm: Annotated[Path | None, typer.Option(help="Frozen BFM checkpoint; default: the embedded one.")] = None,
    sim: Annotated[str, typer.Option(help="Simulator backend: mujoco (MuJoCo C, CPU) or mjwarp (MuJoCo Warp, extra "
                                          "[mjwarp]; its CPU device here). isaacgym is an interface only.")] = "mujoco",
    num_envs: Annotated[int, typer.Option(help="Parallel environments.")] = _D["num_envs"],
    steps: Annotated[int, typer.Option(help="Environment steps to train for (total, resume included).")] = _D["steps"],
    seed: Annotated[int, typer.Option(help="Random seed.")] = _D["seed"],
    out: Annotated[Path, typer.Option(help="Run directory (per skill: OUT/<skill>).")] = Path("runs"),
    resume: Annotated[bool, typer.Option(help="Continue from OUT/<skill>/checkpoints/last_state.pt.")] = False,
    current_pose: Annotated[bool, typer.Option(help="Append pelvis and head xyz (+6) to the task obs.")] = _D["current_pose"],
    prior: Annotated[bool, typer.Option(help="The skill's prior prompt (tt_deploy/obs/priors.py) joins the task "
                                              "token; deploy the skill with it.")] = _D["prior"],
    goals: Annotated[str | None, typer.Option(help="Goal ranges: reference (the paper's) or bfm (inside the BFM's "
                                                   "measured abilities); default bfm where the BFM has an "
                                                   "abilities file (the embedded one), else reference.")] = _D["goals"],
    actor_lr: Annotated[float | None, typer.Option(help=f"Actor learning rate; default {_TOKEN.actor_lr:g} (encoder), "
                                                        f"{_FINETUNE.actor_lr:g} with --method finetune.")] = None,
    action_std: Annotated[float | None, typer.Option(help="Fixed std of joint-action exploration (--explore action): "
                                                          f"default {_TOKEN.action_std:g}, {_FINETUNE.action_std:g} for "
                                                          "finetune (the reference's 0.055 topples our BFM).")] = None,
    explore: Annotated[str | None, typer.Option(help="Where PPO explores: token (the task token; task-token's "
                                                     "default) or action (joint actions through the BFM; "
                                                     "finetune's only choice).")] = None,
    token_std: Annotated[float | None, typer.Option(help="Exploration std per token dimension with --explore "
                                                         f"token; default {_D['token_std']:g}.")] = None,
    oracle_start: Annotated[bool, typer.Option(help="Before PPO, DAgger the fresh encoder toward the task's oracle "
                                                    "through the frozen BFM (train/oracles.py; reach).")] = _D["oracle_start"],
    oracle_rounds: Annotated[int, typer.Option(help=f"DAgger rounds of --oracle-start (64 envs x {_D['oracle_steps']} "
                                                    "steps each).")] = _D["oracle_rounds"],
    oracle_policy: Annotated[Path | None, typer.Option(help="The oracle is this finished run's best policy (e.g. a "
                                                            "finetune run of the same skill), not the task's "
                                                            "hand-made one; implies --oracle-start.")] = None,
    eval_envs: Annotated[int, typer.Option(help="Episodes of each deterministic evaluation.")] = _D["eval_envs"],
    seeds: Annotated[int, typer.Option(help="Independent seeds per skill; > 1 (or several skills) runs them "
                                            "in parallel processes, each in OUT/<skill>/seed<k>.")] = 1,
    ray_address: Annotated[str | None, typer.Option(help="Run the runs as Ray tasks on this cluster "
                                                         "('local' starts one here).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every iteration.")] = False,
) -> None:
    """Train a task token through the frozen BFM with PPO (or a baseline, with --method)."""
    from tt_deploy.train.task_token import train_skill

    if sim not in ("mujoco", "mjwarp"):
        raise InputError(f"--sim {sim}: training runs on mujoco or mjwarp; the Isaac Gym backend is "
                         "a simulator interface only (see docs/simulation.md)")  # fmt: skip
    _logging(verbose)
    overrides = {k: v for k, v in {"actor_lr": actor_lr, "action_std": action_std}.items() if v is not None}
    if overrides.get("action_std", 1.0) <= 0 or overrides.get("actor_lr", 1.0) <= 0:
        raise InputError(f"--action-std and --actor-lr must be > 0; got {overrides}")
    ppo = {"ppo": replace(default_ppo(method), **overrides)} if overrides else {}
    if token_std is not None:
        if token_std <= 0:
            raise InputError(f"--token-std must be > 0; got {token_std}")
        ppo["token_std"] = token_std
    if explore is not None:
        ppo["explore"] = explore
    if sim != "mujoco":
        ppo["sim"] = sim
    if oracle_start or oracle_policy is not None:
        ppo.update(oracle_start=True, oracle_rounds=oracle_rounds)
    if oracle_policy is not None:
        if not (oracle_policy / "run.json").is_file():
            raise InputError(f"--oracle-policy {oracle_policy}: not a training run directory (no run.json)")
        ppo["oracle_policy"] = str(oracle_policy)
    probe = TrainConfig(skill[0] if skill else "reach", method=method, **ppo)
    if action_std is not None and probe.exploration == "token":
        raise InputError("--action-std sets joint-action exploration; this run explores in token space "
                         "(--token-std), or pass --explore action")
    if seeds < 1:
        raise InputError(f"--seeds must be >= 1; got {seeds}")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; runs are written into a directory (OUT/<skill>)")
    if seeds > 1 or len(skill) > 1 or ray_address is not None:
        from tt_deploy.train.launcher import launch

        cfgs = [TrainConfig(n, method=method, num_envs=num_envs, steps=steps, seed=seed, current_pose=current_pose,
                            prior=prior, goals=goals, eval_envs=eval_envs, **ppo) for n in skill]  # fmt: skip
        rows = launch(cfgs, seeds, out, bfm_path=bfm, resume=resume, ray_address=ray_address)
        print_table("training runs", rows)
        return
    rows = []
    for name in skill:
        cfg = TrainConfig(name, method=method, num_envs=num_envs, steps=steps, seed=seed, current_pose=current_pose,
                          prior=prior, goals=goals, eval_envs=eval_envs, **ppo)
        run_dir = out / name
        with _progress(steps) as progress:
            summary = train_skill(cfg, run_dir, bfm_path=bfm, resume=resume, progress=progress)
        ev = summary.get("final_eval") or {}
        rows.append({"skill": name, "method": method, "env_steps": summary.get("env_steps", 0),
                     "eval success": ev.get("success_rate", float("nan")), "run": str(run_dir)})  # fmt: skip
    print_table("training runs", rows)


@app.command("compare")
def compare_cmd(
    runs: Annotated[list[Path] | None, typer.Argument(help="Training run directories (each with run.json).")] = None,
    level: Annotated[float, typer.Option(help="Success level for 'steps/wall-clock to reach'.")] = 0.5,
    plot: Annotated[Path | None, typer.Option(help="Write success-vs-steps curves to this PNG.")] = None,
    results: Annotated[Path | None, typer.Option(help="Instead: every run under this root "
                                                      "(<preset>/<method>/seed<k>/<skill>) as the results table.")] = None,
    md: Annotated[Path, typer.Option(help="With --results: the Markdown table to write.")] = Path("docs/results.md"),
    img_dir: Annotated[Path, typer.Option(help="With --results: where the per-task plots go.")] = Path("docs/img"),
    json_path: JsonOpt = None,
) -> None:
    """Compare methods: trainable parameters, steps and wall-clock to a success level, final success;
    with --results, the whole results table (docs/results.md + JSON + a plot per task)."""
    if results is not None:
        from tt_deploy.train.results import write_results

        rows = write_results(results, md, json_path, img_dir, command=f"ttdeploy compare --results {results}")
        cols = ["preset", "skill", "method", "seeds", "success_mean", "success_std", "segments", "trainable_params"]
        print_table("task-token results", rows, cols)
        console.print(f"wrote {md}")
        return
    from tt_deploy.train.compare import compare_runs

    if not runs:
        raise InputError("compare needs run directories or --results ROOT")
    rows = compare_runs(runs, level=level, plot=plot)
    cols = ["skill", "method", "trainable_params", "env_steps", "wall_seconds", f"steps_to_{level:g}",
            f"wall_s_to_{level:g}", "final_success"]  # fmt: skip
    print_table("method comparison", [{k: ("-" if r[k] is None else r[k]) for k in cols} for r in rows], cols)
    if plot is not None:
        console.print(f"wrote {plot}")
    write_json(json_path, rows)


@app.command("robustness")
def robustness_cmd(
    runs: Annotated[list[Path], typer.Argument(help="Training run directories of one skill (task-token, finetune, "
                                                    "pure-rl), compared on the same cells and episodes.")],
    episodes: Annotated[int, typer.Option(help="Evaluation episodes per cell (the run's evaluation seed).")] = 32,
    bfm: Annotated[Path | None, typer.Option(help="The runs' BFM; default: the embedded one (sha256-checked).")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write success vs friction / gravity to this PNG.")] = None,
    json_path: JsonOpt = None,
) -> None:
    """Success under friction x0.4-2 and gravity x0.5-1.5 (+ the paper's 15 m/s^2), per run: the robustness figure."""
    from tt_deploy.train.robustness import evaluate_under, plot_robustness, robustness_cells

    if episodes < 1:
        raise InputError(f"--episodes must be >= 1; got {episodes}")
    cells = robustness_cells()
    results, rows = [], []
    with _progress(len(cells) * len(runs), stats=lambda r: r["label"], unit="cells", key="done") as update:
        for run in runs:
            def tick(row, run=run):
                rows.append({"run": str(run), **row})
                update({"done": len(rows), "label": f"{run}: {row['cell']} {100 * row['success_rate']:.0f} %"})

            results.append(evaluate_under(run, cells, episodes=episodes, bfm_path=bfm, progress=tick))
    skills = {r["skill"] for r in results}
    if len(skills) > 1:
        raise InputError(f"robustness compares runs of one skill; got {sorted(skills)}")
    extra = [k for k in ("stride_success_rate",) if any(k in r for r in rows)]
    print_table(f"{results[0]['skill']} under perturbation ({episodes} episodes a cell)",
                [{**r, **{k: f"{100 * r[k]:.1f}" for k in ("success_rate", "fall_rate", *extra)}} for r in rows],
                ["run", "cell", "success_rate", *extra, "fall_rate"])  # fmt: skip
    if plot is not None:
        plot_robustness(results, plot, rule=extra[0] if extra else "success_rate")
        console.print(f"wrote {plot}")
    write_json(json_path, results)


@app.command("evaluate")
def evaluate_cmd(
    run: Annotated[Path, typer.Option(help="A training run directory (run.json + checkpoints), e.g. "
                                           "tt_deploy/skills/reach.")],
    seeds: Annotated[str, typer.Option(help="Evaluation seeds, comma-separated (pick ones training never used, "
                                            "e.g. 7001,7002,7003).")] = "7001,7002,7003,7004,7005",
    episodes: Annotated[int, typer.Option(help="Episodes per seed (one per env, each env's first).")] = 64,
    goals: Annotated[str | None, typer.Option(help="Goal preset: bfm | reference (default: the run's own).")] = None,
    method: Annotated[str, typer.Option(help="both (trained and prior-only, paired) | trained | prior-only.")] = "both",
    bfm: Annotated[Path | None, typer.Option(help="The run's BFM; default: the embedded one (sha256-checked).")] = None,
    json_path: JsonOpt = None,
) -> None:
    """A trained skill and its prior alone on evaluation seeds you choose: paired episodes, Wilson intervals."""
    from tt_deploy.train.evaluate_run import evaluate_run

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise InputError(f"--seeds must be comma-separated integers, got {seeds!r}") from None
    n = len(seed_list) * (2 if method == "both" else 1)
    with _progress(n, stats=lambda row: "", unit="evaluations", key="done") as progress:
        result = evaluate_run(run, seed_list, episodes, goals=goals, method=method, bfm_path=bfm,
                              progress=None if progress is None else lambda d, _t: progress({"done": d}))
    rows = [{"method": m, "success %": 100 * r["success_rate"], "95 % interval": f"{100 * r['ci_low']:.1f}-"
             f"{100 * r['ci_high']:.1f}", "segments": r["segments"], "episodes": r["episodes"],
             "falls %": 100 * r["fall_rate"], **({"stride %": 100 * r["stride_success_rate"]}
                                                 if "stride_success_rate" in r else {})}
            for m, r in result["methods"].items()]  # fmt: skip
    print_table(f"{result['skill']} ({result['run_method']}, {result['goals']} goals, seeds {seeds})", rows)
    if "paired_gain" in result:
        g = result["paired_gain"]
        console.print(f"paired gain {100 * g['gain']:+.1f} points (95 % interval {100 * g['ci_low']:+.1f} to "
                      f"{100 * g['ci_high']:+.1f}) over {g['episodes']} paired episodes")
    write_json(json_path, result)
