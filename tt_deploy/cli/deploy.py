"""`ttdeploy export`: write skills into a deploy bundle, build TensorRT engines, lint for TensorRT.

Thin shell over export.bundle.export_skill, export.tensorrt_build.build_bundle_engines and
export.trt_lint.lint_bundle; torch and tensorrt are imported inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tt_deploy.cli import app

console = Console()
FORMATS = ("onnx", "trt")


@app.command("export")
def export_cmd(
    skill: Annotated[
        list[str] | None, typer.Option("--skill", help="Skill to export; repeat for several.")
    ] = None,
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
    bfm_config: Annotated[
        str | None,
        typer.Option(help="Export a fresh, untrained BFM of this size instead (paper | small; seeded by --seed, "
                     "marked untrained in the manifest): re-measure the paper-size latency and memory."),
    ] = None,
    default_skill: Annotated[
        str | None,
        typer.Option(help="The skill a runtime starts with (manifest default_skill); default: the bundle's "
                     "current default, else the first trained skill exported, else the first."),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="onnx: ONNX graphs only. trt: also TensorRT engines (fused + split, batch-1 and batch "
            "profiles) into <bundle>/engines/, cached by ONNX sha256 + TensorRT + GPU + precision. "
            "With trt, skills already in the bundle are built from its graphs without re-exporting "
            "(unless --run/--bfm is given).",
        ),
    ] = "onnx",
    precision: Annotated[
        str,
        typer.Option(help="fp32 (the reference, always exported) | int8 (also writes ONNX Runtime int8 fused graphs "
                     "beside the fp32 ones; they load only after `sim2sim --precision int8` passed) | with "
                     "--format trt: the engines' precision fp32 | tf32 | fp16 (LayerNorm/Softmax stay FP32)."),
    ] = "fp32",
    workspace: Annotated[int, typer.Option(help="TensorRT builder workspace limit in MB.")] = 1024,
    lint: Annotated[
        bool,
        typer.Option(
            "--lint",
            help="Check every bundle graph for TensorRT compatibility on CPU (ops, opset, dtypes, static "
            "shapes, plugins); exit 1 on errors. Without --skill: lint the existing bundle only.",
        ),
    ] = False,
) -> None:
    """Export the BFM and task encoders as ONNX graphs into a deploy bundle (atomic); optionally build
    TensorRT engines and lint the graphs for TensorRT."""
    from tt_deploy.errors import InputError, UnknownNameError
    from tt_deploy.export.tensorrt_build import PRECISIONS
    from tt_deploy.runtime.manifest import PRECISIONS as ONNX_PRECISIONS

    skills = list(skill or [])
    if fmt not in FORMATS:
        raise UnknownNameError("--format", fmt, FORMATS)
    known = PRECISIONS if fmt == "trt" else ONNX_PRECISIONS
    if precision not in known:
        raise UnknownNameError(f"--precision with --format {fmt}", precision, known)
    if not skills and not lint:
        raise InputError("give --skill NAME (repeatable), or --lint to lint an existing bundle")
    if run is not None and len(skills) != 1:
        raise InputError(f"--run belongs to one skill; got {len(skills)} --skill values")
    if fmt == "trt":
        from tt_deploy.export.tensorrt_build import require_tensorrt

        require_tensorrt()  # before the (slow) ONNX export: MissingExtraError with the install command
    if skills:
        _export_onnx(skills, bfm, run, bundle, seed, opset, reuse=fmt == "trt", default_skill=default_skill,
                     bfm_config=bfm_config, precisions=(precision,) if fmt == "onnx" else ())
    if fmt == "trt":
        _build_engines(bundle, skills, precision, workspace)
    if lint:
        _lint(bundle)


def _export_onnx(skills, bfm, run, bundle: Path, seed: int, opset: int, *, reuse: bool, default_skill=None,
                 bfm_config=None, precisions=()) -> None:
    from tt_deploy.export.bundle import bundle_files, export_skills  # torch import happens here
    from tt_deploy.runtime import manifest as mf

    have = set(mf.read_manifest(bundle).skills) if (bundle / mf.MANIFEST_FILE).is_file() else set()
    todo = []
    for name in skills:
        if reuse and name in have and bfm is None and run is None and bfm_config is None:
            console.print(f"[bold]{name}[/] is in {bundle}: building engines from its graphs")
        else:
            todo.append(name)
    if todo:  # one new bundle version for all of them
        export_skills(todo, bfm_path=bfm, run_dir=run, bundle_dir=bundle, seed=seed, opset=opset,
                      default_skill=default_skill, bfm_config=bfm_config, precisions=precisions)
        man = mf.read_manifest(bundle)
        console.print(f"exported [bold]{', '.join(todo)}[/] into {bundle} (version {man.content}, "
                      f"default skill {man.default_skill})")
    table = Table(title=f"bundle {bundle}")
    for col in ("file", "bytes", "sha256"):
        table.add_column(col, justify="right" if col == "bytes" else "left")
    for rel, size, sha in bundle_files(bundle):
        table.add_row(rel, f"{size:,}", sha[:12])
    console.print(table)


def _build_engines(bundle: Path, skills, precision: str, workspace: int) -> None:
    from tt_deploy.export.tensorrt_build import build_bundle_engines

    engines = build_bundle_engines(bundle, skills or None, precision=precision, workspace_mb=workspace)
    table = Table(title=f"TensorRT engines ({precision})")
    for col in ("engine", "graph", "profile (min/opt/max of first input)", "gpu", "tensorrt"):
        table.add_column(col)
    for e in engines:
        p = e.profile[0] if e.profile else None
        prof = f"{p.min} / {p.opt} / {p.max}" if p else ""
        table.add_row(e.path, e.graph, prof, e.gpu, e.tensorrt)
    console.print(table)


def _lint(bundle: Path) -> None:
    from tt_deploy.export.trt_lint import lint_bundle

    report = lint_bundle(bundle)
    table = Table(title=f"TensorRT lint of {bundle} ({len(report.ops)} graphs)")
    for col in ("severity", "code", "graph", "node", "message"):
        table.add_column(col)
    for f in report.findings:
        table.add_row(f.severity, f.code, f.graph, f.node or "", f.message)
    if report.findings:
        console.print(table)
    console.print(f"ops checked: {', '.join(report.op_types())}")
    console.print(f"op table: {report.table_source}")
    if not report.ok:
        console.print(f"[bold red]{len(report.errors)} TensorRT lint error(s)[/]")
        raise typer.Exit(1)
    console.print(f"[green]TensorRT lint passed[/] ({len(report.findings)} warnings/infos)")
