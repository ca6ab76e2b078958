"""`ttdeploy doctor` and `ttdeploy gpu-check`: what loads here, and every GPU figure in one time-boxed run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tt_deploy.cli import app
from tt_deploy.cli._output import write_json

console = Console(width=None if sys.stdout.isatty() else 160)


@app.command("doctor")
def doctor_cmd(
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the findings as JSON.")] = None,
) -> None:
    """Installed packages, and which backends really load here (each proven by creating a session or runtime)."""
    from tt_deploy.gpu_check import doctor

    found = doctor()
    packages = Table(title=f"packages (Python {found['python']})")
    packages.add_column("package")
    packages.add_column("version")
    for name, version in found["packages"].items():
        packages.add_row(name, version or "[dim]not installed[/]")
    console.print(packages)
    backends = Table(title="backends")
    backends.add_column("backend")
    backends.add_column("loads")
    backends.add_column("why not")
    for name, reason in found["backends"].items():
        backends.add_row(name, "[green]yes[/]" if reason is None else "[red]no[/]", escape(reason or ""))
    console.print(backends)
    write_json(json_path, found)


@app.command("gpu-check")
def gpu_check_cmd(
    bundle: Annotated[Path, typer.Option(help="Bundle directory (engines are built into it).")] = Path("deploy"),
    skill: Annotated[str | None, typer.Option(help="Skill to check (default: the bundle's default skill).")] = None,
    budget: Annotated[float, typer.Option(min=10, help="Seconds for the whole check; a step that would overrun "
                                                       "it is skipped.")] = 480.0,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report (every step's command, status, "
                                                                  "seconds and numbers) as JSON.")] = None,
) -> None:
    """Build fp32/tf32/fp16 engines, verify on trt / ort-trt / ort-cuda, bench batch 1 and 64, time MuJoCo Warp on
    CUDA and run a short sim2sim on TensorRT: each step a time-boxed `ttdeploy` process; exit 1 if any failed."""
    from tt_deploy.gpu_check import gpu_check
    from tt_deploy.runtime import manifest as mf

    man = mf.read_manifest(bundle)  # BundleError for a missing or broken bundle, before anything runs
    name = skill or man.default_skill or man.skills[0]
    if name not in man.skills:
        from tt_deploy.errors import UnknownNameError

        raise UnknownNameError("skill", name, man.skills)
    colour = {"passed": "green", "failed": "red", "timed out": "red", "skipped": "yellow"}

    def show(row: dict) -> None:
        detail = row.get("reason") or f"{row['seconds']:.1f} s of {row['budget_s']} s"
        console.print(f"[{colour[row['status']]}]{row['status']:>9}[/] {row['step']}: {detail}")

    report = gpu_check(bundle, name, budget_s=budget, progress=show)
    s = report["summary"]
    console.print(f"{s['passed']} passed, {s['failed']} failed, {s['timed out']} timed out, {s['skipped']} skipped "
                  f"in {report['seconds']:.1f} s")  # fmt: skip
    write_json(json_path, report)
    if s["failed"] or s["timed out"]:
        raise typer.Exit(1)
