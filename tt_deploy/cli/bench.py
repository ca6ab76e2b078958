"""`ttdeploy bench`: latency of a bundle vs the PyTorch reference (thin shell over bench.latency)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tt_deploy.cli import app

console = Console(width=None if sys.stdout.isatty() else 160)  # piped (CI, logs): no truncation


def _latency_table(rows: list[dict], rate: float, machine: dict) -> Table:
    budget = rows[0]["budget_us"] if rows else 0.0
    llc = machine.get("llc_bytes")
    table = Table(
        title=f"latency, us (misses: > period {1e6 / rate:.0f} us / > inference budget {budget:.0f} us); floor = max of "
        f"compute (FLOPs / {machine['matmul_flops_per_s'] / 1e9:.0f} GFLOP/s GEMM), bandwidth (weights / "
        f"{machine['bytes_per_s'] / 1e9:.1f} GB/s, only beyond the {llc / 2**20 if llc else float('nan'):.0f} MB cache), "
        f"dispatch (nodes x {machine.get('dispatch_ns_per_node', float('nan')):.0f} ns)"
    )
    cols = ("what", "batch", "p50", "p99", "max", "p99-p50", "miss period", "miss budget", "weights MB", "MFLOP",
            "nodes", "floor c / b / d", "floor (binds)", "p50 / floor")  # fmt: skip (p90, std, calls/s: --json)
    for c in cols:
        table.add_column(c, justify="left" if c == "what" else "right", overflow="fold")  # never cut a row's name
    for r in rows:
        what = r["name"] + (f" ({r['ratio_to_fp32_fused']:.2f}x fp32, gate {r['closed_loop_gate']})"
                             if "ratio_to_fp32_fused" in r else "")  # fmt: skip
        terms = " / ".join(f"{r[f'floor_{k}_us']:.0f}" for k in ("compute", "bandwidth", "dispatch"))
        over = "[red]invalid: p50 < floor[/]" if not r["floor_valid"] else (
            "-" if r["over_floor"] is None else f"{r['over_floor']:.1f}x")
        table.add_row(
            what, str(r["batch"]), *(f"{r[k]:.0f}" for k in ("p50_us", "p99_us", "max_us")),
            f"{r['jitter_p99_p50_us']:.0f}", str(r["misses_period"]), str(r["misses_budget"]),
            f"{r['weight_bytes'] / 1e6:.2f}",
            "-" if r.get("flops") is None else f"{r['flops'] / 1e6:.1f}",
            "-" if r.get("executed_nodes") is None else str(r["executed_nodes"]), terms,
            f"{r['floor_us']:.0f} ({r['floor_binds']})", over,
        )  # fmt: skip
    return table


@app.command("bench")
def bench_cmd(
    bundle: Annotated[Path, typer.Option(help="Bundle directory to benchmark.")] = Path("deploy"),
    skill: Annotated[str | None, typer.Option(help="Skill to time (default: the bundle's first).")] = None,
    batch: Annotated[
        list[int] | None, typer.Option("--batch", help="Batch size; repeat (default 1 and 64).")
    ] = None,
    calls: Annotated[int, typer.Option(help="Timed calls per row at most (after warm-up).")] = 1000,
    row_seconds: Annotated[float, typer.Option(help="Wall-time cap of one latency row (at least 20 calls are "
                                                    "timed); 0 = always exactly --calls.")] = 10.0,
    warmup: Annotated[int, typer.Option(help="Untimed warm-up calls per row.")] = 100,
    rate: Annotated[float, typer.Option(help="Control rate in Hz (deadline = 1/rate).")] = 30.0,
    threads: Annotated[int, typer.Option(min=0, help="Intra-op threads for ONNX Runtime and torch; 0 = the runtime's "
                                                 "default (ONNX Runtime: calibrated per static graph at load; torch: "
                                                 "1).")] = 1,
    backend: Annotated[str, typer.Option(help="Runtime backend: auto, ort-cpu, ort-cuda, ort-trt, trt.")] = "auto",
    spin: Annotated[bool, typer.Option(help="Let ONNX Runtime's worker threads spin between ops: for cores "
                                            "the controller owns (faster), not shared ones (worse p99).")] = False,
    memory: Annotated[bool, typer.Option(help="Measure RSS per extra resident skill (subprocesses).")] = True,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write every row as JSON.")] = None,
    breakdown: Annotated[bool, typer.Option("--breakdown", help="Also time each stage of the batch-1 runtime-fused "
                                            "act_into (validation, copy-in, run, copy-out); JSON: the row's "
                                            "'breakdown'.")] = False,
) -> None:
    """Time torch eager vs the full graph vs the fused graph; deadline misses, the floor (compute, bandwidth,
    dispatch: which binds), switch, RSS."""
    from tt_deploy.bench.latency import BREAKDOWN_STAGES, bench_bundle, bench_steps
    from tt_deploy.cli.train import _progress
    from tt_deploy.errors import InputError

    if row_seconds < 0:
        raise InputError(f"--row-seconds must be >= 0; got {row_seconds}")
    batches = tuple(batch or (1, 64))
    done = [0]
    with _progress(bench_steps(bundle, skill, batches, memory, backend), stats=lambda r: r["label"], unit="bench rows",
                   key="done") as update:  # fmt: skip
        def tick(label: str) -> None:
            done[0] += 1
            update({"done": done[0], "label": label})

        rows = bench_bundle(bundle, skill, batches=batches, calls=calls, warmup=warmup, rate_hz=rate,
                            json_path=json_path, threads=threads, memory=memory, backend=backend, spin=spin,
                            budget_s=row_seconds or None, progress=tick, breakdown=breakdown)  # fmt: skip
    by = {k: [r for r in rows if r["kind"] == k] for k in ("bandwidth", "latency", "switch", "memory")}
    bw = by["bandwidth"][0]
    console.print(_latency_table(by["latency"], rate, bw))
    for r in by["latency"]:
        if "breakdown" in r:
            b = r["breakdown"]
            console.print(f"act_into stages ({r['name']}, batch {r['batch']}, p50 of {b['calls']} interleaved rounds): "
                          + ", ".join(f"{k.replace('_', '-')} {b[f'{k}_us']:.1f} us" for k in BREAKDOWN_STAGES)
                          + f"; whole call {b['act_into_us']:.1f} us (rest {b['rest_us']:.1f} us: out checks, thread "
                          "guard, plan lookup)")  # fmt: skip
    for r in by["latency"]:
        if r.get("intra_op_threads") and r["batch"] == 1:
            console.print(f"{r['name']} threads: " + ", ".join(f"{g} {n}" for g, n in r["intra_op_threads"].items()))
    for r in by["switch"]:
        console.print(f"switch() {r['skills']}: p50 {r['p50_us']:.2f} us, p99 {r['p99_us']:.2f} us")
    if by["memory"]:
        mem = Table(title="resident memory (fresh process per row)")
        for c in ("resident skills", "RSS MB", "+ this skill MB"):
            mem.add_column(c, justify="right" if c != "resident skills" else "left")
        for r in by["memory"]:
            mem.add_row(r["name"], f"{r['rss_bytes'] / 1e6:.1f}", f"{r['delta_bytes'] / 1e6:.1f}")
        console.print(mem)
    load = ", ".join(f"{x:.1f}" for x in bw["load_avg"])
    console.print(f"{bw['cpus']} CPUs, load average {load} (timings on a loaded machine are noisy: read p50)")
