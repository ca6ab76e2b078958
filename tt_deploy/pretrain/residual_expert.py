"""What every RL expert of the pretraining lab shares: a bounded residual policy on top of a scripted or
controller action carried in the task observation, its policy file, and training that obeys a stop rule.

Why a residual: both experts start from something that already moves the body (the walking controller for
glide, the CEM-found jump script for jump), so PPO only has to learn a bounded correction in radians, and the
run starts as the base motion (residual ~0) instead of a statue that falls.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from tt_deploy import spec
from tt_deploy.atomic import atomic_path, atomic_write_text
from tt_deploy.errors import InputError
from tt_deploy.rl.config import PPOConfig
from tt_deploy.rl.runner import OnPolicyRunner
from tt_deploy.spec import TASK_OBS_NAME
from tt_deploy.train.policies import PureRLPolicy

log = logging.getLogger(__name__)


def residual_joint_ids() -> np.ndarray:
    """Joints the residual moves: all but knee x/z, ankle z and toe x/z (hinges the controller holds at 0).

    Why not all 69: white exploration noise of 0.02 action units on the hips and knees alone fells 97 % of
    the controller's 10 s walks at 0.7 m/s (the knee x/z hinges span +-pi, so one action unit is 3.1 rad).
    """
    names = spec.JOINT_NAMES
    held = {f"{s}_{b}_{a}" for s in ("L", "R") for b, a in (("Knee", "x"), ("Knee", "z"), ("Ankle", "z"),
                                                            ("Toe", "x"), ("Toe", "z"))}  # fmt: skip
    return np.array([i for i, n in enumerate(names) if n not in held])


class ResidualPolicy(PureRLPolicy):
    """PPO's action is the residual in radians on `residual_joint_ids()`, mean residual_rad * tanh(MLP(obs));
    the joint action is the base action row (task obs columns base_at..base_at+69) plus that residual in
    action units.

    Exploring in radians keeps the noise equal on every hinge (the action units of the hips are 2.5 rad, of the
    ankles 1.0 rad). The MLP, its normaliser and the critic are the pure-RL baseline's."""

    bounded = False

    def __init__(self, task_dim: int, base_at: int, pd_scale: np.ndarray, residual_rad: float = 0.3,
                 hidden=(256, 256), critic_hidden=(256, 256)):
        ids = residual_joint_ids()
        super().__init__(task_dim, hidden, critic_hidden, out_dim=len(ids))  # starts at residual ~0: the base
        self.residual_rad = float(residual_rad)
        self.base_at = int(base_at)
        self.action_dim = len(ids)
        self.register_buffer("joint_ids", torch.as_tensor(ids, dtype=torch.long))
        self.register_buffer("inv_scale", torch.as_tensor(1.0 / np.asarray(pd_scale)[ids], dtype=torch.float32))

    def action_mean(self, obs):
        return self.residual_rad * torch.tanh(super().action_mean(obs))

    def env_action(self, obs, actions):
        joint = obs[TASK_OBS_NAME][:, self.base_at : self.base_at + spec.ACTION_DIM].clone()
        joint[:, self.joint_ids] += actions * self.inv_scale
        return joint


def expert_ppo(action_std: float) -> PPOConfig:
    """The experts' PPO settings (glide, jump, strike); only the exploration std differs between them."""
    return PPOConfig(horizon=32, num_minibatches=4, epochs=4, actor_lr=1e-4, critic_lr=3e-4, max_grad_norm=1.0,
                     action_std=action_std, bound_coef=10.0, critic_warmup=5)  # fmt: skip


def check_expert_sizes(cfg) -> None:
    """An expert config's residual bound and sizes (cfg: residual_rad, steps, num_envs); InputError otherwise."""
    if not 0 < cfg.residual_rad <= 1.5:
        raise InputError(f"residual_rad must be in (0, 1.5] rad, got {cfg.residual_rad}")
    if cfg.steps < 1 or cfg.num_envs < 1:
        raise InputError(f"steps and num_envs must be >= 1, got {cfg.steps}, {cfg.num_envs}")


