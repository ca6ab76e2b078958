"""Sim2sim metrics: success-rate intervals and their difference, closed-loop divergence,
open-loop error summaries, per-task metrics and the per-cell verdict (numpy only).

Everything here is a pure function of recorded arrays so it can be checked against hand-computed
values (tests/sim2sim/test_metrics.py); the harness only records and calls these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tt_deploy.stats import wilson_interval

DIVERGENCE_M = 0.05  # root positions further apart than this (m) = the two runs have diverged
HIST_EDGES = np.concatenate([[0.0], 10.0 ** np.arange(-12.0, 0.51, 0.25)])  # abs error bins, 1e-12..~3


@dataclass(frozen=True)
class Rate:
    """A success (or fall) rate over n episodes with its 95 % Wilson interval."""

    k: int
    n: int
    rate: float
    low: float
    high: float

    @classmethod
    def of(cls, flags: np.ndarray) -> Rate:
        k, n = int(np.count_nonzero(flags)), int(np.size(flags))
        low, high = wilson_interval(k, n)
        return cls(k, n, k / n if n else math.nan, low, high)


def difference_interval(a: Rate, b: Rate) -> tuple[float, float, float]:
    """(b.rate - a.rate, low, high): Newcombe's hybrid score interval (his method 10), built from
    the two 95 % Wilson intervals.

    Why Newcombe: it inherits Wilson's good coverage at 0 % / 100 % (where untrained and very good
    skills live) and never leaves [-1, 1]. It treats the two runs as independent samples; ours are
    paired (same seeds), which makes it conservative - a runtime must differ clearly to fail.
    """
    d = b.rate - a.rate
    low = d - math.sqrt((b.rate - b.low) ** 2 + (a.high - a.rate) ** 2)
    high = d + math.sqrt((b.high - b.rate) ** 2 + (a.rate - a.low) ** 2)
    return d, max(-1.0, low), min(1.0, high)


def divergence_steps(
    ref_root: np.ndarray, run_root: np.ndarray, ref_len: np.ndarray, run_len: np.ndarray,
    threshold: float = DIVERGENCE_M,
) -> tuple[np.ndarray, np.ndarray]:
    """Per env: control steps until two closed-loop runs diverge, and whether they did.

    ref_root, run_root: (T, E, 3) m, root position when action t is chosen (t = 0 is the reset
    state); ref_len, run_len: (E,) length in steps of each run's first episode (positions at t >=
    len belong to a later episode and are ignored). Diverged at the first t < min(len) where the
    roots are more than `threshold` apart; else at min(len) if the episodes ended at different
    steps (one run fell, the other did not); else not diverged, reported as the common length
    (right-censored). Returns (steps (E,) int64, diverged (E,) bool).
    """
    ref_len, run_len = np.asarray(ref_len, np.int64), np.asarray(run_len, np.int64)
    both = np.minimum(ref_len, run_len)
    t = np.arange(ref_root.shape[0])[:, None]
    far = (np.linalg.norm(ref_root - run_root, axis=-1) > threshold) & (t < both[None, :])
    any_far = far.any(axis=0)
    first_far = np.where(any_far, far.argmax(axis=0), both)
    diverged = any_far | (ref_len != run_len)
    return first_far.astype(np.int64), diverged


def abs_error_summary(err: np.ndarray) -> dict:
    """max, p99 and p50 of element-wise abs errors, plus counts in HIST_EDGES bins (for the histogram)."""
    flat = np.asarray(err, dtype=np.float64).reshape(-1)
    if flat.size == 0:
        return {"max": math.nan, "p99": math.nan, "p50": math.nan, "hist": [0] * (len(HIST_EDGES) - 1)}
    hist, _ = np.histogram(np.clip(flat, 0.0, HIST_EDGES[-1]), bins=HIST_EDGES)
    return {"max": float(flat.max()), "p99": float(np.percentile(flat, 99)),
            "p50": float(np.percentile(flat, 50)), "hist": hist.tolist()}  # fmt: skip


def passes(open_loop: float, atol: float, diff_low: float, diff_high: float, same_start: bool,
           statistic: str = "max") -> tuple[bool, list[str]]:
    """The per-cell verdict and its reasons when it fails.

    A cell passes when the runtime's open-loop error on the reference's own observations (its `statistic`
    over every step and joint: "max" for fp32, "p99" for a reduced precision) is within `atol`, the
    success-rate difference's 95 % interval contains 0, and both runs started from identical states
    (otherwise the comparison itself is broken).
    """
    reasons = []
    if not open_loop <= atol:
        reasons.append(f"open-loop {statistic} abs error {open_loop:.2e} > {atol:.0e}")
    if not diff_low <= 0.0 <= diff_high:
        reasons.append(f"success-rate difference interval [{diff_low:+.3f}, {diff_high:+.3f}] excludes 0")
    if not same_start:
        reasons.append("the two runs did not start from identical states")
    return not reasons, reasons


# --- task metrics: one number per env and step, averaged over each env's first episode --------------
def _hand_distance(task, prev, state) -> np.ndarray:
    return task.hand_distance(state)


def _velocity_error(task, prev, state) -> np.ndarray:
    from tt_deploy import spec

    vel = (state.pos[:, 0, :2] - prev.pos[:, 0, :2]) / spec.CONTROL_DT  # root finite difference (tasks.md)
    goal = task.tar_dir * task.tar_speed[:, None]
    return np.linalg.norm(vel - goal, axis=-1)


def _root_progress(task, prev, state) -> np.ndarray:
    return state.pos[:, 0, 0] - (task.line_x - task.line_dist)


# name of the skill -> (metric name with unit, function(task, prev_state, state) -> (N,)); lower is
# better for the first two, higher for root progress. Skills without an entry report mean reward.
TASK_METRICS = {
    "reach": ("hand_distance_m", _hand_distance),
    "direction": ("velocity_error_mps", _velocity_error),
    "steering": ("velocity_error_mps", _velocity_error),
    "long_jump": ("root_progress_m", _root_progress),
}


def task_metric(skill: str):
    """(name, fn) of the skill's task metric; ("mean_reward", None) when it has none of its own."""
    return TASK_METRICS.get(skill, ("mean_reward", None))


