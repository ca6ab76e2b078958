"""`ttdeploy inspect GRAPH.onnx`: what one graph says about itself (its I/O and the contract in its metadata).

Read through ONNX Runtime, so it needs no torch: a robot computer with the bare runtime can check a graph
it was handed. Metadata keys are what the exporter stamped (`tt-deploy.*`); a graph without them is shown
as such, not refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tt_deploy.cli import app

console = Console()


def describe(path: Path) -> dict:
    """The graph's file hash, inputs, outputs and metadata_props; InputError for a file ONNX Runtime cannot load."""
    from tt_deploy.errors import InputError
    from tt_deploy.hashing import sha256_file
    from tt_deploy.runtime.session import _ort

    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        sess = _ort().InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several private pybind types for bad models
        raise InputError(f"{path} is not a loadable ONNX graph ({str(exc).splitlines()[0][:200]})") from None
    meta = sess.get_modelmeta()

    def io(values) -> list[dict]:
        return [{"name": v.name, "shape": list(v.shape), "type": v.type} for v in values]

    return {"path": str(path), "sha256": sha256_file(path), "producer": meta.producer_name,
            "inputs": io(sess.get_inputs()), "outputs": io(sess.get_outputs()),
            "metadata": dict(sorted(meta.custom_metadata_map.items()))}  # fmt: skip


@app.command("inspect")
def inspect_cmd(
    graph: Annotated[Path, typer.Argument(help="An ONNX graph, e.g. deploy/v1/skills/reach/fused.onnx.")],
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write what was read as JSON.")] = None,
) -> None:
    """Print a graph's inputs, outputs, sha256 and the contract stamped in its ONNX metadata (no torch needed)."""
    from tt_deploy.atomic import atomic_write_text

    info = describe(graph)
    table = Table(title=f"{graph} (sha256 {info['sha256'][:12]}...)")
    for c in ("", "name", "shape", "type"):
        table.add_column(c)
    for kind in ("inputs", "outputs"):
        for v in info[kind]:
            table.add_row(kind[:-1], v["name"], str(v["shape"]), v["type"])
    console.print(table)
    meta = Table(title="metadata_props")
    meta.add_column("key")
    meta.add_column("value", overflow="fold")
    for k, v in info["metadata"].items():
        meta.add_row(k, v)
    console.print(meta if info["metadata"] else "no metadata_props: not a tt-deploy graph (or stripped)")
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(info, indent=2) + "\n")
