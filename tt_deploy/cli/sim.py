"""`ttdeploy sim info` / `ttdeploy sim bench`: the humanoid model and simulator throughput."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tt_deploy.cli import app
from tt_deploy.cli._output import console, print_table, write_json
from tt_deploy.errors import InputError

sim_app = typer.Typer(help="Simulator: model summary and throughput.", no_args_is_help=True)
app.add_typer(sim_app, name="sim")

JsonOpt = Annotated[Path | None, typer.Option("--json", help="Also write the result as JSON to this path.")]
MjcfOpt = Annotated[Path | None, typer.Option(help="MJCF with the SMPL body/joint names; default: ours.")]


@sim_app.command("info")
def info_cmd(mjcf: MjcfOpt = None, json_path: JsonOpt = None) -> None:
    """Bodies, DoF, masses, PD gains, timestep and integrator of the humanoid model."""
    from tt_deploy.sim.tools import sim_info

    info = sim_info(mjcf)
    scalars = {k: v for k, v in info.items() if not isinstance(v, (list, dict))}
    print_table("humanoid model", [{"field": k, "value": v} for k, v in scalars.items()])
    for k, v in info.items():
        if isinstance(v, dict) and v and not isinstance(next(iter(v.values())), (list, dict)):
            print_table(k, [{"name": a, "value": b} for a, b in v.items()])
    write_json(json_path, info)


@sim_app.command("bench")
def bench_cmd(
    num_envs: Annotated[list[int], typer.Option("--num-envs", help="Batch sizes to time.")] = [64, 256],  # noqa: B006
    threads: Annotated[list[int], typer.Option("--threads", help="mujoco.batch thread counts.")] = [1, 2],  # noqa: B006
    seconds: Annotated[float, typer.Option(help="Timed seconds per cell.")] = 3.0,
    sim: Annotated[list[str], typer.Option("--sim", help="Simulators to time: mujoco (MuJoCo C, per --threads) and/or "
                                                         "mjwarp (MuJoCo Warp, extra [mjwarp]).")] = ["mujoco"],  # noqa: B006
    device: Annotated[str, typer.Option(help="MuJoCo Warp's device: cpu, cuda:0.")] = "cpu",
    mjcf: MjcfOpt = None,
    json_path: JsonOpt = None,
) -> None:
    """30 Hz control steps per second with a zero policy: physics only, + state, + observations."""
    from tt_deploy.sim.tools import sim_bench

    unknown = [s for s in sim if s not in ("mujoco", "mjwarp")]
    if unknown:
        raise InputError(f"--sim {unknown[0]}: sim bench times mujoco and mjwarp")
    rows = sim_bench(num_envs=tuple(num_envs), threads=tuple(threads), seconds=seconds, mjcf=mjcf, sims=tuple(sim), device=device)
    print_table("simulator throughput (control steps/s, 30 Hz)", rows)
    console.print("obs overhead = 1 - (steps/s with observations) / (physics-only steps/s); "
                  "world steps = physics x substeps")
    write_json(json_path, rows)


@sim_app.command("equivalence")
def equivalence_cmd(
    envs: Annotated[int, typer.Option(help="Environments per action stream.")] = 8,
    seconds: Annotated[list[float], typer.Option("--seconds", help="Horizons to report (s).")] = [1.0, 3.0],  # noqa: B006
    seed: Annotated[int, typer.Option(help="Seed of the recorded walk (its goals).")] = 0,
    device: Annotated[str, typer.Option(help="MuJoCo Warp device: cpu, cuda:0.")] = "cpu",
    json_path: JsonOpt = None,
) -> None:
    """MuJoCo C vs MuJoCo Warp open loop from identical states: zero actions and a recorded walk (shipped direction
    skill), beside MuJoCo C vs itself nudged 1 um (how fast nearby states part at all)."""
    from tt_deploy.sim2sim.engines import open_loop_equivalence

    if envs < 1 or not seconds or min(seconds) <= 0:
        raise InputError(f"--envs must be >= 1 and --seconds > 0; got {envs}, {seconds}")
    rows = open_loop_equivalence(envs=envs, seconds=tuple(seconds), seed=seed, device=device,
                                 progress=lambda stream: console.print(f"{stream} actions replayed"))  # fmt: skip
    print_table("open-loop position error from identical states (m; contacts: mean per env, side a / side b)", rows)
    write_json(json_path, rows)
