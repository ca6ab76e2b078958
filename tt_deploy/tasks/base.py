"""The `Task` interface: goals, task observation, reward and success of one skill, for N envs.

A task is pure numpy and vectorised over environments (no torch, no Python loop over envs), so
the same code serves training, evaluation and the sim2sim harness. The environment layer
(`tasks.env.TaskEnv`) calls, per control step and in this order:

    reward(prev_state, state, sim)   -> (N,) reward of the step just taken (goal in force then)
    update(prev_state, state, sim, rng)  advance step counters, success bookkeeping, goal resampling
    terminate(prev_state, state, sim) -> (N,) task-specific early ends (e.g. long-jump landing)
    observe(state, sim)              -> (N, obs_dim) float32 task observation for the next action

and `reset(env_ids, sim, rng)` after the simulator has reset those envs. Formulas follow
/work/shared/OBS_SPEC.md ("Task observations and rewards") exactly, quirks included.
"""

from __future__ import annotations

import abc
import logging
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from tt_deploy import spec
from tt_deploy.errors import InputError
from tt_deploy.sim.rotations import heading_angle, heading_quat_inv, quat_rotate

if TYPE_CHECKING:  # observations.py is optional at import time of the task formulas
    from tt_deploy.sim.base import BodyState, Simulator

log = logging.getLogger(__name__)

PELVIS_ID = spec.BODY_NAMES.index("Pelvis")
HEAD_ID = spec.BODY_NAMES.index("Head")
CURRENT_POSE_DIM = 6  # raw world xyz of pelvis and head


# --- small shared formulas ---------------------------------------------------------------------
def root_velocity(prev_state: BodyState, state: BodyState, dt: float = spec.CONTROL_DT) -> np.ndarray:
    """(N, 3) m/s root velocity as the finite difference over one control step (ref)."""
    return (state.pos[:, PELVIS_ID] - prev_state.pos[:, PELVIS_ID]) / dt


def to_heading_frame(state: BodyState, vec: np.ndarray) -> np.ndarray:
    """Rotate world vectors (N, 3) by Hinv of the root (yaw removed only), (N, 3)."""
    return quat_rotate(heading_quat_inv(state.quat[:, PELVIS_ID]), vec)


def root_heading(state: BodyState) -> np.ndarray:
    """(N,) heading h (rad) of the root's local x-axis on the ground plane."""
    return heading_angle(state.quat[:, PELVIS_ID])


def current_pose_features(state: BodyState) -> np.ndarray:
    """(N, 6) raw world xyz of pelvis then head (the optional +6 task-obs features)."""
    return np.concatenate([state.pos[:, PELVIS_ID], state.pos[:, HEAD_ID]], axis=-1)


def unit_from_angle(theta: np.ndarray) -> np.ndarray:
    """(N,) angles (rad) -> (N, 2) unit vectors (cos, sin)."""
    return np.stack([np.cos(theta), np.sin(theta)], axis=-1)


def wrap_angle(theta: np.ndarray) -> np.ndarray:
    """Map angles to [-pi, pi)."""
    return (theta + np.pi) % (2 * np.pi) - np.pi


class PhaseTracker:
    """Per-env phase index of a simple forward-only state machine (e.g. approach -> strike).

    Phases only advance (a struck target does not send the character back to approaching), which
    keeps a prior prompt from flickering between phases on noisy distances.
    """

    def __init__(self, num_envs: int, names: tuple[str, ...]):
        self.names = names
        self.phase = np.zeros(num_envs, dtype=np.int64)

    def reset(self, env_ids: np.ndarray) -> None:
        self.phase[env_ids] = 0

    def advance(self, mask: np.ndarray, to: str) -> None:
        """Move envs where mask is True to phase `to` if they are not already past it."""
        idx = self.names.index(to)
        self.phase[mask] = np.maximum(self.phase[mask], idx)

    def is_in(self, name: str) -> np.ndarray:
        return self.phase == self.names.index(name)


