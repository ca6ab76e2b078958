"""A finished training run's policy, rebuilt from its run directory: what robustness sweeps perturb and what
a policy oracle (train/oracles.py) labels with."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path

from tt_deploy.errors import InputError
from tt_deploy.models.checkpoints import bfm_sha256, resolve_bfm
from tt_deploy.train.task_token import TrainConfig, build_policy, resolve_goals


def load_run_policy(run: Path, *, bfm_path=None, tag: str = "last"):
    """(TrainConfig, policy in eval mode, goal kwargs, checkpoint used) of a run directory, rebuilt from its
    run.json and checkpoints. What the results folder commits: a task-token run's encoder
    (<tag>.safetensors; the BFM is the frozen one), a finetune or pure-rl run's whole policy
    (<tag>_policy.safetensors, else best_policy.safetensors, and the answer says so). The run's BFM must
    be the one given (default: the embedded one): its sha256 is checked against run.json."""
    from safetensors.torch import load_file

    from tt_deploy.models.checkpoints import load_encoder

    run = Path(run)
    meta_path = run / "run.json"
    if not meta_path.is_file():
        raise InputError(f"{run} is not a training run directory (no run.json)")
    meta = json.loads(meta_path.read_text())
    known = {f.name for f in fields(TrainConfig)}
    raw = {k: v for k, v in meta["config"].items() if k in known and k != "ppo"}
    raw["encoder_hidden"] = tuple(raw.get("encoder_hidden", (256, 256)))
    cfg = TrainConfig(**raw)
    if cfg.method == "prior-only":
        raise InputError(f"{run} is a prior-only run: it has no policy to perturb")
    bfm, info = resolve_bfm(bfm_path)
    sha, _ = bfm_sha256(bfm, info)
    if meta.get("bfm_sha256") and sha != meta["bfm_sha256"]:
        raise InputError(f"{run} was trained on BFM {meta['bfm_sha256'][:12]}..., not {sha[:12]}...: pass its --bfm")
    goal_kwargs, _ = resolve_goals(cfg, info)
    policy = build_policy(cfg, bfm, int(meta["task_obs_dim"]))
    ck = run / "checkpoints"
    if cfg.method == "task-token" and (ck / f"{tag}.safetensors").is_file():
        used = ck / f"{tag}.safetensors"
        enc, _ = load_encoder(used)
        policy.encoder.load_state_dict(enc.state_dict())
    else:
        used = next((p for p in (ck / f"{tag}_policy.safetensors", ck / "best_policy.safetensors") if p.is_file()), None)
        if used is None:
            raise InputError(f"{run} has no {tag} policy checkpoint (checkpoints/{tag}_policy.safetensors)")
        try:  # every weight, the BFM's included (finetune changed them)
            policy.load_state_dict(load_file(str(used)))
        except RuntimeError as e:
            raise InputError(f"{used} does not fit a {cfg.method} policy for {cfg.skill}: "
                             f"{str(e).splitlines()[0]}") from None
    return replace(cfg, nthread=1), policy.eval(), goal_kwargs, used.name