# --- per-cell results ----------------------------------------------------------------------------
@dataclass
class CellResult:
    """One grid cell: reference vs runtime over `episodes` paired episodes.

    success_diff = runtime - reference rate, with its 95 % Newcombe interval; metric_* = the task
    metric (name in metric_name) averaged over steps and episodes; open_loop_* = element-wise abs
    error of runtime vs reference actions on the reference's recorded inputs; divergence_* = control
    steps until the two runs' roots are more than 5 cm apart (median over episodes; censored at the
    episode end when they never diverge) and the share of episodes that diverged.
    """

    name: str
    perturbation: dict
    episodes: int
    reference: Rate
    runtime: Rate
    success_diff: float
    diff_low: float
    diff_high: float
    fall_reference: float
    fall_runtime: float
    metric_name: str
    metric_reference: float
    metric_runtime: float
    open_loop_max: float
    open_loop_p99: float
    open_loop_hist: list
    divergence_median: float
    divergence_min: int
    diverged_fraction: float
    same_start: bool
    unstable_steps: int
    passed: bool
    reasons: list


@dataclass
class CrossSimResult:
    """The reference under the training physics vs a physics configuration it never saw (layer 3)."""

    training_physics: str
    cross_physics: str
    episodes: int
    training: Rate
    cross: Rate
    gap: float  # cross - training success rate
    gap_low: float
    gap_high: float
    fall_training: float
    fall_cross: float
    metric_name: str
    metric_training: float
    metric_cross: float
    divergence_median: float
    diverged_fraction: float
    cell: str = "nominal"  # the perturbation cell both arms ran under


def summarise_cell(raw: dict, atol: float, statistic: str = "max") -> CellResult:
    """A harness raw record of kind "grid" -> CellResult with its verdict (open-loop `statistic` vs atol)."""
    ref, run = raw["reference"], raw["runtime"]
    a, b = Rate.of(ref["success"]), Rate.of(run["success"])
    d, low, high = difference_interval(a, b)
    ol = raw["open_loop"]
    same_start = raw["start_diff"] == 0.0
    ok, reasons = passes(ol[statistic], atol, low, high, same_start, statistic)
    steps = raw["divergence_steps"]
    return CellResult(
        raw["name"], raw["perturbation"], a.n, a, b, d, low, high,
        float(np.mean(ref["fell"])), float(np.mean(run["fell"])),
        ref["metric_name"], ref["metric"], run["metric"],
        ol["max"], ol["p99"], ol["hist"],
        float(np.median(steps)), int(steps.min()), float(np.mean(raw["diverged"])),
        same_start, int(raw["unstable"]), ok, reasons,
    )  # fmt: skip


def summarise_cross(raw: dict, training_physics: str, cross_physics: str) -> CrossSimResult:
    """A harness raw record of kind "cross" -> CrossSimResult (gap = cross - training)."""
    tr, cr = raw["training"], raw["cross"]
    a, b = Rate.of(tr["success"]), Rate.of(cr["success"])
    gap, low, high = difference_interval(a, b)
    return CrossSimResult(
        training_physics, cross_physics, a.n, a, b, gap, low, high,
        float(np.mean(tr["fell"])), float(np.mean(cr["fell"])),
        tr["metric_name"], tr["metric"], cr["metric"],
        float(np.median(raw["divergence_steps"])), float(np.mean(raw["diverged"])), raw["name"],
    )  # fmt: skip
