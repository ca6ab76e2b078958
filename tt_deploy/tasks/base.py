"""The `Task` interface: goals, task observation, reward and success of one skill, for N envs.

A task is pure numpy and vectorised over environments (no torch, no Python loop over envs), so
the same code serves training, evaluation and the sim2sim harness. The environment layer
(`tasks.env.TaskEnv`) calls, per control step and in this order:

    reward(prev_state, state, sim)   -> (N,) reward of the step just taken (goal in force then)
    update(prev_state, state, sim, rng)  advance step counters, success bookkeeping, goal resampling
    terminate(prev_state, state, sim) -> (N,) task-specific early ends (e.g. long-jump landing)
    observe(state, sim)              -> (N, obs_dim) float32 task observation for the next action

and `reset(env_ids, sim, rng)` after the simulator has reset those envs. Formulas follow
the design reference OBS_SPEC.md ("Task observations and rewards") exactly, quirks included.
"""

from __future__ import annotations

import abc
import logging
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from tt_deploy import spec
from tt_deploy.errors import InputError
from tt_deploy.obs.rotations import heading_angle, heading_quat_inv, quat_rotate

if TYPE_CHECKING:  # observations.py is optional at import time of the task formulas
    from tt_deploy.obs.state import BodyState
    from tt_deploy.sim.base import Simulator

log = logging.getLogger(__name__)

PELVIS_ID = spec.BODY_NAMES.index("Pelvis")
HEAD_ID = spec.BODY_NAMES.index("Head")
CURRENT_POSE_DIM = 6  # raw world xyz of pelvis and head
# ref termination heights (m above the ground under the body): every non-foot body, the head higher
TERMINATION_HEIGHT, HEAD_TERMINATION_HEIGHT = 0.15, 0.3
NON_FOOT = ~np.isin(np.arange(spec.NUM_BODIES), [spec.BODY_NAMES.index(b) for b in spec.FOOT_BODIES])


def termination_heights(body: float = TERMINATION_HEIGHT, head: float = HEAD_TERMINATION_HEIGHT) -> np.ndarray:
    """(24,) per-body termination heights (m): `body` everywhere, `head` for the Head."""
    h = np.full(spec.NUM_BODIES, float(body))
    h[HEAD_ID] = float(head)
    return h


def low_non_foot(state: BodyState, sim: Simulator, heights: np.ndarray) -> np.ndarray:
    """(N,) bool: some non-foot body is below its termination height above the ground under it."""
    height = state.pos[..., 2] - sim.ground_height(state.pos[..., :2])
    return np.any((height < heights) & NON_FOOT, axis=-1)


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


CURRENT_POSE_NAMES = tuple(f"{body}_{a} [m]: world {a} of the {body}" for body in ("pelvis", "head") for a in "xyz")


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


class SegmentBook:
    """Per-goal-segment pass/fail bookkeeping of one success rule, per env.

    Open segment: `measured` steps and `failed`; closed this episode: `total` and `passed`.
    """

    def __init__(self, num_envs: int):
        self.measured = np.zeros(num_envs, dtype=np.int64)
        self.failed = np.zeros(num_envs, dtype=bool)
        self.total = np.zeros(num_envs, dtype=np.int64)
        self.passed = np.zeros(num_envs, dtype=np.int64)

    def reset(self, env_ids: np.ndarray) -> None:
        self.measured[env_ids] = 0
        self.failed[env_ids] = False
        self.total[env_ids] = 0
        self.passed[env_ids] = 0

    def measure(self, measuring: np.ndarray, ok: np.ndarray) -> None:
        self.measured += measuring
        self.failed |= measuring & ~ok

    def close(self, env_ids: np.ndarray) -> None:
        """Book the open segment (if any step of it was measured) and open a new one."""
        counted = self.measured[env_ids] > 0
        self.total[env_ids] += counted
        self.passed[env_ids] += counted & ~self.failed[env_ids]
        self.measured[env_ids] = 0
        self.failed[env_ids] = False


