"""`ttdeploy import-bfm`: bring a ProtoMotions v1 checkpoint in as our BFM (+ its Task Tokens skill).

Thin shell over models.protomotions.import_to_dir; prints what was mapped and what to run next.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tt_deploy.cli import app

console = Console()


class Source(str, Enum):
    protomotions = "protomotions"


@app.command("import-bfm")
def import_bfm_cmd(
    ckpt: Annotated[
        Path, typer.Argument(help="The v1 checkpoint (last.ckpt: a torch file with an 'actor' state dict).")
    ],
    source: Annotated[
        Source, typer.Option("--from", help="Where the checkpoint comes from.")
    ] = Source.protomotions,
    config: Annotated[
        Path | None,
        typer.Option(help="The run's Hydra config.yaml (num_heads, obs clamp, activation, task name)."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Output dir: bfm.safetensors + runs/<skill>/.")] = Path(
        "imported"
    ),
    skill: Annotated[
        str | None,
        typer.Option(help="Skill name of the Task Tokens encoder (default: from config.yaml / its width)."),
    ] = None,
) -> None:
    """Import a ProtoMotions v1 MaskedMimic / Task Tokens checkpoint (loaded with weights_only=True)."""
    from tt_deploy.models.protomotions import import_to_dir  # torch import happens here

    res = import_to_dir(ckpt, out, config, skill=skill)
    c, meta = res["config"], res["meta"]
    table = Table(title=f"imported {ckpt} ({source.value}, sha256 {meta['source_sha256'][:12]}...)")
    table.add_column("part")
    table.add_column("v1 keys")
    table.add_column("ours")
    table.add_row(
        "BFM", f"{meta['mapped_keys']} mapped", f"{res['bfm_path']} (sha256 {res['bfm_sha256'][:12]}...)"
    )
    table.add_row(
        "sizes", "from tensor shapes",
        f"d={c['d_model']} layers={c['num_layers']} heads={c['num_heads']} ({meta['num_heads_from']}) "
        f"ff={c['ff_dim']} tokens {list(c['token_hidden'])} z={c['latent_dim']} decoder {list(c['decoder_hidden'])} "
        f"clamp={c['norm_clamp']}",
    )  # fmt: skip
    for prefix, n in meta["ignored_keys"].items():
        table.add_row("ignored", f"{prefix}* ({n})", "not deployable (training only)")
    for name, info in res["skills"].items():
        dims = " + ".join(f"{f['dims']} {f['name']}" for f in info["task_obs_spec"])
        table.add_row(f"skill {name}", info["v1_key"] + ".*", f"{info['run_dir']} (task obs {dims})")
    console.print(table)
    console.print("next:")
    for name, info in res["skills"].items():
        console.print(
            f"  ttdeploy export --skill {name} --bfm {res['bfm_path']} --run {info['run_dir']}",
            soft_wrap=True,
        )
    if not res["skills"]:
        console.print(
            f"  ttdeploy train --skill reach --bfm {res['bfm_path']}   (no Task Tokens encoder in the checkpoint)",
            soft_wrap=True,
        )
