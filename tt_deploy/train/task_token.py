"""`ttdeploy train`: a task token (or a baseline) trained with PPO through the frozen BFM.

Methods (the paper's comparison): task-token (default: frozen BFM + trainable encoder),
finetune (the whole BFM trains as well), pure-rl (an MLP from scratch, no BFM), prior-only
(no training: the skill's hand-made prior prompt alone, evaluated).
Run directory: run.json (config, BFM sha256, git commit, steps, wall-clock, freezing proof),
log.csv, eval.csv, checkpoints/{last,best}.safetensors (the encoder, loadable by
`load_encoder`, whose info names skill and BFM), checkpoints/{last,best}_policy.safetensors
(every trained weight, any method) and last_state.pt (for --resume).
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from tt_deploy.atomic import atomic_write_text
from tt_deploy.errors import InputError
from tt_deploy.hashing import portable_path
from tt_deploy.models.checkpoints import (
    EncoderInfo,
    atomic_save_safetensors,
    bfm_sha256,
    load_encoder,
    resolve_bfm,
    save_encoder,
    state_hash,
)
from tt_deploy.models.config import EncoderConfig
from tt_deploy.models.task_encoder import TaskEncoder
from tt_deploy.rl.runner import OnPolicyRunner, to_torch
from tt_deploy.stats import wilson_interval
from tt_deploy.tasks.env import TaskEnv
from tt_deploy.tasks.goals import abilities_path, goal_preset
from tt_deploy.tasks.registry import make_task
from tt_deploy.train.config import METHODS, TrainConfig, default_ppo, with_overrides  # noqa: F401 - re-exported
from tt_deploy.train.policies import PureRLPolicy, TaskTokenPolicy

log = logging.getLogger(__name__)
def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)  # fmt: skip
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def resolve_goals(cfg: TrainConfig, bfm_info: dict) -> tuple[dict, dict]:
    """The run's goal preset: (task kwargs, record). Default: `bfm` where the BFM has measured abilities
    beside it (the embedded one does), else `reference` (an imported MaskedMimic checkpoint)."""
    path = bfm_info.get("path")
    abilities = abilities_path(path) if path else None
    preset = cfg.goals or ("bfm" if abilities is not None and abilities.is_file() else "reference")
    return goal_preset(preset, cfg.skill, abilities)


def _make_env(cfg: TrainConfig, n: int, seed: int, goal_kwargs: dict | None = None) -> TaskEnv:
    from tt_deploy.sim.registry import make_simulator

    kw = {"current_pose": cfg.current_pose, **(goal_kwargs or {})}
    if cfg.prior or cfg.method == "prior-only":  # prior-only IS the skill's prior prompt
        kw["prior"] = True
    task = make_task(cfg.skill, n, **kw)
    sim = make_simulator(cfg.sim, num_envs=n, nthread=cfg.nthread, objects=task.objects, seed=seed)
    return TaskEnv(sim, task, episode_seconds=cfg.episode_seconds, seed=seed)


@torch.no_grad()
def evaluate_policy(env: TaskEnv, act, episodes: int | None = None, *, per_env: bool = False) -> dict[str, float]:
    """Mean-action success over the first episode of every env (the same episodes for envs built alike: pass a
    fresh env per evaluation; a reused one draws new goals at every reset).

    `success_rate` is the reference's: passed goal segments over all segments (docs/tasks.md), with a
    Wilson interval over segments; `episode_success_rate` is the stricter "every goal of the episode";
    `<rule>_success_rate` for a task's extra rules (direction / steering: `stride`). per_env: also
    `per_env`, each env's first episode (segments, passed, fell): what a paired comparison pairs.
    """
    step = env.reset()
    n = env.num_envs
    result = np.full(n, -1, dtype=np.int8)
    returns = np.zeros(n)
    segments = np.zeros(n, dtype=np.int64)
    extra = {name: np.zeros((2, n), dtype=np.int64) for name in env.task.extra_books}
    passed = np.zeros(n, dtype=np.int64)
    fell = np.zeros(n, dtype=bool)
    for _ in range(env.max_steps + 1):
        step = env.step(act(step))
        ep = step.info["episode"]
        first = result[ep["env_ids"]] < 0
        ids = ep["env_ids"][first]
        result[ids] = ep["success"][first]
        returns[ids] = ep["return"][first]
        segments[ids], passed[ids] = ep["segments"][first], ep["segments_passed"][first]
        for name, book in extra.items():
            book[0, ids], book[1, ids] = ep[f"{name}_segments"][first], ep[f"{name}_segments_passed"][first]
        fell[ids] = ep["fell"][first]
        if (result >= 0).all():
            break
    k, total = int(passed.sum()), int(segments.sum())
    lo, hi = wilson_interval(k, total) if total else (0.0, 1.0)
    k_ep = int((result == 1).sum())
    res = {"success_rate": k / total if total else 0.0, "ci_low": lo, "ci_high": hi, "segments": total,
           "episode_success_rate": k_ep / n, "fall_rate": float(fell.mean()), "return": float(returns.mean())}
    for name, (tot, ok) in extra.items():
        res[f"{name}_success_rate"] = int(ok.sum()) / max(int(tot.sum()), 1)
    if per_env:
        res["per_env"] = {"segments": segments.tolist(), "passed": passed.tolist(), "fell": fell.tolist()}
    return res


def build_policy(cfg: TrainConfig, bfm, obs_dim: int):
    if cfg.method == "pure-rl":
        return PureRLPolicy(obs_dim)
    enc = TaskEncoder(EncoderConfig(obs_dim=obs_dim, token_dim=bfm.token_dim, hidden=cfg.encoder_hidden))
    enc.neutral_start()  # a fresh token is 0: training starts from the prior's behaviour, not from a fall
    groups = ("obs", "historical_pose_obs", "terrain") + (("masked_mimic_target_poses",) if cfg.prior else ())
    return TaskTokenPolicy(bfm, enc, visible_groups=groups, train_bfm=cfg.method == "finetune",
                           explore=cfg.exploration, freeze_encoder_norm=cfg.oracle_start)


class _Checkpointer:
    """save_fn for the runner: encoder + policy weights, eval-driven best, run.json."""

    def __init__(self, cfg: TrainConfig, out: Path, bfm_sha: str, make_eval_env, meta: dict):
        self.cfg, self.out, self.bfm_sha, self.make_eval_env, self.meta = cfg, out, bfm_sha, make_eval_env, meta
        self.best: tuple[float, float] = (-1.0, -np.inf)
        self.last_eval: dict = {}

    def __call__(self, runner: OnPolicyRunner, tag: str) -> None:
        info = EncoderInfo(skill=self.cfg.skill, method=self.cfg.method, bfm_sha256=self.bfm_sha,
                           env_steps=runner.env_steps, task_obs_dim=self.meta["task_obs_dim"],
                           current_pose=self.cfg.current_pose, goals=self.meta["goals"],
                           task_prior=self.meta["task_prior"],
                           visible_groups=tuple(getattr(runner.policy, "visible_groups", ())),
                           explore=self.cfg.exploration)  # fmt: skip
        ck = self.out / "checkpoints"
        pol = runner.policy
        atomic_save_safetensors(dict(pol.state_dict()), ck / f"{tag}_policy.safetensors",
                                {"kind": "policy", "info": json.dumps(info.to_dict())})  # fmt: skip
        if hasattr(pol, "encoder"):
            save_encoder(pol.encoder, ck / f"{tag}.safetensors", info=info)

    def evaluate(self, runner: OnPolicyRunner) -> dict:
        pol = runner.policy
        pol.eval()
        res = evaluate_policy(self.make_eval_env(), lambda s: pol.act_deterministic(to_torch(s)).numpy())
        self.last_eval = res
        if (res["success_rate"], res["return"]) > self.best:
            self.best = (res["success_rate"], res["return"])
            self(runner, "best")
        return res


def _check_resumable(cfg: TrainConfig, out: Path, prior: dict | None = None) -> None:
    """A run resumes only with the exploration it started with (its stored actions live in that space), on the
    simulator it started on (its stored simulator state is that engine's) and beside the prior prompt it started
    with (a prior's defaults may change between versions: obs/priors.py)."""
    if (out / "checkpoints" / "last_state.pt").is_file():
        start = read_run_record(out)
        before = start.get("config", {}).get("sim", "mujoco")
        if before != cfg.sim:
            raise InputError(f"{out} was trained with --sim {before}; resume it with --sim {before} "
                             f"or start a new run directory")
        if "task_prior" in start and start["task_prior"] != json.loads(json.dumps(prior)):
            raise InputError(f"{out} was trained beside the prior {start['task_prior']}, this version builds "
                             f"{prior}: start a new run directory")
    ck = out / "checkpoints" / "last.safetensors"
    if cfg.exploration is None or not ck.is_file():
        return
    _, info = load_encoder(ck)
    before = (info.explore if info else None) or "action"  # runs from before the option explored in action space
    if before != cfg.exploration:
        raise InputError(f"{out} was trained with --explore {before}; resume it with --explore {before} "
                         f"or start a new run directory")


def read_run_record(out: Path) -> dict:
    """The run.json of a run dir that has a checkpoint: without it (or with an unreadable one) the run's settings
    are unknown, so it is never resumed blind (InputError in one line)."""
    path = out / "run.json"
    if not path.is_file():
        raise InputError(f"--resume: {out} has a checkpoint but no run.json, so the settings it was trained with are "
                         "unknown; restore run.json or start a new run directory")  # fmt: skip
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"--resume: {path} is not readable JSON ({type(exc).__name__}); restore it or start a new "
                         "run directory") from exc
    if not isinstance(record, dict) or not isinstance(record.get("config", {}), dict):
        raise InputError(f"--resume: {path} is not a run record; restore it or start a new run directory")
    return record


def _write_json(path: Path, obj: dict) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str))


