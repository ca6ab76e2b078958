"""The scripted long jump and its judge: what scripts/jump_probe.py searched, and what the jump expert refines.

A symmetric crouch-extend-tuck of PD targets (15 numbers, PARAMS) plus optional time-varying offsets (8 knots
over 1.4 s on hips, knees, ankles, toes, trunk and shoulders). Sign conventions as in gait_teacher.py: hip y < 0
swings the thigh forward, knee y > 0 flexes, ankle y > 0 points the toe down.

`JumpJudge` scores a jump as the reference long jump does (tasks/long_jump.py), with the jump line at the toes
at takeoff: landing is the first touch after a flight (by default two control steps with no contact at all), with a foot
past the line, more than 50 N of contact and no non-foot body touching (the flight's length in control steps is a
parameter, `takeoff_steps`); length = mean body x at landing minus
the line. A touch that is not such a landing scores its length minus 5 m. With `firm_landing` (the reference's
own rule, which ends a jump only at a step with more than 50 N), a foot-only touch under 50 N does not end the
jump: the first firm touch, or a non-foot touch, does.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tt_deploy import spec
from tt_deploy.errors import InputError
from tt_deploy.tasks.base import NON_FOOT
from tt_deploy.tasks.long_jump import FOOT_IDS, LANDING_FORCE

# name, low, high (rad, or s for the two lengths)
PARAMS = (("crouch_hip", -1.6, 0.0), ("crouch_knee", 0.0, 2.2), ("crouch_ankle", -0.8, 0.3),
          ("crouch_trunk", 0.0, 0.8), ("crouch_s", 0.1, 0.6),
          ("extend_hip", -0.6, 0.6), ("extend_knee", -0.1, 0.6), ("extend_ankle", 0.0, 1.0),
          ("extend_toe", -0.5, 0.5), ("extend_shoulder", -2.5, 0.5), ("extend_s", 0.05, 0.4),
          ("tuck_hip", -1.8, 0.0), ("extend_trunk", -0.3, 0.9), ("tuck_knee", 0.0, 2.2),
          ("tuck_shoulder", -2.5, 0.5))  # fmt: skip
SECONDS = 2.5  # a jump is over by then
MIN_FLIGHT = 0.3  # s: issue #33's flight for a long jump
CONTACT_N = 1.0  # N: a non-foot body touches the ground
MISSED = -5.0  # m: added to the length of a touch that is not a foot landing past the line
CHECKOUT = Path(__file__).parents[2]  # the pretraining lab runs from a source checkout (results/ is not packaged)
PROBE_FILE = CHECKOUT / "results" / "probes" / "jump_feasibility.json"


def script_path(path: str | Path) -> Path:
    """A script file as configured: relative paths are from the checkout root, so run.json stays portable."""
    path = Path(path)
    return path if path.is_absolute() else CHECKOUT / path


def _col(body: str, axis: str) -> list[int]:
    return [spec.JOINT_NAMES.index(f"{s}_{body}_{axis}") for s in ("L", "R")]


HIP, KNEE, ANKLE, TOE, SHOULDER = (_col(b, "y") for b in ("Hip", "Knee", "Ankle", "Toe", "Shoulder"))
TRUNK = [spec.JOINT_NAMES.index(f"{b}_y") for b in ("Torso", "Spine", "Chest")]
KNOT_GROUPS = (HIP, KNEE, ANKLE, TOE, TRUNK, SHOULDER)
KNOT_SECONDS = 1.4  # the knots span the crouch, push-off and flight; the last offset holds after


def targets(p: np.ndarray, t) -> np.ndarray:
    """(N, 69) PD targets (rad) of scripts p (N, 15) at time t s (a scalar, or (N,) per script)."""
    n = len(p)
    t = np.broadcast_to(np.asarray(t, np.float64), (n,))
    q = np.zeros((n, spec.NUM_DOF))
    crouch, extend = p[:, 4], p[:, 10]
    in_crouch, in_extend = t < crouch, (t >= crouch) & (t < crouch + extend)
    tuck = t >= crouch + extend
    for cols, a, b, c in ((HIP, 0, 5, 11), (KNEE, 1, 6, None), (ANKLE, 2, 7, None)):
        later = p[:, b] if c is None else np.where(tuck, p[:, c], p[:, b])
        q[:, cols] = np.where(in_crouch, p[:, a], later)[:, None]
    q[:, KNEE] = np.where(tuck, p[:, 13], q[:, KNEE][:, 0])[:, None]
    q[:, TOE] = np.where(in_extend, p[:, 8], 0.0)[:, None]
    q[:, SHOULDER] = np.where(in_crouch, 0.5, np.where(tuck, p[:, 14], p[:, 9]))[:, None]  # arms back, then forward
    q[:, TRUNK] = np.where(in_crouch, p[:, 3], np.where(in_extend, p[:, 12], 0.0))[:, None] / 3
    return q


def knot_targets(base: np.ndarray, offsets: np.ndarray, t) -> np.ndarray:
    """Scripts `base` (N, 15) plus offsets (N, K, groups) rad, linear between K knots over KNOT_SECONDS."""
    n, k = offsets.shape[:2]
    t = np.broadcast_to(np.asarray(t, np.float64), (n,))
    x = np.clip(t / KNOT_SECONDS, 0.0, 1.0) * (k - 1)
    i = np.minimum(x.astype(np.int64), k - 2)
    rows = np.arange(n)
    off = offsets[rows, i] + (x - i)[:, None] * (offsets[rows, i + 1] - offsets[rows, i])
    q = targets(base, t)
    for g, cols in enumerate(KNOT_GROUPS):
        q[:, cols] += off[:, g : g + 1]
    return q


@dataclass(frozen=True)
class ScriptedJump:
    """One refined script: `base` (15,) and knot `offsets` (K, groups), rad."""

    base: tuple[float, ...]
    offsets: tuple[tuple[float, ...], ...]
    source: str = ""  # where it came from (file and row)

    @classmethod
    def from_probe(cls, path: str | Path = PROBE_FILE, run_up: float = 0.0) -> ScriptedJump:
        """The refined script of `scripts/jump_probe.py --refine G --json PATH` for one run-up speed."""
        try:
            rows = json.loads(Path(path).read_text())["rows"]
            row = next(r for r in rows if abs(r["run_up_m_s"] - run_up) < 1e-9)
            base = tuple(float(row["script_for_length_m_with_flight"][name]) for name, _, _ in PARAMS)
            offsets = tuple(tuple(float(x) for x in knot) for knot in row["refined_offsets"])
        except (OSError, ValueError, KeyError, StopIteration) as exc:
            raise InputError(f"{path}: no refined jump script for a {run_up} m/s run-up ({exc!r}); run "
                             "scripts/jump_probe.py --refine 20 --json PATH") from None  # fmt: skip
        return cls(base, offsets, f"{Path(path).name} run_up {run_up}")

    def targets(self, t: np.ndarray) -> np.ndarray:
        """(N, 69) PD targets (rad) at per-env times t (N,) s."""
        return knot_targets(*_tiled(self.base, self.offsets, len(t)), t)


@functools.lru_cache(maxsize=8)
def _tiled(base: tuple, offsets: tuple, n: int) -> tuple[np.ndarray, np.ndarray]:
    """One script tiled for n envs, built once: the jump expert asks for it every control step."""
    b, o = np.tile(base, (n, 1)), np.tile(np.asarray(offsets), (n, 1, 1))
    b.flags.writeable = o.flags.writeable = False
    return b, o


MISS_REASONS = ("", "a non-foot body touched", "no foot past the line", "a touch under 50 N")


class JumpJudge:
    """Per-env takeoff / flight / landing bookkeeping of one jump each (module docstring's rule)."""

    def __init__(self, num_envs: int, takeoff_steps: int = 2, firm_landing: bool = False):
        # control steps in the air that make a flight: 2 (0.07 s) for the probe; the jump expert's v2 asks for
        # more, since under 0.005 rad of action noise the script's crouch already leaves the ground for 2 steps
        self.takeoff_steps = int(takeoff_steps)
        # the reference lands at the first step past the line with > 50 N (tasks/long_jump.landing): a lighter
        # first touch, which the per-body forces of the last substep often read, waits for the firm one
        self.firm_landing = bool(firm_landing)
        self.airborne = np.zeros(num_envs, np.int64)  # control steps in the air so far
        self.flight = np.zeros(num_envs)  # longest flight, s
        self.took_off = np.zeros(num_envs, bool)
        self.done = np.zeros(num_envs, bool)  # touched down after a flight
        self.landed = np.zeros(num_envs, bool)  # ... on a foot past the line
        self.length = np.full(num_envs, MISSED)
        self.line = np.zeros(num_envs)
        self.miss = np.zeros(num_envs, np.int64)  # why a touch after a flight was no landing: MISS_REASONS

    def reset(self, env_ids) -> None:
        self.miss[env_ids] = 0
        self.airborne[env_ids] = 0
        self.flight[env_ids] = 0.0
        self.took_off[env_ids] = self.done[env_ids] = self.landed[env_ids] = False
        self.length[env_ids] = MISSED
        self.line[env_ids] = 0.0

    def step(self, pos: np.ndarray, force: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Book one control step: body positions (N, 24, 3), per-body contact forces (N, 24) and contact counts
        (N,). Returns (N,) bool: the jump ended this step (its first touch after a flight)."""
        air = counts == 0  # the per-body forces are the last substep's: they miss contacts
        starts = air & (self.airborne == 0) & ~self.took_off
        self.line = np.where(starts, pos[:, FOOT_IDS, 0].max(-1), self.line)  # the toes at takeoff
        self.airborne = np.where(air, self.airborne + 1, 0)
        self.flight = np.where(self.done, self.flight, np.maximum(self.flight, self.airborne * spec.CONTROL_DT))
        self.took_off |= air & (self.airborne >= self.takeoff_steps)  # a flight, not a skid or a hop
        touch = self.took_off & ~air & ~self.done
        firm = np.sqrt((force**2).sum(-1)) > LANDING_FORCE
        past = (pos[:, FOOT_IDS, 0] > self.line[:, None]).any(-1)
        clean = ~(force[:, NON_FOOT] > CONTACT_N).any(-1)
        if self.firm_landing:
            touch &= firm | ~clean
        land = touch & firm & past & clean
        self.miss = np.where(touch & ~land, np.where(~clean, 1, np.where(~past, 2, 3)), self.miss)
        jump = pos[:, :, 0].mean(-1) - self.line
        self.length = np.where(land, jump, np.where(touch, jump + MISSED, self.length))
        self.landed |= land
        self.done |= touch
        return touch
