"""`ttdeploy inspect GRAPH.onnx`: what one graph says about itself (its I/O and the contract in its metadata).

Read through ONNX Runtime, so it needs no torch: a robot computer with the bare runtime can check a graph
it was handed. Metadata keys are what the exporter stamped (`tt-deploy.*`); the contract keys
(runtime/graph_contract.py) are decoded: per-joint values as one table row per joint, the rest as one row per
key. A graph without them is shown as such, not refused."""

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

    metadata = dict(sorted(meta.custom_metadata_map.items()))
    return {"path": str(path), "sha256": sha256_file(path), "producer": meta.producer_name,
            "inputs": io(sess.get_inputs()), "outputs": io(sess.get_outputs()), "metadata": metadata,
            "contract": contract_values(metadata)}  # fmt: skip


def contract_values(metadata: dict[str, str]) -> dict:
    """The contract keys a graph carries, decoded (JSON values parsed); {} for a graph stamped before them."""
    from tt_deploy.runtime import graph_contract as gc

    return {k: gc.decode(k, v) for k, v in metadata.items() if k in gc.CONTRACT_KEYS}


def _layout(value: dict) -> str:
    """A token layout in words: "token_dim 64; obs 1x358; historical_pose_obs 15x217 (mask ...); ..."."""
    groups = [f"{g['name']} {g['n_tokens']}x{g['feat_dim']}" + (f" (mask {g['mask_name']})" if g["mask_name"] else "")
              for g in value["groups"]]  # fmt: skip
    return f"token_dim {value['token_dim']}; " + "; ".join(groups)


def _short(key: str, value) -> str:
    """One contract value in words: a token layout as its groups, a dict as k=v, a list comma-joined (a layout
    that is not one, as hand-edited metadata may hold, as its JSON: inspect reads, it never refuses)."""
    if key == "tt-deploy.token_layout":
        try:
            return _layout(value)
        except (KeyError, TypeError):
            return json.dumps(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "{}"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return "null" if value is None else str(value)


def _number(v) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def _joint_table(contract: dict) -> Table | None:
    """One row per joint: the per-joint contract values (kp, kd, default pose, action offset and scale)."""
    from tt_deploy.runtime.graph_contract import PER_JOINT_KEYS

    names = contract.get("tt-deploy.joint_names")
    if not isinstance(names, list):
        return None
    cols = [k for k in PER_JOINT_KEYS if isinstance(contract.get(k), list) and len(contract[k]) == len(names)]
    table = Table(title=f"per joint ({len(names)} joints, action order)")
    for c in ("joint", *(k.removeprefix("tt-deploy.") for k in cols)):
        table.add_column(c, justify="left" if c == "joint" else "right")
    for i, name in enumerate(names):
        table.add_row(str(name), *(_number(contract[k][i]) for k in cols))
    return table


def _print_metadata(info: dict) -> None:
    """The identity keys (and any others) as stamped; the contract decoded, per-joint values as a joint table."""
    from tt_deploy.runtime.graph_contract import CONTRACT_KEYS, PER_JOINT_KEYS, SKILL_KEY, carries_contract

    if not info["metadata"]:
        console.print("no metadata_props: not a tt-deploy graph (or stripped)")
        return
    meta = Table(title="metadata_props")
    meta.add_column("key")
    meta.add_column("value", overflow="fold")
    for k, v in info["metadata"].items():
        if k not in CONTRACT_KEYS or k == SKILL_KEY:
            meta.add_row(k, v)
    console.print(meta)
    contract = info["contract"]
    if not carries_contract(info["metadata"]):
        console.print("no contract metadata: exported before tt-deploy stamped it; re-export the bundle")
        return
    joints = _joint_table(contract)
    table = Table(title="contract (graph_contract.py; `ttdeploy verify` checks it against the manifest)")
    table.add_column("key")
    table.add_column("value", overflow="fold")
    for k, v in contract.items():
        if k != SKILL_KEY and not (joints is not None and k in (*PER_JOINT_KEYS, "tt-deploy.joint_names")):
            table.add_row(k, _short(k, v))
    console.print(table)
    if joints is not None:
        console.print(joints)


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
    _print_metadata(info)
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(info, indent=2) + "\n")
