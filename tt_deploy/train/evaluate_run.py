"""`ttdeploy evaluate`: a trained skill (and its prior alone) on evaluation seeds the user picks, paired.

Why paired: the same seed gives the trained policy and the prior-only baseline the same starts and goals, so
their per-episode difference cancels the goal draw's luck; an unpaired difference of two rates is far wider.
Each seed is a fresh environment of `episodes` envs, and each env's first episode counts (as training's
evaluation does). Rates are the reference's (passed goal segments over all segments) with a Wilson interval
over segments; the paired gain is the mean over episodes of (trained - prior-only) per-episode segment
success, with a normal-approximation 95 % interval over those episodes.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from tt_deploy.errors import InputError
from tt_deploy.stats import wilson_interval

METHODS = ("both", "trained", "prior-only")


def _rate(per_seed: list[dict]) -> dict:
    seg = np.concatenate([r["per_env"]["segments"] for r in per_seed])
    ok = np.concatenate([r["per_env"]["passed"] for r in per_seed])
    fell = np.concatenate([r["per_env"]["fell"] for r in per_seed])
    k, n = int(ok.sum()), int(seg.sum())
    lo, hi = wilson_interval(k, n)
    out = {"success_rate": k / n if n else 0.0, "ci_low": lo, "ci_high": hi, "segments": n,
           "episodes": int(seg.size), "fall_rate": float(fell.mean()),
           "per_seed": [{k2: v for k2, v in r.items() if k2 != "per_env"} for r in per_seed]}  # fmt: skip
    extra = [k2 for k2 in per_seed[0] if k2.endswith("_success_rate") and k2 != "episode_success_rate"]
    for k2 in extra:  # the task's extra rules (stride), mean over seeds
        out[k2] = float(np.mean([r[k2] for r in per_seed]))
    return out


def paired_gain(trained: list[dict], prior: list[dict]) -> dict:
    """Mean per-episode (trained - prior-only) segment success over the paired episodes, with a 95 % interval."""
    def per_episode(rs):
        seg = np.concatenate([r["per_env"]["segments"] for r in rs]).astype(float)
        ok = np.concatenate([r["per_env"]["passed"] for r in rs]).astype(float)
        return np.where(seg > 0, ok / np.maximum(seg, 1), np.nan)

    d = per_episode(trained) - per_episode(prior)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return {"gain": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "episodes": 0}
    half = 1.96 * float(d.std(ddof=1)) / math.sqrt(d.size) if d.size > 1 else float("inf")
    return {"gain": float(d.mean()), "ci_low": float(d.mean()) - half, "ci_high": float(d.mean()) + half,
            "episodes": int(d.size)}


def evaluate_run(run: str | Path, seeds, episodes: int = 64, *, goals: str | None = None, method: str = "both",
                 bfm_path=None, progress=None) -> dict:
    """The run's skill on `seeds` x `episodes` paired episodes: trained, prior-only, or both with the paired gain.

    goals: the run's own preset when None, else "bfm" or "reference". progress(done, total) after each seed."""
    import torch

    from tt_deploy.models.checkpoints import resolve_bfm
    from tt_deploy.rl.runner import to_torch
    from tt_deploy.train.run_policy import load_run_policy
    from tt_deploy.train.task_token import _make_env, evaluate_policy, resolve_goals

    if method not in METHODS:
        raise InputError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    seeds = [int(s) for s in seeds]
    if not seeds or episodes < 1:
        raise InputError(f"--seeds needs at least one seed and --episodes >= 1, got {seeds}, {episodes}")
    cfg, policy, goal_kwargs, used = load_run_policy(Path(run), bfm_path=bfm_path)
    bfm, info = resolve_bfm(bfm_path)  # the frozen BFM: prior-only's, whatever a finetune run changed
    bfm.freeze()
    if goals is not None:
        cfg = replace(cfg, goals=goals)
        goal_kwargs, _ = resolve_goals(cfg, info)
    acts = {}
    if method in ("both", "trained"):
        acts["trained"] = (cfg, lambda s: policy.act_deterministic(to_torch(s)).numpy())
    if method in ("both", "prior-only"):
        acts["prior-only"] = (replace(cfg, method="prior-only", oracle_start=False, oracle_policy=None), lambda s: torch.clamp(bfm(to_torch(s)), -1, 1).numpy())
    per = {name: [] for name in acts}
    total, done = len(seeds) * len(acts), 0
    with torch.no_grad():
        for seed in seeds:
            for name, (c, act) in acts.items():
                env = _make_env(c, episodes, seed=seed, goal_kwargs=goal_kwargs)
                per[name].append({"seed": seed, **evaluate_policy(env, act, per_env=True)})
                done += 1
                if progress is not None:
                    progress(done, total)
    out = {"run": str(run), "skill": cfg.skill, "run_method": cfg.method, "checkpoint": used,
           "goals": cfg.goals or "run's own", "seeds": seeds, "episodes_per_seed": episodes,
           "methods": {name: _rate(rs) for name, rs in per.items()}}  # fmt: skip
    if len(per) == 2:
        out["paired_gain"] = paired_gain(per["trained"], per["prior-only"])
    return out
