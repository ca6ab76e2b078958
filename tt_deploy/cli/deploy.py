"""`ttdeploy export`: write skills into a deploy bundle (thin shell over export.bundle.export_skill)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tt_deploy.cli import app

console = Console()


@app.command("export")
def export_cmd(
    skill: Annotated[list[str], typer.Option("--skill", help="Skill to export; repeat for several.")],
    bfm: Annotated[
        Path | None, typer.Option(help="BFM checkpoint (.safetensors); default: the embedded BFM.")
    ] = None,
    run: Annotated[
        Path | None,
        typer.Option(help="Training run dir with checkpoints/best.safetensors (one --skill only)."),
    ] = None,
    bundle: Annotated[Path, typer.Option(help="Bundle directory to create or extend.")] = Path("deploy"),
    seed: Annotated[
        int, typer.Option(help="Seed of fresh (untrained) encoders when --run is not given.")
    ] = 0,
    opset: Annotated[int, typer.Option(help="ONNX opset for every graph of the bundle (>= 17).")] = 17,
) -> None:
    """Export the BFM and task encoders as ONNX graphs into a deploy bundle (atomic)."""
    from tt_deploy.errors import InputError
    from tt_deploy.export.bundle import bundle_files, export_skill  # torch import happens here

    if run is not None and len(skill) != 1:
        raise InputError(f"--run belongs to one skill; got {len(skill)} --skill values")
    for name in skill:
        export_skill(name, bfm_path=bfm, run_dir=run, bundle_dir=bundle, seed=seed, opset=opset)
        console.print(f"exported [bold]{name}[/] into {bundle}")
    table = Table(title=f"bundle {bundle}")
    for col in ("file", "bytes", "sha256"):
        table.add_column(col, justify="right" if col == "bytes" else "left")
    for rel, size, sha in bundle_files(bundle):
        table.add_row(rel, f"{size:,}", sha[:12])
    console.print(table)
