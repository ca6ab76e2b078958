"""`ttdeploy verify`: open-loop parity of a bundle vs its PyTorch reference (thin shell over export.verify, or,
with no torch, over runtime.parity's recorded references)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tt_deploy.cli import app

console = Console(width=None if sys.stdout.isatty() else 160)  # piped (CI, logs): no truncation


@app.command("verify")
def verify_cmd(
    bundle: Annotated[Path, typer.Option(help="Bundle directory to verify.")] = Path("deploy"),
    skill: Annotated[
        list[str] | None, typer.Option("--skill", help="Skill to verify; repeat for several (default: all).")
    ] = None,
    backend: Annotated[
        str, typer.Option(help="Runtime backend: auto | ort-cpu | ort-cuda | ort-trt.")
    ] = "auto",
    atol: Annotated[float, typer.Option(help="Max abs error allowed on the actions (fp32: 1e-5).")] = 1e-5,
    random: Annotated[int, typer.Option(help="Random-mask samples per skill.")] = 64,
    rollout_steps: Annotated[
        int, typer.Option(help="Steps of the recorded MuJoCo rollout (8 envs); 0 = skip.")
    ] = 60,
    seed: Annotated[int, typer.Option(help="Seed of the random inputs and the rollout.")] = 0,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the full report as JSON.")
    ] = None,
    record: Annotated[bool, typer.Option(help="Write each skill's verdict into its skill.json (one new bundle "
                                              "version), only when every checked skill passes.")] = False,
    reference: Annotated[str, typer.Option(help="torch: rebuild the PyTorch reference from the bundle's sources; "
                                                "recorded: the reference actions export recorded in the bundle "
                                                "(no torch needed; --random, --rollout-steps and --seed do not "
                                                "apply); auto: torch where it is installed.")] = "auto",
) -> None:
    """Compare the runtime (fused + split, batch-1 + batch graphs) with the PyTorch reference; exit 1 above atol.
    Reads the bundle only, unless --record."""
    import importlib.util

    from tt_deploy.cli.train import _progress
    from tt_deploy.errors import InputError, UnknownNameError
    from tt_deploy.runtime.parity import VERIFY_TIERS

    if reference not in ("auto", "torch", "recorded"):
        raise UnknownNameError("reference", reference, ("auto", "torch", "recorded"))
    if reference == "auto":
        reference = "torch" if importlib.util.find_spec("torch") is not None else "recorded"
    if reference == "recorded" and record:
        raise InputError("--record needs the torch reference: a recorded reference checks this runtime, but a "
                         "verdict must come from the bundle's sources (install tt-deploy[train])")  # fmt: skip
    with _progress(1, stats=lambda r: r["label"], unit="skills", key="done") as update:
        def tick(done, total, name):
            update({"done": done, "total": total, "label": f"{name} verified"})

        if reference == "recorded":
            from tt_deploy.runtime.parity import verify_recorded

            report = verify_recorded(bundle, skill or None, backend=backend, atol=atol, progress=tick)
        else:
            from tt_deploy.export.verify import VerifyCases, verify_bundle  # torch import happens here

            cases = VerifyCases(random=random, rollout_steps=rollout_steps)
            report = verify_bundle(bundle, skill or None, backend=backend, cases=cases, seed=seed, atol=atol,
                                   record=record, progress=tick)  # fmt: skip
    table = Table(title=f"parity {bundle} against the {report.reference} reference (worst case per graph; fp32: max abs <= {atol:.0e}, int8: p99 abs <= "
                        f"{VERIFY_TIERS['int8'][1]:.0e})")
    for col in ("skill", "mode", "graphs", "precision", "worst case", "samples", "max abs", "p99 abs", "max rel", "ok"):
        table.add_column(col)
    for r in report.worst():
        n = sum(x.n for x in report.rows if (x.skill, x.mode, x.graphs, x.precision) == (r.skill, r.mode, r.graphs,
                                                                                          r.precision))
        ok = "[bold red]FAIL[/]" if not r.passed else "[green]pass[/]" if r.gated else "not gated"
        table.add_row(
            r.skill,
            r.mode,
            r.graphs.replace(f"skills/{r.skill}/", ""),
            r.precision,
            r.case,
            str(n),
            f"{r.max_abs:.2e}",
            f"{r.p99_abs:.2e}",
            f"{r.max_rel:.2e}",
            ok,
        )
    console.print(table)
    for note in report.notes:
        console.print(f"[yellow]note[/]: {escape(note)}")
    if json_path is not None:
        json_path.write_text(json.dumps(report.to_dict(), indent=1))
    if not report.passed:
        console.print("[bold red]parity FAILED[/]: an error above its precision's tier (the table's FAIL rows)"
                      + ("; nothing recorded" if record else ""))
        raise typer.Exit(1)
    console.print("[green]parity ok[/]" + (" (recorded in each skill.json)" if record else " (not recorded: --record)"))
