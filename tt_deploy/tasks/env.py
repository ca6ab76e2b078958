"""`TaskEnv`: the one environment layer shared by training, evaluation and sim2sim.

Per control step it clips actions to [-1, 1], steps the simulator, asks the task for reward,
success bookkeeping and task terminations, applies the fall rule and the episode timeout,
resets finished envs in place (auto-reset), and builds the next BFM input dict
(`tt_deploy.obs.inputs.bfm_inputs`, with the task's prior prompt if it has one) plus the
task observation. Everything is vectorised over envs; only the ids of finished envs are gathered.

Fall rule (reference, ProtoMotions/ASE `compute_humanoid_reset`): an env has fallen when some
non-foot body (anything but ankles and toes) has a contact force above `contact_threshold` AND some
non-foot body is lower than its termination height above the ground under it (0.15 m; Head 0.3 m);
it is not checked during the first `fall_grace_steps` steps of an episode (the reference skips the
first step, we default to 2 so a reset pose can settle).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from tt_deploy import spec
from tt_deploy.errors import InputError
from tt_deploy.obs.inputs import PoseHistory, bfm_inputs
from tt_deploy.obs.state import BodyState
from tt_deploy.sim.base import NoisyObservations, ReportsInstability, Simulator
from tt_deploy.sim.perturbations import add_obs_noise
from tt_deploy.tasks.base import (
    HEAD_TERMINATION_HEIGHT,
    NON_FOOT,
    PELVIS_ID,
    TERMINATION_HEIGHT,
    Task,
    low_non_foot,
    termination_heights,
)
from tt_deploy.tasks.random import EnvRandom

log = logging.getLogger(__name__)


@dataclass
class EnvStep:
    """What reset/step return.

    inputs: BFM input dict (graph input names, float32 / bool masks) for the NEXT action;
    task_obs (N, obs_dim) float32; reward (N,) float32 of the step just taken (0 after reset);
    done (N,) bool episodes that ended this step (already auto-reset: inputs show the new episode);
    info: per-env (N,) arrays "fell", "timeout", "task_terminated", "unstable", "success" (valid where
    done) and "episode": dict of arrays over the finished envs only ("env_ids", "success", "fell",
    "timeout", "return", "length");
    extras: training-only arrays an env subclass adds (BFM pretraining's labels,
    the pretraining lab's env in tt_deploy/pretrain/), never fed to a deployed graph; empty here.
    """

    inputs: dict[str, np.ndarray]
    task_obs: np.ndarray
    reward: np.ndarray
    done: np.ndarray
    info: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)


def _copy_state(s: BodyState) -> BodyState:
    return BodyState(s.pos.copy(), s.quat.copy(), s.lin_vel.copy(), s.ang_vel.copy())


class TaskEnv:
    """N envs of `task` in `sim` with auto-reset; see the module docstring for the rules.

    episode_seconds: timeout (s), in control steps of spec.CONTROL_DT; obs_noise: std of Gaussian
    noise (scalar or (N,) per env) added to the self observation ("obs") and the task observation
    (sensor noise; 0 = off); None = the simulator's per-env `obs_noise` (set by its Perturbation),
    or 0 if it has none.
    """

    def __init__(self, sim: Simulator, task: Task, *, episode_seconds: float = 10.0, seed: int = 0,
                 obs_noise=None, fall_grace_steps: int = 2, termination_height: float = TERMINATION_HEIGHT,
                 head_termination_height: float = HEAD_TERMINATION_HEIGHT, contact_threshold: float = 1.0):
        if task.num_envs != sim.num_envs:
            raise InputError(f"task has {task.num_envs} envs but the simulator has {sim.num_envs}")
        obs_noise = None if obs_noise is None else np.asarray(obs_noise, dtype=np.float64)
        if episode_seconds <= 0 or (obs_noise is not None and (
                np.any(obs_noise < 0) or obs_noise.shape not in ((), (sim.num_envs,)))):
            raise InputError(f"episode_seconds must be > 0 and obs_noise >= 0 (scalar or ({sim.num_envs},)), "
                             f"got {episode_seconds}, {obs_noise}")
        for obj in task.objects:
            try:
                sim.object_state(obj)
            except NotImplementedError:
                raise InputError(f"task {task.name!r} needs scene object {obj!r}: build the simulator with "
                                 f"objects=({obj!r},)") from None
        self.sim, self.task = sim, task
        self._reports_instability = isinstance(sim, ReportsInstability)  # optional abilities, checked once
        self._noisy_sim = isinstance(sim, NoisyObservations)
        self.num_envs = sim.num_envs
        self.max_steps = max(1, int(round(episode_seconds / spec.CONTROL_DT)))
        self._obs_noise = obs_noise
        self.fall_grace_steps = int(fall_grace_steps)
        self.contact_threshold = float(contact_threshold)
        self.termination_heights = termination_heights(termination_height, head_termination_height)
        self.rng = np.random.default_rng(seed)  # observation noise: all envs every step
        self.goal_rng = EnvRandom(self.num_envs, seed)  # goals: one stream per env (tasks/random.py)
        self.history = PoseHistory(self.num_envs)
        self.steps = np.zeros(self.num_envs, dtype=np.int64)
        self.returns = np.zeros(self.num_envs)
        self._prev: BodyState | None = None

    @property
    def obs_noise(self) -> np.ndarray:
        """Observation-noise std in force: scalar or (N,) (the simulator's perturbation if not overridden)."""
        if self._obs_noise is not None:
            return self._obs_noise
        return np.asarray(self.sim.obs_noise if self._noisy_sim else 0.0, dtype=np.float64)

    # --- public API ---------------------------------------------------------------------------
    def reset(self) -> EnvStep:
        """Reset every env; returns the first inputs with zero reward and no dones."""
        all_ids = np.arange(self.num_envs)
        self._reset_envs(all_ids)
        state = self.sim.body_state()
        n = self.num_envs
        info = {"fell": np.zeros(n, bool), "timeout": np.zeros(n, bool), "task_terminated": np.zeros(n, bool),
                "unstable": np.zeros(n, bool), "success": np.zeros(n, bool), "episode": self._episode_info(
                    all_ids[:0], np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool))}
        for key in ("", *(f"{name}_" for name in self.task.extra_books)):
            info["episode"][f"{key}segments"] = info["episode"][f"{key}segments_passed"] = np.zeros(0, dtype=np.int64)
        return self._observe(state, np.zeros(n, np.float32), np.zeros(n, bool), info)

    def step(self, actions: np.ndarray) -> EnvStep:
        """Apply (N, 69) actions (clipped to [-1, 1]) for one control step."""
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs, spec.ACTION_DIM):
            raise InputError(f"actions: expected shape ({self.num_envs}, {spec.ACTION_DIM}), got {actions.shape}")
        if self._prev is None:
            raise InputError("call reset() before step()")
        actions = np.clip(np.nan_to_num(actions, nan=0.0), -spec.ACTION_CLAMP, spec.ACTION_CLAMP)
        self.sim.step(actions)
        prev, state = self._prev, self.sim.body_state()

        reward = self.task.reward(prev, state, self.sim)
        self.task.update(prev, state, self.sim, self.goal_rng)
        self.steps += 1
        unstable = self._unstable()
        reward = np.where(unstable, 0.0, np.nan_to_num(reward, nan=0.0, posinf=0.0, neginf=0.0))
        self.returns += reward
        fell = self.fallen(state) & ~unstable
        task_term = self.task.terminate(prev, state, self.sim) & ~unstable
        terminated = fell | task_term | unstable
        timeout = (self.steps >= self.max_steps) & ~terminated
        done = terminated | timeout
        success = self.task.success() & ~(fell & self.task.fall_voids_success) & ~unstable
        info = {"fell": fell, "timeout": timeout, "task_terminated": task_term, "unstable": unstable,
                "success": success & done}

        done_ids = np.flatnonzero(done)
        info["episode"] = self._episode_info(done_ids, success, fell, timeout)
        info["episode"]["segments"], info["episode"]["segments_passed"] = self.task.end_episode(
            done_ids, unstable[done_ids])
        for name, book in self.task.extra_books.items():
            info["episode"][f"{name}_segments"] = book.total[done_ids].copy()
            info["episode"][f"{name}_segments_passed"] = book.passed[done_ids].copy()
        if done_ids.size:
            self._reset_envs(done_ids)
            state = self.sim.body_state()
        return self._observe(state, reward.astype(np.float32), done, info)

    def fallen(self, state: BodyState) -> np.ndarray:
        """(N,) bool: the reference fall rule (non-foot contact AND a non-foot body too low), after the grace."""
        forces = self.sim.contact_forces()
        contact = np.any((forces > self.contact_threshold) & NON_FOOT, axis=-1)
        low = low_non_foot(state, self.sim, self.termination_heights)
        return contact & low & (self.steps > self.fall_grace_steps)

    # --- internals ----------------------------------------------------------------------------
    def _unstable(self) -> np.ndarray:
        """(N,) bool envs the simulator flagged as numerically unstable (and reset) this step."""
        if not self._reports_instability:
            return np.zeros(self.num_envs, dtype=bool)
        flags = np.asarray(self.sim.unstable, dtype=bool)
        if flags.any():
            log.warning("simulator reported %d unstable env(s): %s", int(flags.sum()), np.flatnonzero(flags)[:8])
        return flags

    def _reset_envs(self, env_ids: np.ndarray) -> None:
        self.sim.reset(env_ids, **self._start_state(env_ids))
        self.task.reset(env_ids, self.sim, self.goal_rng)
        state = self.sim.body_state()
        self.history.reset(env_ids, state, self._ground(state))
        self.steps[env_ids] = 0
        self.returns[env_ids] = 0.0

    def _start_state(self, env_ids: np.ndarray) -> dict[str, np.ndarray]:
        """Keyword arguments of `sim.reset` for env_ids' new episodes (root_lin_vel, ...); {} = the standing pose.
        A hook for envs whose episodes start moving (the jump expert's run-up speeds)."""
        return {}

    def _episode_info(self, ids, success, fell, timeout) -> dict[str, np.ndarray]:
        return {"env_ids": ids, "success": success[ids], "fell": fell[ids], "timeout": timeout[ids],
                "return": self.returns[ids].copy(), "length": self.steps[ids].copy()}

    def _ground(self, state: BodyState) -> np.ndarray:
        return self.sim.ground_height(state.pos[:, PELVIS_ID, :2])

    def _observe(self, state: BodyState, reward, done, info) -> EnvStep:
        ground = self._ground(state)
        inputs = bfm_inputs(state, ground, self.history, targets=self.task.prior_targets(state, self.sim))
        self.history.push(state, ground)
        task_obs = self.task.observe(state, self.sim)
        if np.any(self.obs_noise > 0):
            inputs["obs"] = self._noisy(inputs["obs"])
            task_obs = self._noisy(task_obs)
        self._prev = _copy_state(state)
        return EnvStep(inputs, task_obs, reward, done, info)

    def _noisy(self, x: np.ndarray) -> np.ndarray:
        return add_obs_noise(x, self.obs_noise, self.rng).astype(np.float32)
