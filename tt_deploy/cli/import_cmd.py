"""`ttdeploy import-bfm`: bring a ProtoMotions v1 checkpoint in as our BFM (+ its Task Tokens skill).

Thin shell over models.protomotions.import_to_dir; prints what was mapped and what to run next.
The version is detected first: a v3 run (models.protomotions_v3) is read, checked and summarised, and
with --out written as ONNX graphs with the original input names (export/v3_graph.py); task tokens on a
v3 BFM are a later slice, so asking for one (--skill) fails in one line.
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
        Path,
        typer.Argument(
            help="The checkpoint (v1: last.ckpt with an 'actor' state dict; v3: the run dir or its last.ckpt)."
        ),
    ],
    source: Annotated[
        Source, typer.Option("--from", help="Where the checkpoint comes from.")
    ] = Source.protomotions,
    config: Annotated[
        Path | None,
        typer.Option(
            help="v1: the run's Hydra config.yaml (num_heads, obs clamp, activation, task name); "
            "v3: resolved_configs.yaml (default: the one beside the checkpoint; a .pt is never read)."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output dir. v1: bfm.safetensors + runs/<skill>/ (default: imported); "
                                       "v3: protomotions_v3{,.batch}.onnx + protomotions_v3.json (default: none, "
                                       "read and check only).")
    ] = None,
    skill: Annotated[
        str | None,
        typer.Option(help="Skill name of the Task Tokens encoder (default: from config.yaml / its width)."),
    ] = None,
) -> None:
    """Import a ProtoMotions v1 MaskedMimic / Task Tokens checkpoint, or a v3 MaskedMimic as ONNX graphs with the
    original input names (nothing pickled runs)."""
    from tt_deploy.errors import CheckpointError
    from tt_deploy.models.protomotions import import_to_dir  # torch import happens here
    from tt_deploy.models.protomotions_v3 import detect_version

    version, ckpt = detect_version(ckpt)
    if version == "v2":
        raise CheckpointError(f"{ckpt} is a ProtoMotions v2 checkpoint: v2 not supported yet")
    if version == "v3":
        if skill is not None:
            raise CheckpointError(f"{ckpt} is a ProtoMotions v3 checkpoint, which carries no Task Tokens encoder "
                                  "(--skill); task tokens on a v3 BFM are not supported yet")  # fmt: skip
        _print_v3(ckpt, config, out)
        return
    res = import_to_dir(ckpt, out or Path("imported"), config, skill=skill)
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


def _print_v3(ckpt: Path, config: Path | None, out: Path | None) -> None:
    if out is None:
        from tt_deploy.models.protomotions_v3 import load_v3

        _, s = load_v3(ckpt, config)
    else:
        from tt_deploy.export.v3_graph import export_v3_dir

        s = export_v3_dir(ckpt, out, config)
    table = Table(
        title=f"ProtoMotions v3 MaskedMimic: {ckpt} (config {Path(s['config']).name}, {s['loader']})"
    )
    table.add_column("what")
    table.add_column("value")
    table.add_column("from")
    table.add_row("transformer", f"d={s['d_model']} layers={s['num_layers']} heads={s['num_heads']} ff={s['ff_size']}",
                  "config (heads: config only), checked against the tensors")  # fmt: skip
    tokens = " + ".join(
        f"{g['tokens']} {g['token']}" + (f" (padded by {g['key_padding']})" if g["key_padding"] else "")
        for g in s["token_groups"]
    )
    table.add_row("tokens", f"{s['num_tokens']}: {tokens}", "config (in_keys order, reshapes)")
    table.add_row("latent", f"z={s['latent_dim']} (vae_noise {s['vae_noise_type']})", "config + tensors")
    table.add_row("MLPs", "; ".join(f"{k} {v}" for k, v in s["mlp_hidden"].items()), "config + tensors")
    table.add_row("inputs", ", ".join(f"{k} {n}" for k, n in s["inputs"].items()), "tensor shapes")
    table.add_row(
        "action", f"{s['action_dim']} raw (env applies {s['action_transform']})", "tensors / env config"
    )
    table.add_row(
        "parameters", f"{s['parameters']:,} ({s['parameters_inference']:,} prior + trunk)", "tensors"
    )
    for name, what in s["skipped_entries"].items():
        table.add_row("skipped", name, f"holds {what}; not executed")
    console.print(table)
    if out is None:
        console.print("read and checked only; --out DIR writes it as ONNX graphs with the original input names",
                      soft_wrap=True)  # fmt: skip
        return
    for batch, g in s["graphs"].items():
        console.print(f"wrote {out / g['path']} ({batch} batch, ONNX Runtime vs PyTorch {g['export_parity_max_abs']:.1e}, "
                      f"sha256 {g['sha256'][:12]}...)", soft_wrap=True)  # fmt: skip
    console.print(f"wrote {out / 'protomotions_v3.json'} (what was read, the graphs' inputs, the state to carry)",
                  soft_wrap=True)  # fmt: skip
    console.print("next: tt_deploy.runtime.v3_rollout.V3Rollout(graph, num_envs).step(obs) carries previous_actions "
                  "and vae_noise", soft_wrap=True)  # fmt: skip