def record_residual(task, actions: np.ndarray) -> None:
    """Before an env step: the task's residual (rad) of these joint actions over its base row, and the last one.
    task: residual, prev_residual, base_action (N, 69) and pd_scale (69,)."""
    task.prev_residual[:] = task.residual
    task.residual[:] = (np.clip(actions, -spec.ACTION_CLAMP, spec.ACTION_CLAMP) - task.base_action) * task.pd_scale


def residual_rate(task) -> np.ndarray:
    """(N,) the residual's squared change this step, per moved joint, in units of residual_rad."""
    change = np.sum((task.residual - task.prev_residual) ** 2, -1)
    return change / (len(task.residual_ids) * task.residual_rad**2)


def policy_actor(policy: ResidualPolicy):
    """act(obs dict of torch tensors) -> (N, 69) numpy joint actions, deterministic."""

    def act(obs):
        with torch.no_grad():
            return policy.act_deterministic(obs).numpy()

    return act


def policy_saver(recipe: str):
    """save_fn for OnPolicyRunner: the policy's tensors as checkpoints/<tag>_policy.safetensors."""

    def save(runner: OnPolicyRunner, tag: str) -> None:
        from safetensors.torch import save_file

        path = runner.out_dir / "checkpoints" / f"{tag}_policy.safetensors"
        meta = {"recipe": recipe, "env_steps": str(runner.env_steps), "residual_rad": str(runner.policy.residual_rad)}
        with atomic_path(path) as tmp:
            save_file({k: v.contiguous() for k, v in runner.policy.state_dict().items()}, str(tmp), metadata=meta)

    return save


