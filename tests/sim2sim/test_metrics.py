"""sim2sim metrics against hand-computed and published values (no simulator)."""

import numpy as np
import pytest

from tt_deploy.sim2sim.metrics import Rate, abs_error_summary, difference_interval, divergence_steps, passes


def test_difference_interval_matches_newcombe_published_example():
    # Newcombe (1998), Stat. Med. 17:873, example (a): 56/70 vs 48/80, method 10 -> 0.0524 .. 0.3339
    d, low, high = difference_interval(Rate.of(np.arange(80) < 48), Rate.of(np.arange(70) < 56))
    assert d == pytest.approx(0.2)
    assert low == pytest.approx(0.0524, abs=1e-4)
    assert high == pytest.approx(0.3339, abs=1e-4)


def test_difference_interval_of_identical_all_zero_rates_contains_zero():
    zero = Rate.of(np.zeros(4, bool))
    d, low, high = difference_interval(zero, zero)
    assert d == 0.0 and low < 0.0 < high and -1.0 <= low and high <= 1.0


def test_divergence_steps_hand_computed():
    t, e = 6, 4
    ref = np.zeros((t, e, 3))
    run = np.zeros((t, e, 3))
    run[3:, 0, 0] = 0.06  # env 0: roots 6 cm apart from step 3 -> diverged at 3
    run[:, 1, 1] = 0.04  # env 1: 4 cm apart throughout, same length -> never (censored at 6)
    run[4:, 2, 2] = 1.0  # env 2: apart only after its episodes ended (len 4) -> never, censored at 4
    lens_ref = np.array([6, 6, 4, 5])
    lens_run = np.array([6, 6, 4, 2])  # env 3: the runtime run ended at step 2 -> diverged at 2
    steps, diverged = divergence_steps(ref, run, lens_ref, lens_run, threshold=0.05)
    assert steps.tolist() == [3, 6, 4, 2]
    assert diverged.tolist() == [True, False, False, True]


def test_abs_error_summary_and_verdict():
    err = np.concatenate([np.zeros(98), [1e-6, 1e-3]])
    s = abs_error_summary(err)
    assert s["max"] == 1e-3 and s["p50"] == 0.0
    assert s["p99"] == pytest.approx(0.99 * 1e-6 + 0.01 * 1e-3)  # linear interpolation at rank 98.01
    assert sum(s["hist"]) == 100
    assert passes(5e-5, 1e-4, -0.2, 0.1, True) == (True, [])
    ok, reasons = passes(2e-4, 1e-4, 0.05, 0.4, False)
    assert not ok and len(reasons) == 3 and "open-loop" in reasons[0] and "excludes 0" in reasons[1]
