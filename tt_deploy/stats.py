"""Small statistics shared by evaluation, sim2sim and benchmarks (numpy only)."""

from __future__ import annotations

import math

import numpy as np


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate; (0, 1) when n == 0.

    Chosen over the normal approximation because it stays inside [0, 1] and is honest at the
    0 % / 100 % ends that small evaluation grids hit all the time.
    """
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def percentiles(samples, qs=(50, 90, 99)) -> dict[str, float]:
    a = np.asarray(samples, dtype=np.float64)
    return {f"p{q}": float(np.percentile(a, q)) for q in qs}