def load_policy_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """An expert policy's tensors (safetensors: no code runs on load); InputError for a missing or foreign file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise InputError(f"--init-policy {path}: not a readable expert policy ({exc})") from exc


def warm_start(policy: ResidualPolicy, path: str | Path, recipe: str) -> None:
    """Load an --init-policy file into `policy`: it must be this expert's (its metadata's recipe) and fit."""
    from safetensors import safe_open

    weights = load_policy_weights(path)
    with safe_open(str(path), "pt") as f:
        theirs = (f.metadata() or {}).get("recipe", "")
    if not theirs.startswith(recipe):  # early glide files carry the design too ("tt-deploy glide expert v1")
        raise InputError(f"--init-policy {path}: a {theirs or 'foreign'!r} policy, not a {recipe!r} one")
    try:
        policy.load_state_dict(weights)
    except RuntimeError as exc:
        raise InputError(f"--init-policy {path}: does not fit this policy ({str(exc).splitlines()[0]})") from None


def expert_runner(cfg, out_dir: Path, make_env, make_policy, recipe: str, extra_log) -> OnPolicyRunner:
    """The OnPolicyRunner of one expert: its env, its residual policy (warm-started from cfg.init_policy, which
    must be this expert's), saving policy files under `recipe`. cfg: num_envs, seed, residual_rad, hidden, ppo,
    checkpoint_every, init_policy."""
    torch.manual_seed(cfg.seed)
    env = make_env(cfg, cfg.num_envs, cfg.seed)
    policy = make_policy(env.sim.hm.pd_scale, cfg.residual_rad, cfg.hidden)
    if cfg.init_policy is not None:
        warm_start(policy, cfg.init_policy, recipe)
    return OnPolicyRunner(env, policy, cfg.ppo, out_dir, seed=cfg.seed, checkpoint_every=cfg.checkpoint_every,
                          save_fn=policy_saver(recipe), extra_log=extra_log)


def policy_shape(path: str | Path, weights: dict[str, torch.Tensor], default_residual: float) -> dict:
    """residual_rad, hidden and critic_hidden of a policy file, read from its metadata and tensors."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        residual_rad = float((f.metadata() or {}).get("residual_rad", default_residual))
    layers = sorted(int(k.split(".")[1]) for k in weights if k.startswith("actor.") and k.endswith(".weight"))
    critic = sorted(int(k.split(".")[2]) for k in weights if k.startswith("critic.net.") and k.endswith(".weight"))
    return {"residual_rad": residual_rad,
            "hidden": tuple(int(weights[f"actor.{i}.weight"].shape[0]) for i in layers[:-1]),
            "critic_hidden": tuple(int(weights[f"critic.net.{i}.weight"].shape[0]) for i in critic[:-1])}


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def _differs(old, new) -> bool:
    """A recorded setting differs; keys added to the recipe since the record was written do not count."""
    if isinstance(old, dict) and isinstance(new, dict):
        return any(_differs(old[k], new[k]) for k in old.keys() & new.keys())
    return old != new


def config_record(cfg) -> dict:
    return json.loads(json.dumps(asdict(cfg)))


def train_with_stop_rule(cfg, out_dir: str | Path, build_runner, measure_rule, recipe: str, *, resume: bool = False,
                         past_stop_rule: bool = False, progress=None, record_extra: dict | None = None,
                         by_hash: tuple[str, ...] = ()) -> dict:
    """Train (or resume) an expert; at `cfg.stop_rule.at_steps` measure its stop rule and obey it.

    cfg: a frozen dataclass with steps, stop_rule.at_steps and init_policy; build_runner(cfg, out_dir) ->
    OnPolicyRunner; measure_rule(policy) -> the verdict dict ({"passed": bool, ...}), written to stop_rule.json.
    A failed rule blocks training past it unless past_stop_rule; a resume with other settings, or other files
    behind record_extra's hashes, is refused. by_hash: config keys (file paths) compared by those hashes, not
    by path, so a run resumes from another checkout."""
    out_dir = Path(out_dir)
    run_json = out_dir / "run.json"
    if resume and not run_json.is_file() and (out_dir / "checkpoints" / "last_state.pt").is_file():
        raise InputError(f"--resume: {out_dir} has a checkpoint but no run.json; its settings are unknown")
    hashes = dict(record_extra or {})
    if cfg.init_policy is not None:
        from tt_deploy.hashing import sha256_file

        hashes["init_policy_sha256"] = sha256_file(cfg.init_policy)
    if resume and run_json.is_file():
        recorded = json.loads(run_json.read_text())
        old, mine = recorded.get("config", {}), config_record(cfg)
        skip = {"steps", "nthread", *by_hash}
        differ = sorted(k for k in mine if k not in skip and k in old and _differs(old[k], mine[k]))
        differ += sorted(k for k, v in hashes.items() if k in recorded and recorded[k] != v)  # the files themselves
        if differ:
            raise InputError(f"--resume: {out_dir} was trained with other settings ({', '.join(differ)})")
    runner = build_runner(cfg, out_dir)
    if resume and not runner.resume():
        log.warning("--resume: no checkpoint in %s, starting fresh", out_dir)
    rule_path = out_dir / "stop_rule.json"
    verdict = json.loads(rule_path.read_text()) if rule_path.is_file() else None
    if verdict is not None and not verdict["passed"] and not past_stop_rule and cfg.steps > cfg.stop_rule.at_steps:
        raise InputError(f"{out_dir}: the stop rule failed at {cfg.stop_rule.at_steps:,} env steps "
                         f"({rule_path}); change the design, or pass --past-stop-rule")  # fmt: skip
    record = {"recipe": recipe, "config": config_record(cfg), "sim": "mujoco", **hashes}
    write_json(run_json, {**record, "status": "training"})
    target = cfg.steps if verdict is not None else min(cfg.steps, cfg.stop_rule.at_steps)
    result = runner.learn(target, progress=progress)
    if verdict is None and runner.env_steps >= cfg.stop_rule.at_steps:
        verdict = {**measure_rule(runner.policy), "env_steps": runner.env_steps}
        write_json(rule_path, verdict)
        log.info("stop rule at %d env steps: %s", runner.env_steps, "passed" if verdict["passed"] else "FAILED")
        if verdict["passed"] and cfg.steps > runner.env_steps:
            result = runner.learn(cfg.steps, progress=progress)
    status = "interrupted" if result["interrupted"] else ("stopped by the stop rule" if verdict and not verdict["passed"]
                                                          else "done")  # fmt: skip
    write_json(run_json, {**record, "status": status, "env_steps": runner.env_steps,
                          "iterations": runner.iteration, "wall_seconds": round(runner.wall_seconds, 1),
                          "stop_rule": verdict})  # fmt: skip
    return {**result, "stop_rule": verdict}