def train_skill(cfg: TrainConfig, out_dir: str | Path, *, bfm_path=None, resume: bool = False,
                progress=None) -> dict:
    """Train (or, for prior-only, just evaluate) one skill; returns the run summary (also in run.json)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    bfm, bfm_info = resolve_bfm(bfm_path)
    sha, sha_of = bfm_sha256(bfm, bfm_info)
    goal_kwargs, goals = resolve_goals(cfg, bfm_info)
    def make_eval_env() -> TaskEnv:
        """The evaluation episodes: a fresh env each time, so every evaluation of the run (and prior-only's, on
        the same seed) sees the same starts and goals; one env object would draw new goals at each reset."""
        return _make_env(cfg, cfg.eval_envs, seed=10_000 + cfg.seed, goal_kwargs=goal_kwargs)

    eval_env = make_eval_env()
    obs_dim = eval_env.task.obs_dim
    prior = eval_env.task.prior_prompt.describe() if eval_env.task.prior_prompt is not None else None
    meta = {"config": asdict(cfg), "bfm_sha256": sha, "bfm_sha256_of": sha_of,
            "bfm_source": {k: portable_path(v) if k == "path" else v for k, v in bfm_info.items()},
            "git_commit": _git_commit(), "task_obs_dim": obs_dim, "goals": goals, "task_prior": prior,
            "ppo": asdict(cfg.ppo_config()),
            "exploration": None if cfg.exploration is None else
            {"space": cfg.exploration, "std": cfg.ppo_config().action_std}}  # fmt: skip
    if cfg.method == "prior-only":
        bfm.freeze()
        res = evaluate_policy(eval_env, lambda s: torch.clamp(bfm(to_torch(s)), -1, 1).numpy())
        summary = {**meta, "env_steps": 0, "wall_seconds": 0.0, "trainable_params": 0, "final_eval": res}
        _write_json(out / "run.json", summary)
        return summary

    hash_before = state_hash(bfm)
    policy = build_policy(cfg, bfm, obs_dim)
    fresh = not (resume and (out / "checkpoints" / "last_state.pt").is_file())
    if cfg.null_token and fresh and hasattr(policy, "encoder"):
        from tt_deploy.train.null_token import fit_null_token

        fit_env = _make_env(cfg, 32, seed=20_000 + cfg.seed, goal_kwargs=goal_kwargs)
        token, meta["null_token"] = fit_null_token(policy, fit_env, seed=cfg.seed)
        policy.encoder.neutral_start(token)
        log.info("null token: action RMS difference to prior-only %.4f (zero token %.4f)",
                 meta["null_token"]["rms_diff_null_token"], meta["null_token"]["rms_diff_zero_token"])
    elif not fresh:  # a resumed run keeps the record of its start
        start = read_run_record(out)
        meta["null_token"], meta["oracle_start"] = start.get("null_token"), start.get("oracle_start")
    trained_before = state_hash(policy.encoder if hasattr(policy, "encoder") else policy)
    if cfg.oracle_start and fresh:
        meta["oracle_start"] = _oracle_start(cfg, policy, goal_kwargs, make_eval_env, out, bfm_path)
    env = _make_env(cfg, cfg.num_envs, seed=cfg.seed, goal_kwargs=goal_kwargs)
    ckpt = _Checkpointer(cfg, out, sha, make_eval_env, meta)

    def extra_log(runner: OnPolicyRunner) -> dict:
        due = runner.iteration % cfg.eval_every == 0 or runner.env_steps >= cfg.steps
        res = ckpt.evaluate(runner) if due else {}
        keys = ("success_rate", "ci_low", "ci_high", "return") + tuple(
            k for k in ("stride_success_rate",) if k in ckpt.last_eval)  # direction / steering book it
        return {f"eval_{k}": res.get(k, float("nan")) for k in keys}

    runner = OnPolicyRunner(env, policy, cfg.ppo_config(), out, seed=cfg.seed, checkpoint_every=cfg.eval_every,
                            save_fn=ckpt, extra_log=extra_log)  # fmt: skip
    if resume:
        _check_resumable(cfg, out, prior)
    if resume and not runner.resume():
        log.warning("--resume: no checkpoint in %s, starting fresh", out)
    if cfg.oracle_start and fresh:  # the distillation's rollouts count; its encoder is the first "best" candidate
        runner.env_steps = meta["oracle_start"]["env_steps"]
        runner.wall_seconds = meta["oracle_start"]["wall_seconds"]
        ckpt.evaluate(runner)
    t0 = time.time()
    result = runner.learn(cfg.steps, progress=progress)
    if not ckpt.last_eval:  # no PPO iteration ran (e.g. --steps within the distillation's): evaluate what there is
        ckpt.evaluate(runner)
        runner.save("last")
    hash_after = state_hash(bfm)
    trained_after = state_hash(policy.encoder if hasattr(policy, "encoder") else policy)
    trainable = sum(p.numel() for p in policy.actor_parameters())
    summary = {**meta, **result, "trainable_params": trainable, "final_eval": ckpt.last_eval,
               "session_seconds": time.time() - t0,
               "freezing": {"bfm_state_hash_before": hash_before, "bfm_state_hash_after": hash_after,
                            "bfm_unchanged": hash_before == hash_after,
                            "trained_state_hash_before": trained_before, "trained_state_hash_after": trained_after,
                            "expected_unchanged": cfg.method != "finetune"}}  # fmt: skip
    _write_json(out / "run.json", summary)
    if cfg.method == "task-token" and hash_before != hash_after:
        raise RuntimeError("the frozen BFM changed during task-token training (bug): see run.json")
    return summary


def _oracle_start(cfg: TrainConfig, policy, goal_kwargs: dict, make_eval_env, out: Path, bfm_path=None) -> dict:
    """DAgger the fresh encoder toward the task's oracle (train/distill.py); its rounds go to log.csv."""
    from tt_deploy.rl.run_log import RunLog
    from tt_deploy.train.distill import DistillConfig, distill_encoder
    from tt_deploy.train.oracles import make_oracle

    oracle = make_oracle(cfg.skill, cfg.oracle_policy, bfm_path=bfm_path)
    dcfg = DistillConfig(rounds=cfg.oracle_rounds, steps=cfg.oracle_steps)
    env = _make_env(cfg, dcfg.envs, seed=30_000 + cfg.seed, goal_kwargs=goal_kwargs)
    run_log = RunLog(out)

    def evaluate():
        policy.eval()
        return evaluate_policy(make_eval_env(), lambda s: policy.act_deterministic(to_torch(s)).numpy())

    def log_round(row):
        log.info("oracle start round %d: loss %.5f, eval success %.3f (stride rule %.3f)", row["round"],
                 row["loss"], row.get("eval_success_rate", float("nan")), row.get("eval_stride_success_rate", float("nan")))
        run_log({"iteration": 0, "env_steps": row["env_steps"], "wall_seconds": row["wall_seconds"],
                 "oracle_round": row["round"], "oracle_loss": row["loss"],
                 **{k: v for k, v in row.items() if k.startswith("eval_")}})

    return distill_encoder(policy, oracle, env, dcfg, seed=cfg.seed, evaluate=evaluate, log=log_round)