class Task(abc.ABC):
    """One skill's goals, task observation, reward and success rule for N environments.

    Subclasses set `name` (registry name), `feature_dim` (task features without the optional
    current pose), `objects` (scene objects the simulator must provide) and
    `fall_voids_success` (whether a fall cancels an episode's success). Per-env state lives in
    arrays of length N; `progress` counts control steps since the episode's reset.
    """

    name: ClassVar[str]
    feature_dim: ClassVar[int]
    # one "name [unit]: formula" per feature (Hinv = the inverse of the root's heading rotation, yaw only);
    # exported into skill.json `task_obs_features` so a controller can build the observation from the bundle
    feature_names: ClassVar[tuple[str, ...]]
    objects: ClassVar[tuple[str, ...]] = ()
    fall_voids_success: ClassVar[bool] = True
    goal_segments: ClassVar[bool] = False  # True: each goal is its own success segment (GraceTask)

    def __init__(self, num_envs: int, *, current_pose: bool = False):
        if int(num_envs) <= 0:
            raise InputError(f"num_envs must be > 0, got {num_envs}")
        self.num_envs = int(num_envs)
        self.current_pose = bool(current_pose)
        self.progress = np.zeros(self.num_envs, dtype=np.int64)
        self._failed = np.zeros(self.num_envs, dtype=bool)
        self._measured = np.zeros(self.num_envs, dtype=np.int64)
        # the reference's per-goal bookkeeping (docs/tasks.md "Evaluation protocol"): the open
        # segment's measured steps and failure, and the episode's closed segments
        self.segments = SegmentBook(self.num_envs)
        self.prior_prompt = None  # a tt_deploy.obs.priors.Prior when the task prompts the BFM

    @property
    def obs_names(self) -> tuple[str, ...]:
        """One "name [unit]: formula" per task-observation column (features, then the current pose)."""
        return self.feature_names + (CURRENT_POSE_NAMES if self.current_pose else ())

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
        for book in (self.segments, *self.extra_books.values()):
            book.reset(env_ids)
        if env_ids.size:
            state = sim.body_state()
            self._reset_goals(env_ids, state, sim, rng)
            if self.prior_prompt is not None:
                self.prior_prompt.reset(env_ids, state)

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

    # --- per-goal segments (the reference's success rate) -------------------------------------
    def _close_segments(self, env_ids: np.ndarray) -> None:
        """Book the open goal segment of env_ids (if any step of it was measured) and open a new one.

        Ref (steering/common.py, direction_facing/common.py, reach/common.py `reset_*_task`): a
        segment counts when measurement had started in it; it passes when no measured step failed.
        """
        env_ids = np.asarray(env_ids, dtype=np.int64)
        for book in (self.segments, *self.extra_books.values()):
            book.close(env_ids)

    def end_episode(self, env_ids: np.ndarray, unstable: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Close the episodes of env_ids (before they reset): ((K,) goal segments, (K,) passed ones).

        Tasks with one goal per episode (strike, long jump: `goal_segments` False) count one segment,
        passed = `success()` at the last step (ref strike/long_jump `reset_task`). An env the simulator
        flagged unstable fails its open segment.
        """
        ids = np.asarray(env_ids, dtype=np.int64)
        bad = np.zeros(ids.size, dtype=bool) if unstable is None else np.asarray(unstable, dtype=bool)
        if self.goal_segments:
            for book in (self.segments, *self.extra_books.values()):
                book.failed[ids] |= bad
            self._close_segments(ids)
        else:
            self.segments.total[ids] = self.progress[ids] > 0
            self.segments.passed[ids] = (self.progress[ids] > 0) & self.success()[ids] & ~bad
        return self.segments.total[ids].copy(), self.segments.passed[ids].copy()

    @property
    def extra_books(self) -> dict[str, SegmentBook]:
        """Extra success rules (ours), reported beside the reference's, never instead of it; none by default."""
        return {}

    @property
    def seg_total(self) -> np.ndarray:
        """(N,) goal segments closed this episode (the reference rule)."""
        return self.segments.total

    @property
    def seg_passed(self) -> np.ndarray:
        """(N,) of which passed."""
        return self.segments.passed

    def _measure_segment(self, measuring: np.ndarray, ok: np.ndarray) -> None:
        """Book one control step into the open segments: measured where `measuring`, failed where not ok."""
        self.segments.measure(measuring, ok)

    def terminate(self, prev_state: BodyState, state: BodyState, sim: Simulator) -> np.ndarray:
        """(N,) bool task-specific early termination; none by default."""
        return np.zeros(self.num_envs, dtype=bool)

    def prior_targets(self, state: BodyState, sim: Simulator):
        """The skill's prior prompt (a `TargetPoses`, tt_deploy.obs.priors) or None = all hidden."""
        if self.prior_prompt is None:
            return None
        return self.prior_prompt(state, self.prior_goal(state, sim))

    def prior_goal(self, state: BodyState, sim: Simulator) -> dict[str, np.ndarray]:
        """The goal arrays the skill's prior reads (tt_deploy.obs.priors names them per prior)."""
        raise NotImplementedError(f"task {self.name!r} has no prior goal")

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
    goal_segments = True

    def __init__(self, num_envs: int, *, current_pose: bool = False):
        super().__init__(num_envs, current_pose=current_pose)
        self.measure_from = np.zeros(self.num_envs, dtype=np.int64)  # progress index where measuring starts

    def _start_grace(self, env_ids: np.ndarray) -> None:
        """A new goal: the previous goal's segment is booked, the next one is measured after the grace."""
        self._close_segments(env_ids)
        self.measure_from[env_ids] = self.progress[env_ids] + self.grace_steps

    @abc.abstractmethod
    def _ok_now(self, prev_state: BodyState, state: BodyState, sim: Simulator) -> np.ndarray:
        """(N,) bool: does the success rule hold at this step."""

    def _track_success(self, prev_state, state, sim) -> None:
        measuring = self.progress >= self.measure_from
        ok = self._ok_now(prev_state, state, sim)
        self._measured += measuring
        self._failed |= measuring & ~ok
        self._measure_segment(measuring, ok)
        for name, extra_ok in self._extra_ok(prev_state, state, sim).items():
            self.extra_books[name].measure(measuring, extra_ok)

    def _extra_ok(self, prev_state, state, sim) -> dict[str, np.ndarray]:
        """(N,) bool per extra rule in `extra_books`, measured on the same steps as the reference rule."""
        return {}
