import pytest

from tt_deploy.stats import percentiles, wilson_interval


def test_wilson_interval_known_values():
    # 8 of 10: Wilson 95 % interval is (0.4902, 0.9433) (standard tables)
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4)
    assert hi == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and 0.15 < hi < 0.17


def test_percentiles():
    assert percentiles(range(101), qs=(50, 99)) == {"p50": 50.0, "p99": 99.0}
