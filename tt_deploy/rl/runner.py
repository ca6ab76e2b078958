"""The on-policy training loop shared by task-token training and BFM pretraining.

One iteration = `horizon` control steps of all envs (act -> env.step -> store), GAE, PPO update,
logging, checkpointing - the rsl_rl runner's shape. Timeouts bootstrap with the step's value
estimate (as rsl_rl does), falls and task terminations do not.
"""

from __future__ import annotations

import logging
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tt_deploy.atomic import atomic_path
from tt_deploy.errors import CheckpointError
from tt_deploy.rl.config import PPOConfig
from tt_deploy.rl.env_state import env_state, load_arrays, load_env_state, save_arrays
from tt_deploy.rl.ppo import PPO, ActorCritic
from tt_deploy.rl.run_log import RunLog
from tt_deploy.rl.storage import RolloutStorage
from tt_deploy.spec import TASK_OBS_NAME
from tt_deploy.tasks.env import EnvStep, TaskEnv

log = logging.getLogger(__name__)


def to_torch(step: EnvStep) -> dict[str, torch.Tensor]:
    """EnvStep inputs + task_obs (+ training extras) as torch tensors sharing memory where possible."""
    obs = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in step.inputs.items()}
    obs[TASK_OBS_NAME] = torch.from_numpy(np.ascontiguousarray(step.task_obs, dtype=np.float32))
    obs.update({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in step.extras.items()})
    return obs


def atomic_torch_save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_training_state(path: Path) -> dict:
    """A `*_state.pt` for --resume, unpickled with weights_only=True (a crafted file cannot run code);
    CheckpointError in one line for a corrupt, truncated or foreign file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        text = str(exc).strip()
        if "Weights only load failed" in text:
            reason = "not a torch file, or it holds objects weights-only loading refuses; nothing in it was run"
        else:
            reason = (text.splitlines()[0][:120] if text else "") or type(exc).__name__
        raise CheckpointError(
            f"--resume: {path} is not a readable training state ({reason}); delete it to start over, "
            "or point --out at another run"
        ) from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"--resume: {path} holds a {type(state).__name__}, not a training state; delete it")
    return state


@dataclass
class TrainStats:
    """Rolling statistics of finished episodes and throughput, for logs and the progress bar."""

    window: int = 200
    returns: deque = field(default_factory=lambda: deque(maxlen=200))
    lengths: deque = field(default_factory=lambda: deque(maxlen=200))
    success: deque = field(default_factory=lambda: deque(maxlen=200))
    fell: deque = field(default_factory=lambda: deque(maxlen=200))

    def add(self, episode: dict[str, np.ndarray]) -> None:
        self.returns.extend(episode["return"].tolist())
        self.lengths.extend(episode["length"].tolist())
        self.success.extend(episode["success"].tolist())
        self.fell.extend(episode["fell"].tolist())

    def summary(self) -> dict[str, float]:
        def mean(d):
            return float(np.mean(d)) if d else float("nan")

        return {"ep_return": mean(self.returns), "ep_length": mean(self.lengths),
                "success_rate": mean(self.success), "fall_rate": mean(self.fell)}  # fmt: skip


class Stopper:
    """Turns SIGINT/SIGTERM into a graceful stop at the end of the current iteration."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.requested:  # second signal: stop now
            raise KeyboardInterrupt
        self.requested = True
        log.warning("signal %d: stopping after this iteration (checkpoint follows)", signum)

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