class Task(abc.ABC):
    """One skill's goals, task observation, reward and success rule for N environments.

    Subclasses set `name` (registry name), `feature_dim` (task features without the optional
    current pose), `objects` (scene objects the simulator must provide) and
    `fall_voids_success` (whether a fall cancels an episode's success). Per-env state lives in
    arrays of length N; `progress` counts control steps since the episode's reset.
    """

    name: ClassVar[str]
    feature_dim: ClassVar[int]
    objects: ClassVar[tuple[str, ...]] = ()
    fall_voids_success: ClassVar[bool] = True

    def __init__(self, num_envs: int, *, current_pose: bool = False):
        if int(num_envs) <= 0:
            raise InputError(f"num_envs must be > 0, got {num_envs}")
        self.num_envs = int(num_envs)
        self.current_pose = bool(current_pose)
        self.progress = np.zeros(self.num_envs, dtype=np.int64)
        self._failed = np.zeros(self.num_envs, dtype=bool)
        self._measured = np.zeros(self.num_envs, dtype=np.int64)

    @property
    def obs_dim(self) -> int:
        """Task-observation width: features (+6 with current_pose)."""
        return self.feature_dim + (CURRENT_POSE_DIM if self.current_pose else 0)

    # --- lifecycle ----------------------------------------------------------------------------
    def reset(self, env_ids: np.ndarray, sim: Simulator, rng: np.random.Generator) -> None:
        """Start new episodes in env_ids (after the simulator reset them): clear counters, sample goals."""
        env_ids = np.asarray(env_ids, dtype=np.int64)
        self.progress[env_ids] = 0
        self._failed[env_ids] = False
        self._measured[env_ids] = 0
        if env_ids.size:
            self._reset_goals(env_ids, sim.body_state(), sim, rng)

    def update(self, prev_state: BodyState, state: BodyState, sim: Simulator,
               rng: np.random.Generator) -> None:
        """After a control step: count it, book success, resample goals that are due."""
        self.progress += 1
        self._track_success(prev_state, state, sim)
        self._resample_due(state, sim, rng)

    def observe(self, state: BodyState, sim: Simulator) -> np.ndarray:
        """(N, obs_dim) float32 task observation (features, then pelvis+head xyz if current_pose)."""
        feats = self.features(state, sim)
        if self.current_pose:
            feats = np.concatenate([feats, current_pose_features(state)], axis=-1)
        return feats.astype(np.float32)

    def success(self) -> np.ndarray:
        """(N,) bool: has the current episode succeeded so far (read it when the episode ends)."""
        return (self._measured > 0) & ~self._failed

    def terminate(self, prev_state: BodyState, state: BodyState, sim: Simulator) -> np.ndarray:
        """(N,) bool task-specific early termination; none by default."""
        return np.zeros(self.num_envs, dtype=bool)

    def prior_targets(self, state: BodyState, sim: Simulator):
        """User-defined prior tokens (a `TargetPoses` for joint conditioning), or None = all hidden."""
        return None

    def teacher(self, state: BodyState, sim: Simulator) -> tuple[np.ndarray, ...] | None:
        """Optional supervision for training only: ((N, 69) actions, (N, 69) weights[, (N,) drive]) for
        the state the policy is about to act on (called once per control step and at reset), or None.
        `drive` marks envs where the teacher's whole action row is executed instead of the policy's
        (the trainer leaves those samples out of the policy-gradient loss and only clones them)."""
        return None

    # --- hooks --------------------------------------------------------------------------------
    @abc.abstractmethod
    def features(self, state: BodyState, sim: Simulator) -> np.ndarray:
        """(N, feature_dim) float64 task features (OBS_SPEC formulas)."""

    @abc.abstractmethod
    def reward(self, prev_state: BodyState, state: BodyState, sim: Simulator) -> np.ndarray:
        """(N,) reward of the step prev_state -> state (one control step apart)."""

    @abc.abstractmethod
    def _reset_goals(self, env_ids: np.ndarray, state: BodyState, sim: Simulator,
                     rng: np.random.Generator) -> None:
        """Sample the episode's first goals for env_ids; state is the post-reset state (all N envs)."""

    def _track_success(self, prev_state: BodyState, state: BodyState, sim: Simulator) -> None:  # noqa: B027
        """Default: nothing measured (optional hook; subclasses with a success rule override)."""

    def _resample_due(self, state: BodyState, sim: Simulator, rng: np.random.Generator) -> None:  # noqa: B027
        """Default: goals stay fixed for the whole episode (optional hook)."""


class GraceTask(Task):
    """A task whose success is 'after a grace period following each new goal, the rule always holds'.

    `_ok_now` says whether the rule holds this step; steps inside the grace window are not
    measured. An episode succeeds if at least one step was measured and none failed.
    """

    grace_steps: ClassVar[int] = 60

    def __init__(self, num_envs: int, *, current_pose: bool = False):
        super().__init__(num_envs, current_pose=current_pose)
        self.measure_from = np.zeros(self.num_envs, dtype=np.int64)  # progress index where measuring starts

    def _start_grace(self, env_ids: np.ndarray) -> None:
        self.measure_from[env_ids] = self.progress[env_ids] + self.grace_steps

    @abc.abstractmethod
    def _ok_now(self, prev_state: BodyState, state: BodyState, sim: Simulator) -> np.ndarray:
        """(N,) bool: does the success rule hold at this step."""

    def _track_success(self, prev_state, state, sim) -> None:
        measuring = self.progress >= self.measure_from
        ok = self._ok_now(prev_state, state, sim)
        self._measured += measuring
        self._failed |= measuring & ~ok
