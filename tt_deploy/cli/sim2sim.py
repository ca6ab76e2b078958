"""`ttdeploy sim2sim`: closed-loop reference-vs-runtime verification over a perturbation grid
(thin shell over tt_deploy.sim2sim.run_sim2sim); exit 1 on a failed verdict so CI can gate on it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tt_deploy.cli import app
from tt_deploy.cli._output import write_json

console = Console(width=None if sys.stdout.isatty() else 200)  # piped (CI, logs): no truncation


@app.command("sim2sim")
def sim2sim_cmd(
    bundle: Annotated[Path, typer.Option(help="Bundle directory.")] = Path("deploy"),
    skill: Annotated[str, typer.Option(help="Skill of the bundle to verify.")] = "reach",
    grid: Annotated[str, typer.Option(help="Perturbation grid: default | paper.")] = "default",
    episodes: Annotated[int, typer.Option(help="Episodes per grid cell.")] = 32,
    seconds: Annotated[float, typer.Option(help="Episode length (s).")] = 10.0,
    backend: Annotated[str, typer.Option(help="Runtime backend: auto | ort-cpu | ort-cuda | ort-trt.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of both runs (goals, noise).")] = 0,
    atol: Annotated[float | None, typer.Option(help="Open-loop abs error allowed; default per --precision (fp32: "
                                                    "max 1e-4; int8: p99 3e-2).")] = None,
    precision: Annotated[str, typer.Option(help="Precision the runtime computes in: fp32, int8 (`export --precision "
                                                "int8`), bf16 (--backend openvino), tf32 / fp16 (--backend trt, "
                                                "engines of `export --format trt --precision P`; fp16 also ort-trt). "
                                                "Its verdict gates it: skill.json precision_gates.")] = "fp32",
    executor: Annotated[str, typer.Option(help="local (in-process) | processes | ray.")] = "local",
    ray_address: Annotated[
        str | None, typer.Option(help="Run cells on this Ray cluster ('local' starts one); implies --executor ray.")
    ] = None,
    cross_sim: Annotated[str, typer.Option(help="Cross-simulator arm, the reference under physics it never saw: "
                                                "integrator (MuJoCo C, Euler @ 1/240 s), mjwarp (MuJoCo Warp, extra "
                                                "[mjwarp]) or none.")] = "integrator",
    cross_grid: Annotated[bool, typer.Option(help="Run the cross-simulator arm on every grid cell, not only the "
                                                  "nominal one.")] = False,
    report: Annotated[Path | None, typer.Option(help="Write JSON + Markdown + HTML report here.")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the full result as JSON.")] = None,
) -> None:
    """Run the skill as PyTorch reference and as deployed runtime from identical seeds over a grid."""
    from tt_deploy.cli.train import _progress
    from tt_deploy.sim2sim import run_sim2sim  # torch + mujoco import here
    from tt_deploy.sim2sim.report import cell_rows, json_default

    with _progress(1, stats=lambda r: "", unit="control steps", key="done") as update:
        def tick(done: int, total: int) -> None:
            update({"done": done, "total": total})

        result = run_sim2sim(bundle, skill, grid=grid, episodes=episodes, episode_seconds=seconds, backend=backend,
                             seed=seed, executor=executor, ray_address=ray_address, cross_sim=cross_sim,
                             cross_grid=cross_grid, report_dir=report, atol=atol, precision=precision, progress=tick)  # fmt: skip
    rows = cell_rows(result)
    table = Table(title=f"sim2sim {skill} ({grid} grid, {episodes} x {seconds:g} s, {result.backend}, {precision})")
    for col in rows[0] if rows else []:
        table.add_column(col)
    for r in rows:
        table.add_row(*(f"[bold red]{v}[/]" if v == "FAIL" else str(v) for v in r.values()))
    console.print(table)
    cs = result.cross_sim
    if len(result.cross_cells) > 1:
        from tt_deploy.sim2sim.report import cross_rows

        xrows = cross_rows(result)
        xt = Table(title=f"cross-sim {cs.training_physics} -> {cs.cross_physics} (reference policy)")
        for col in xrows[0]:
            xt.add_column(col)
        for r in xrows:
            xt.add_row(*map(str, r.values()))
        console.print(xt)
    elif cs is not None:
        console.print(f"cross-sim {cs.training_physics} -> {cs.cross_physics}: success {cs.training.rate:.2f} -> "
                      f"{cs.cross.rate:.2f} (gap {cs.gap:+.2f} [{cs.gap_low:+.2f}, {cs.gap_high:+.2f}])")  # fmt: skip
    if json_path is not None:
        import json

        write_json(json_path, json.loads(json.dumps(result.to_dict(), default=json_default)))
    for f in result.report_files:
        console.print(f"wrote {f}")
    n_pass = sum(c.passed for c in result.cells)
    if not result.passed:
        console.print(f"[bold red]sim2sim FAILED[/]: {n_pass}/{len(result.cells)} cells passed")
        raise typer.Exit(1)
    console.print(f"[green]sim2sim ok[/]: {n_pass}/{len(result.cells)} cells passed in {result.wall_seconds:.0f} s "
                  "(verdict recorded in skill.json)")  # fmt: skip