class OnPolicyRunner:
    """PPO on a TaskEnv. `save_fn(runner, tag)` writes the method-specific checkpoint files."""

    def __init__(self, env: TaskEnv, policy: ActorCritic, ppo_cfg: PPOConfig, out_dir: Path, *, seed: int = 0,
                 checkpoint_every: int = 20, save_fn: Callable | None = None, extra_log: Callable | None = None,
                 algorithm: Callable[..., PPO] = PPO):
        self.env, self.policy, self.cfg = env, policy, ppo_cfg
        self.ppo = algorithm(policy, ppo_cfg, seed=seed)
        self.out_dir = Path(out_dir)
        self.checkpoint_every = checkpoint_every
        self.save_fn = save_fn
        self.extra_log = extra_log
        self.iteration = 0
        self.env_steps = 0
        self.wall_seconds = 0.0
        self.stats = TrainStats()
        self.storage = RolloutStorage(ppo_cfg.horizon, env.num_envs, policy.action_dim)
        self._obs: dict[str, torch.Tensor] | None = None
        self.run_log = RunLog(self.out_dir)

    # --- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"policy": self.policy.state_dict(), "ppo": self.ppo.state_dict(), "iteration": self.iteration,
                "env_steps": self.env_steps, "wall_seconds": self.wall_seconds}

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.ppo.load_state_dict(state["ppo"])
        self.iteration, self.env_steps = int(state["iteration"]), int(state["env_steps"])
        self.wall_seconds = float(state["wall_seconds"])

    def save(self, tag: str = "last") -> None:
        """Checkpoint at an iteration boundary: learner state, and (for `last`) the environments
        mid-episode, so `resume` continues bit-exactly."""
        ckpt = self.out_dir / "checkpoints"
        if tag == "last" and self._obs is not None:
            arrays, meta = env_state(self.env)
            arrays.update({f"obs/{k}": v.numpy() for k, v in self._obs.items()})
            meta["iteration"] = self.iteration
            save_arrays(ckpt / "last_env", arrays, meta)
        atomic_torch_save(self.state_dict(), ckpt / f"{tag}_state.pt")
        if self.save_fn is not None:
            self.save_fn(self, tag)

    def resume(self) -> bool:
        """Load the last checkpoint; with its environment snapshot the run continues exactly as if
        it had never stopped, without one (older checkpoints) the episodes restart."""
        path = self.out_dir / "checkpoints" / "last_state.pt"
        if not path.is_file():
            return False
        state = load_training_state(path)
        try:
            self.load_state_dict(state)
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise CheckpointError(
                f"--resume: {path} does not match this run's model or settings ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); point --out at a new run dir"
            ) from exc
        snap = load_arrays(self.out_dir / "checkpoints" / "last_env")
        if snap is not None and snap[1].get("iteration") == self.iteration:
            arrays, meta = snap
            self.env.reset()
            load_env_state(self.env, arrays, meta)
            self._obs = {k[4:]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("obs/")}
            log.info("restored %d environments mid-episode", self.env.num_envs)
        log.info("resumed from %s at iteration %d (%d env steps)", path, self.iteration, self.env_steps)
        return True

    # --- loop --------------------------------------------------------------------------------
    def collect(self) -> dict[str, float]:
        """One horizon of experience into storage; returns timing split."""
        t_policy = t_env = 0.0
        if self._obs is None:
            self._obs = to_torch(self.env.reset())
        self.storage.clear()
        self.policy.eval()
        for _ in range(self.cfg.horizon):
            t0 = time.perf_counter()
            actions, log_probs, values, _ = self.ppo.act(self._obs)
            with torch.no_grad():
                env_actions = self.policy.env_action(self._obs, actions)
            t1 = time.perf_counter()
            step = self.env.step(env_actions.numpy())
            t2 = time.perf_counter()
            reward = torch.from_numpy(step.reward.astype(np.float32))
            timeout = torch.from_numpy(step.info["timeout"].astype(np.float32))
            reward = reward + self.cfg.gamma * values * timeout
            dones = torch.from_numpy(step.done.astype(np.float32))
            self.storage.add(self._obs, actions, log_probs, values, reward, dones)
            self.stats.add(step.info["episode"])
            self._obs = to_torch(step)
            t_policy += t1 - t0
            t_env += t2 - t1
        with torch.no_grad():
            last_values = self.policy.value(self._obs)
        self.storage.compute_gae(last_values, self.cfg.gamma, self.cfg.lam)
        return {"t_policy": t_policy, "t_env": t_env}

    def learn(self, total_steps: int, progress: Callable[[dict], None] | None = None) -> dict:
        """Train until `total_steps` env steps (counting resumed ones); checkpoint on the way and at the end."""
        with Stopper() as stopper:
            while self.env_steps < total_steps and not stopper.requested:
                t0 = time.perf_counter()
                timing = self.collect()
                t1 = time.perf_counter()
                self.policy.update_normalizers(self._flat_obs())
                self.policy.train()
                losses = self.ppo.update(self.storage, train_actor=self.iteration >= self.ppo.cfg.critic_warmup)
                t2 = time.perf_counter()
                self.iteration += 1
                n = self.cfg.horizon * self.env.num_envs
                self.env_steps += n
                self.wall_seconds += t2 - t0
                row = {"iteration": self.iteration, "env_steps": self.env_steps, "wall_seconds": round(self.wall_seconds, 2),
                       "steps_per_s": n / (t2 - t0), "t_collect": t1 - t0, "t_update": t2 - t1,
                       **timing, **losses, **self.stats.summary()}  # fmt: skip
                # profile: share of the step spent in the policy network (the BFM for BFM-based
                # methods): its forward while collecting + its forward/backward in the update
                row["policy_frac"] = (timing["t_policy"] + losses["t_update_actor"]) / (t2 - t0)
                if self.extra_log is not None:
                    row.update(self.extra_log(self))
                self.run_log(row)
                if progress is not None:
                    progress(row)
                if self.iteration % self.checkpoint_every == 0:
                    self.save("last")
        self.save("last")
        return {"iterations": self.iteration, "env_steps": self.env_steps, "wall_seconds": self.wall_seconds,
                "interrupted": stopper.requested}

    def _flat_obs(self) -> dict[str, torch.Tensor]:
        n = self.storage.step * self.env.num_envs
        return {k: v[: self.storage.step].reshape(n, *v.shape[2:]) for k, v in self.storage.obs.items()}
