"""`ttdeploy sequence`: chains of a bundle's skills switched by a small state machine, beside each skill alone
(thin shell over tt_deploy.sequence.run_sequence; torch-free: the runtime and MuJoCo)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tt_deploy.cli import app
from tt_deploy.cli._output import console, print_table, write_json


def _pct(r: dict | None) -> str:
    if r is None:
        return "-"
    lo, hi = r["ci95"]
    return f"{100 * r['rate']:.0f} % ({r['k']}/{r['n']}; {100 * lo:.0f}-{100 * hi:.0f})"


@app.command("sequence")
def sequence_cmd(
    chain: Annotated[str, typer.Option(help="Stages `skill[:goal]`, comma-separated (goal `pillar`: direction / "
                                            "steering walk to the strike pillar), or a preset: "
                                            "reach-reach-direction, pillar-strike.")] = "reach-reach-direction",
    stage_seconds: Annotated[str | None, typer.Option(help="Seconds per stage, comma-separated (one value: every "
                                                           "stage); default: the preset's, else one reference goal "
                                                           "segment per skill (reach 3.5, direction / steering 6.6, "
                                                           "strike 10; pillar stages 10 at most).")] = None,
    bundle: Annotated[Path, typer.Option(help="Bundle directory.")] = Path("deploy"),
    episodes: Annotated[int, typer.Option(min=1, help="Episodes of the chain, and of each stage alone.")] = 32,
    seed: Annotated[int, typer.Option(help="Seed of the goals.")] = 0,
    near: Annotated[float, typer.Option(help="Pillar stages switch once the pelvis is this close (m, xy) to the "
                                             "pillar.")] = 1.0,
    backend: Annotated[str, typer.Option(help="Runtime backend: auto, ort-cpu, ort-cuda, ort-trt, trt.")] = "auto",
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the result as JSON.")] = None,
) -> None:
    """Run a chain of skills (each stage: its goal from the current state, held; runtime.switch between) and each
    stage alone from a fresh reset: success per stage, chain vs product of singles, falls within 1 s of a switch,
    switch-tick latency."""
    from tt_deploy.sequence import run_sequence

    with console.status("sequence: starting") as status:
        def progress(done: int, total: int) -> None:
            status.update(f"sequence: {done}/{total} episodes (chain first, then each stage alone)")

        doc = run_sequence(bundle, chain, stage_seconds, episodes=episodes, seed=seed, near_m=near, backend=backend,
                           progress=progress)  # fmt: skip
    rows = [{"stage": f"{s['index']}: {s['stage']}", "s": s["seconds"], "rule": s["rule"], "started": s["started"],
             "success (chain)": _pct(s["success"]), "success (alone)": _pct(s["single"]["success"]),
             "stride rule (chain / alone)": "-" if "stride_success" not in s else
             f"{100 * s['stride_success']['rate']:.0f} / {100 * s['single']['stride_success']['rate']:.0f} %",
             "falls (chain / alone)": f"{s['falls']} / {s['single']['falls']['k']}"} for s in doc["stages"]]
    print_table(f"sequence {' -> '.join(doc['chain'])} ({doc['episodes']} episodes, {doc['backend']})", rows)
    if doc["switches"]:
        print_table("switches: falls within 1 s after the switch",
                    [{"switch": f"{w['from']} -> {w['to']}", "falls within 1 s": _pct(w["falls_within_1s"]),
                      "incoming skill alone: falls": f"{100 * w['incoming_single_fall_rate']:.0f} %"}
                     for w in doc["switches"]])  # fmt: skip
    lat = doc["latency_us"]
    print_table("controller tick, us (no physics)",
                [{"ticks": name, "n": lat[key]["n"], **{k: lat[key].get(f"{k}_us", float("nan"))
                                                        for k in ("p50", "p99", "max")}}
                 for name, key in (("skill switch", "switch_ticks"), ("other", "other_ticks"),
                                   ("act_into alone, skill switch", "act_into_switch_ticks"),
                                   ("act_into alone, other", "act_into_other_ticks"),
                                   ("runtime.switch() alone", "runtime_switch"),
                                   ("goal reset at a stage start", "command_reset"))])  # fmt: skip
    line = (f"chain success {_pct(doc['chain_success'])} vs product of singles {100 * doc['product_of_singles']:.0f} %")
    if "chain_success_stride" in doc:
        line += (f"; stride rule: {_pct(doc['chain_success_stride'])} vs "
                 f"{100 * doc['product_of_singles_stride']:.0f} %")
    console.print(line)
    f = doc["falls"]
    if "within_1s_of_switch" in f:
        verdict = "[green]met[/]" if f["target_met"] else "[bold red]missed[/]"
        console.print(f"falls within 1 s of a switch {_pct(f['within_1s_of_switch'])} vs single-skill fall rate "
                      f"{100 * f['single_fall_rate']:.0f} % (target: <= +5 points: {verdict}); "
                      f"{doc['wall_s']:.0f} s")  # fmt: skip
    write_json(json_path, doc)
    if json_path is not None:
        console.print(f"wrote {json_path}")
