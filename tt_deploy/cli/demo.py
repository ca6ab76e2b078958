"""`ttdeploy demo`: the whole chain on the embedded default (thin shell over tt_deploy.demo)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tt_deploy.cli import app
from tt_deploy.cli._output import console, print_table, write_json


@app.command("demo")
def demo_cmd(
    out: Annotated[Path, typer.Option(help="Where the bundle, benchmark and summary go.")] = Path("demo_out"),
    bench_calls: Annotated[int, typer.Option(help="Timed runtime calls per benchmark row.")] = 300,
    seconds: Annotated[float, typer.Option(help="Closed-loop seconds in MuJoCo.")] = 5.0,
) -> None:
    """Embedded BFM -> skill -> bundle -> verify -> bench -> closed loop in MuJoCo, offline."""
    from tt_deploy.demo import DemoConfig, run_demo

    summary = run_demo(DemoConfig(out=out, bench_calls=bench_calls, closed_loop_seconds=seconds),
                       say=lambda m: console.print(f"[bold cyan]demo[/] {m}"))  # fmt: skip
    lat = [r for r in summary["bench"] if r.get("kind") == "latency"]
    if lat:
        print_table("latency (batch 1)", lat, ["name", "batch", "p50_us", "p99_us", "max_us", "misses_period", "floor_us"])
    write_json(out / "summary.json", summary)
    console.print(f"bundle: {summary['bundle']}  |  verify: {'PASSED' if summary['verify']['passed'] else 'FAILED'}"
                  f"  |  summary: {out / 'summary.json'}")  # fmt: skip
    if not summary["verify"]["passed"]:
        raise typer.Exit(1)
