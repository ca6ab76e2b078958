"""`ttdeploy pretrain`, `pretrain-dagger`, `evaluate-bfm`: how the embedded BFM was made and measured (the lab).

Thin shells over tt_deploy.pretrain; nothing on the deploy path imports them.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from tt_deploy.cli import app
from tt_deploy.cli._output import console, print_table, write_json
from tt_deploy.cli.train import JsonOpt, _logging, _progress
from tt_deploy.errors import InputError
from tt_deploy.hashing import portable_path


def _floats(option: str, text: str | None, n: int, form: str = "") -> tuple[float, ...] | None:
    """'a,b,c' -> (a, b, c), n non-negative numbers, or a typed error naming the option (and `form`)."""
    if text is None:
        return None
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        values = ()
    if len(values) != n or any(v < 0 for v in values):
        raise InputError(f"{option} {text!r}: expected {form or f'{n} comma-separated numbers >= 0'}")
    return values


@app.command("pretrain")
def pretrain_cmd(
    config: Annotated[str, typer.Option(help="BFM configuration (small is the CPU one).")] = "small",
    steps: Annotated[int, typer.Option(help="Total environment steps.")] = 20_000_000,
    num_envs: Annotated[int, typer.Option(help="Parallel environments.")] = 256,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    out: Annotated[Path, typer.Option(help="Run directory.")] = Path("runs/pretrain"),
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoints/last_state.pt.")] = False,
    init_bfm: Annotated[Path | None, typer.Option(help="Warm-start from this BFM checkpoint (fresh critic and "
                                                       "optimiser), e.g. the embedded one.")] = None,
    teacher_coef: Annotated[float | None, typer.Option(help="Weight of the IK reach teacher's behaviour-cloning "
                                                             "loss (0 = PPO only; default 50).")] = None,
    gait_weight: Annotated[float | None, typer.Option(help="Per-hinge weight of the walking controller's "
                                                           "behaviour cloning in walk prompts (0 = none; "
                                                           "default 0.1; needs --teacher-coef > 0).")] = None,
    gait_drive: Annotated[float | None, typer.Option(help="Share of walk prompts the walking controller walks "
                                                          "itself (cloned on its own states; default 1).")] = None,
    mode_probs: Annotated[str | None, typer.Option(help="Prompt mix IDLE,REACH,WALK (default 0.3,0.35,0.35); "
                                                        "1,0,0 trains a standing / push specialist.")] = None,
    push_interval: Annotated[float | None, typer.Option(help="Mean seconds between random pushes (0 = none; "
                                                             "default 3).")] = None,
    push_speed: Annotated[str | None, typer.Option(help="Push speeds LOW,HIGH in m/s (default 0.2,0.8).")] = None,
    friction: Annotated[str | None, typer.Option(help="Ground friction multipliers LOW,HIGH, one per env, "
                                                      "log-spaced (default 1,1).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every iteration.")] = False,
) -> None:
    """Pretrain a BFM on random prompts (idle / reach / walk); resumable, checkpoints every 10 iterations."""
    from tt_deploy.pretrain.ppo_stage import PretrainConfig, pretrain, with_overrides

    _logging(verbose)
    cfg = with_overrides(PretrainConfig(), config=config, steps=steps, num_envs=num_envs, seed=seed,
                         teacher_coef=teacher_coef, gait_weight=gait_weight, gait_drive=gait_drive,
                         friction=_floats("--friction", friction, 2))
    cur = {"mode_probs": _floats("--mode-probs", mode_probs, 3), "push_interval_s": push_interval,
           "push_speed": _floats("--push-speed", push_speed, 2)}  # fmt: skip
    cfg = replace(cfg, curriculum=replace(cfg.curriculum, **{k: v for k, v in cur.items() if v is not None}))
    with _progress(steps) as progress:
        result = pretrain(cfg, out, resume=resume, init_bfm=init_bfm, progress=progress)
    console.print(f"BFM checkpoint: {out / 'checkpoints' / 'last.safetensors'}  ({result['env_steps']:,} env steps)")


@app.command("pretrain-dagger")
def pretrain_dagger_cmd(
    init_bfm: Annotated[Path | None, typer.Option(help="The BFM to distil into (and the anchor of idle/reach "
                                                       "labels); default: the embedded one. Repeat it on --resume.")] = None,
    out: Annotated[Path, typer.Option(help="Run directory.")] = Path("runs/dagger"),
    rounds: Annotated[int | None, typer.Option(min=1, help="Total DAgger rounds, resumed ones included; default 60.")] = None,
    num_envs: Annotated[int | None, typer.Option(min=1, help="Parallel environments; default 128.")] = None,
    beta: Annotated[str | None, typer.Option(help="Controller share of walk actions: START,DECAY,FLOOR "
                                                  "(a round); default 0.8,0.93,0.")] = None,
    idle_bfm: Annotated[Path | None, typer.Option(help="Label idle prompts with this BFM (e.g. a push-recovery "
                                                       "specialist) instead of --init-bfm. Repeat it on --resume.")] = None,
    walk_labels: Annotated[str | None, typer.Option(help="Who labels walk prompts: controller (default), anchor "
                                                         "(the --init-bfm's own walk, e.g. beside --idle-bfm) or "
                                                         "glide (--glide-expert).")] = None,
    glide_expert: Annotated[Path | None, typer.Option(help="A glide expert's policy file (pretrain-expert glide: "
                                                           "checkpoints/last_policy.safetensors) for --walk-labels "
                                                           "glide. Repeat it on --resume.")] = None,
    walk_speed: Annotated[str | None, typer.Option(help="Walk prompt speeds LOW,HIGH in m/s (default 0.3,1.2).")] = None,
    reach_labels: Annotated[str | None, typer.Option(help="Who labels reach prompts: anchor (default: the --init-bfm) "
                                                          "or ik (the anchor, the prompted arm from the IK "
                                                          "teacher).")] = None,
    mode_probs: Annotated[str | None, typer.Option(help="Prompt mix IDLE,REACH,WALK (default 0.25,0.25,0.5).")] = None,
    reach_task_share: Annotated[float | None, typer.Option(help="Share of reach goals drawn like the reach task's "
                                                                "targets (right hand, root xy +-0.75 m, 0.05-1.6 m "
                                                                "high); default 0.")] = None,
    friction: Annotated[str | None, typer.Option(help="Ground friction multipliers LOW,HIGH, one per env, "
                                                      "log-spaced (default 1,1).")] = None,
    push_interval: Annotated[float | None, typer.Option(help="Mean seconds between random kicks in idle and reach "
                                                             "prompts (default 3; 0 = none).")] = None,
    push_speed: Annotated[str | None, typer.Option(help="Kick speeds LOW,HIGH in m/s (default 0.2,0.8).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoints/last_state.pt (empty buffer).")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every round.")] = False,
) -> None:
    """Distil the walking controller into a BFM with DAgger (the BFM walks, the controller labels;
    idle and reach prompts keep the starting BFM's actions); resumable, checkpoints every round.
    Needs ~4.2 GB of RAM for its sample buffer."""
    from tt_deploy.models.checkpoints import DEFAULT_BFM_PATH
    from tt_deploy.pretrain.dagger import DaggerConfig, dagger

    _logging(verbose)
    given = {"rounds": rounds, "num_envs": num_envs, "walk_labels": walk_labels,
             "reach_labels": reach_labels, "beta": _floats("--beta", beta, 3, form="three numbers START,DECAY,FLOOR"),
             "friction": _floats("--friction", friction, 2)}
    cfg = DaggerConfig(seed=seed, **{k: v for k, v in given.items() if v is not None})
    cur = {"reach_task_share": reach_task_share, "mode_probs": _floats("--mode-probs", mode_probs, 3),
           "walk_speed": _floats("--walk-speed", walk_speed, 2), "push_interval_s": push_interval,
           "push_speed": _floats("--push-speed", push_speed, 2)}
    cfg = replace(cfg, curriculum=replace(cfg.curriculum, **{k: v for k, v in cur.items() if v is not None}))

    def stats(row: dict) -> str:
        if "beta" not in row:  # the starting row of a resumed run
            return ""
        return (f"beta {row['beta']:.2f}  walks: falls/10 s {row['walk_falls_per_10s']:.2f}  "
                f"speed {row['walk_speed']:+.2f} m/s  loss {row['train_loss']:.3f}")  # fmt: skip

    with _progress(cfg.rounds, stats=stats, unit="rounds", key="iteration") as progress:
        result = dagger(cfg, init_bfm or DEFAULT_BFM_PATH, out, resume=resume, progress=progress, idle_bfm=idle_bfm,
                        glide_expert=glide_expert)
    console.print(f"BFM checkpoint: {out / 'checkpoints' / 'last.safetensors'}  ({result['rounds']} rounds, "
                  f"{result['env_steps']:,} env steps)")


@app.command("evaluate-bfm")
def evaluate_bfm_cmd(
    bfm: Annotated[Path | None, typer.Option(help="BFM checkpoint; default: the embedded one.")] = None,
    episodes: Annotated[int, typer.Option(help="Episodes (parallel envs) per ability row.")] = 64,
    seed: Annotated[int, typer.Option(help="Evaluation seed.")] = 0,
    card: Annotated[Path | None, typer.Option(help="Write the model card here (e.g. docs/bfm_card.md).")] = None,
    log_csv: Annotated[Path | None, typer.Option("--log", help="Pretraining log.csv for the curves plot.")] = None,
    controller: Annotated[bool, typer.Option(help="Also run the walk row with the walking controller (the DAgger "
                                                  "teacher) acting itself: a reference row, the student's ceiling.")] = False,
    reach_teacher: Annotated[bool, typer.Option(help="Also run the hand row with the IK reach teacher's arm on top of "
                                                     "the BFM's action: a reference row, what --reach-labels ik "
                                                     "teaches.")] = False,
    weight_noise: Annotated[float, typer.Option(help="Also run the table on --copies copies of the BFM with this much "
                                                    "Gaussian noise on each weight tensor (x its std; e.g. 0.002): "
                                                    "shows which rows survive tiny weight changes. 0 = off.")] = 0.0,
    copies: Annotated[int, typer.Option(help="Perturbed copies for --weight-noise.")] = 4,
    steady_envs: Annotated[int, typer.Option(min=0, help="Envs per per-step walk row (0.5 / 1.0 / 1.5 m/s, straight "
                                                         "and turning 0.3 rad/s; ~1 min at 32); 0: no such rows.")] = 32,
    steady_seconds: Annotated[float, typer.Option(min=6.0, help="Seconds each per-step walk row walks (the first 5 "
                                                                "settle).")] = 20.0,
    sim: Annotated[str, typer.Option(help="Simulator the rows are measured on: mujoco (MuJoCo C, the training "
                                          "engine) or mjwarp (MuJoCo Warp, extra [mjwarp]: the card's cross-engine "
                                          "column, bfm-card --mjwarp-abilities).")] = "mujoco",
    json_path: JsonOpt = None,
) -> None:
    """Measure a BFM's abilities (stand, reach, walk) with the mean action; optionally write its model card."""
    from tt_deploy.models.bfm import count_parameters
    from tt_deploy.models.checkpoints import resolve_bfm
    from tt_deploy.pretrain.evaluate import (
        evaluate_bfm,
        evaluate_reach_teacher,
        evaluate_walk_controller,
        weight_noise_rows,
    )
    from tt_deploy.pretrain.model_card import read_recipe, write_card

    if weight_noise < 0 or copies < 1:
        raise InputError(f"--weight-noise must be >= 0 and --copies >= 1, got {weight_noise} and {copies}")
    if sim not in ("mujoco", "mjwarp"):
        raise InputError(f"--sim must be mujoco or mjwarp; got {sim!r}")
    if sim != "mujoco" and (card is not None or controller or reach_teacher or weight_noise > 0):
        raise InputError("--sim mjwarp measures the ability table only (--json); the card, reference rows and "
                         "weight noise are measured on mujoco")  # fmt: skip
    model, info = resolve_bfm(bfm)
    if not info.get("pretrained", True):
        console.print("[yellow]note:[/] no pretrained BFM is embedded; evaluating a freshly initialised one")
    with _progress(1, stats=lambda r: "", unit="control steps", key="done") as update:
        rows = evaluate_bfm(model, episodes=episodes, seed=seed, sim=sim,
                            progress=lambda done, total: update({"done": done, "total": total}))
    if controller:
        rows.append(evaluate_walk_controller(episodes=episodes, seed=seed))
    if reach_teacher:
        rows.append(evaluate_reach_teacher(model, episodes=episodes, seed=seed))
    print_table("BFM abilities (mean action)", rows, ["ability", "condition", "success_rate", "ci95", "episodes", "metrics"])
    steady_rows = None
    if steady_envs and sim == "mujoco":
        from tt_deploy.pretrain.steady_walk import CARD_TURN_RATE, measure_bfm_walk

        with console.status("walk steadiness: straight and turning"):
            kw = {"envs": steady_envs, "seconds": steady_seconds}
            steady_rows = measure_bfm_walk(model, **kw) + measure_bfm_walk(model, turn_rate=CARD_TURN_RATE, **kw)
        print_table("Walk steadiness (per control step)", steady_rows,
                    ["command", "turn_rate", "mean_speed", "mean_error", "swing", "fall_rate"])  # fmt: skip
    noise_rows = None
    if weight_noise > 0:
        noise_rows = weight_noise_rows(model, weight_noise, copies=copies, episodes=episodes, seed=seed)
        print_table(f"{copies} copies with weight noise {weight_noise:g}", noise_rows,
                    ["ability", "condition", "mean", "min", "max", "copies"])  # fmt: skip
    if card is not None:
        write_card(card, rows=rows, bfm_info=info, params=count_parameters(model), config=model.config.name,
                   recipe=read_recipe(info.get("path")), log_csv=log_csv,
                   episodes=episodes, seed=seed, noise_rows=noise_rows, steady_rows=steady_rows)  # fmt: skip
        console.print(f"wrote {card}")
    write_json(json_path, {"bfm": {k: portable_path(v) if k == "path" else v for k, v in info.items()},
                           "evaluation": {"seed": seed, "episodes": episodes, "sim": sim}, "abilities": rows,
                           **({"weight_noise": noise_rows} if noise_rows else {}),
                           **({"steadiness": steady_rows} if steady_rows else {})})


@app.command("bfm-card")
def bfm_card_cmd(
    abilities: Annotated[Path | None, typer.Option(help="Abilities file written by `evaluate-bfm --json`; default: "
                                                        "the one beside the BFM.")] = None,
    bfm: Annotated[Path | None, typer.Option(help="BFM checkpoint; default: the embedded one.")] = None,
    out: Annotated[Path, typer.Option(help="Where the card goes.")] = Path("docs/bfm_card.md"),
    log_csv: Annotated[Path | None, typer.Option("--log", help="Pretraining log.csv for the curves plot (else an "
                                                               "existing plot beside the card is kept).")] = None,
    mjwarp_abilities: Annotated[Path | None, typer.Option(help="Abilities file of `evaluate-bfm --sim mjwarp --json`: "
                                                               "adds the MuJoCo Warp column; default: "
                                                               "<abilities>.mjwarp.json beside the abilities file, "
                                                               "if there is one.")] = None,
) -> None:
    """Render the BFM's model card from committed data: its recipe file and an abilities file (no evaluation)."""
    from tt_deploy.models.bfm import count_parameters
    from tt_deploy.models.checkpoints import resolve_bfm
    from tt_deploy.pretrain.model_card import read_recipe, write_card
    from tt_deploy.tasks.goals import abilities_path

    model, info = resolve_bfm(bfm)
    src = abilities or (abilities_path(info["path"]) if info.get("path") else None)
    if src is None or not Path(src).is_file():
        raise InputError(f"no abilities file {src or ''} for this BFM: run `ttdeploy evaluate-bfm --json FILE` first")
    data = _abilities_file(src)
    ev = data["evaluation"]
    warp = None
    beside = Path(src).with_suffix(".mjwarp.json")
    mjwarp_abilities = mjwarp_abilities or (beside if beside.is_file() else None)
    if mjwarp_abilities is not None:
        warp = _abilities_file(mjwarp_abilities)
        if warp["evaluation"].get("sim") != "mjwarp" or {k: warp["evaluation"][k] for k in ("seed", "episodes")} != \
                {k: ev[k] for k in ("seed", "episodes")}:
            raise InputError(f"{mjwarp_abilities} is not an `evaluate-bfm --sim mjwarp` file with the card's seed "
                             f"{ev['seed']} and {ev['episodes']} episodes")  # fmt: skip
    path = write_card(out, rows=data["abilities"], bfm_info=info, params=count_parameters(model),
                      config=model.config.name, recipe=read_recipe(info.get("path")),
                      log_csv=log_csv, episodes=ev["episodes"], seed=ev["seed"],
                      noise_rows=data.get("weight_noise"), mjwarp_rows=warp and warp["abilities"],
                      steady_rows=data.get("steadiness"))  # fmt: skip
    console.print(f"wrote {path} from {src}" + (f" and {mjwarp_abilities}" if warp else ""))


def _abilities_file(src: Path) -> dict:
    try:
        data = json.loads(Path(src).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read abilities file {src}: {exc}") from None
    if "abilities" not in data or "evaluation" not in data:
        raise InputError(f"{src} is not an abilities file of `ttdeploy evaluate-bfm --json` (needs 'abilities' and "
                         "'evaluation')")
    return data


EXPERTS = ("glide", "jump", "strike")


@app.command("pretrain-expert")
def pretrain_expert_cmd(
    expert: Annotated[str, typer.Argument(help="Which RL expert: " + " | ".join(EXPERTS))],
    steps: Annotated[int | None, typer.Option(help="Total environment steps (default: the design's; glide v1 5 M, "
                                                   "jump v1 4 M, strike v1 4 M).")] = None,
    num_envs: Annotated[int | None, typer.Option(help="Parallel environments (default 256).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Run directory (default runs/experts/EXPERT).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoints/last_state.pt.")] = False,
    past_stop_rule: Annotated[bool, typer.Option(help="Train past a failed stop rule (it stays recorded).")] = False,
    design: Annotated[str, typer.Option(help="Recipe of the expert (glide: v1, v2, v3; jump: v1-v7; "
                                             "strike: v1; docs/training.md).")] = "v1",
    init_policy: Annotated[Path | None, typer.Option(help="Warm start from this policy of the same expert "
                                                          "(OUT/checkpoints/last_policy.safetensors of a run).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every iteration.")] = False,
) -> None:
    """Train an RL expert for the next BFM (resumable); at its design's step count it measures its stop rule and obeys it."""
    from tt_deploy.errors import UnknownNameError

    if expert not in EXPERTS:
        raise UnknownNameError("expert", expert, EXPERTS)
    if init_policy is not None and not init_policy.is_file():
        raise InputError(f"--init-policy {init_policy}: no such file")
    out = out or Path("runs/experts") / expert
    if expert == "glide":
        from tt_deploy.pretrain.glide_expert import DESIGNS
        from tt_deploy.pretrain.glide_expert import train_glide as train
    elif expert == "jump":
        from tt_deploy.pretrain.jump_expert import DESIGNS
        from tt_deploy.pretrain.jump_expert import train_jump as train
    else:
        from tt_deploy.pretrain.strike_expert import DESIGNS
        from tt_deploy.pretrain.strike_expert import train_strike as train
    if design not in DESIGNS:
        raise UnknownNameError(f"{expert} design", design, DESIGNS)
    _logging(verbose)
    cfg = replace(DESIGNS[design], seed=seed, init_policy=None if init_policy is None else str(init_policy))
    cfg = replace(cfg, **{k: v for k, v in {"steps": steps, "num_envs": num_envs}.items() if v is not None})
    with _progress(cfg.steps) as progress:
        result = train(cfg, out, resume=resume, past_stop_rule=past_stop_rule, progress=progress)
    verdict = result["stop_rule"]
    rule = "not reached" if verdict is None else ("passed" if verdict["passed"] else "FAILED (see stop_rule.json)")
    console.print(f"expert {expert}: {result['env_steps']:,} env steps in {out}; stop rule {rule}")
