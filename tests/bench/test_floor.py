"""The latency floor: max of compute, bandwidth (beyond the cache only) and dispatch; a p50 below it is invalid."""

import numpy as np
import pytest

from tt_deploy.bench.floor import Machine, _chain, dispatch_ns, executed_nodes, floor_terms, judge, last_level_cache_bytes

M = Machine(bandwidth=10e9, gemm_peak=100e9, dispatch_ns=1000.0, llc_bytes=32 * 2**20)


def test_weights_in_cache_have_no_bandwidth_term_and_the_largest_term_binds():
    small = floor_terms(M, weight_bytes=2 * 2**20, flops=2_000_000, nodes=114)
    assert small["weights_in_cache"] and small["floor_bandwidth_us"] == 0
    assert small["floor_compute_us"] == pytest.approx(20.0) and small["floor_dispatch_us"] == pytest.approx(114.0)
    assert small["floor_binds"] == "dispatch" and small["floor_us"] == pytest.approx(114.0)
    big = floor_terms(M, weight_bytes=10**9, flops=2_000_000, nodes=None)
    assert not big["weights_in_cache"] and big["floor_binds"] == "bandwidth" and big["floor_us"] == pytest.approx(1e5)
    compute = floor_terms(M, weight_bytes=10**6, flops=10**10, nodes=10)
    assert compute["floor_binds"] == "compute" and compute["floor_us"] == pytest.approx(1e5)
    unknown_cache = floor_terms(Machine(10e9, 100e9, 1000.0, None), weight_bytes=2 * 2**20, flops=None, nodes=None)
    assert unknown_cache["floor_bandwidth_us"] > 0  # no cache size known: the bandwidth term stays


def test_a_p50_below_its_floor_is_invalid_not_a_ratio():
    assert judge(300.0, 100.0) == {"over_floor": 3.0, "floor_valid": True}
    assert judge(50.0, 100.0) == {"over_floor": None, "floor_valid": False}
    assert judge(50.0, 0.0)["floor_valid"]


def test_the_probes_measure_something_real(tmp_path):
    assert dispatch_ns(calls=50) > 0
    llc = last_level_cache_bytes()
    assert llc is None or llc >= 2**16
    path = tmp_path / "chain.onnx"
    path.write_bytes(_chain(7))
    assert executed_nodes(path) == 7  # distinct constants: nothing folds or fuses
    assert np.isfinite(dispatch_ns(nodes=3, calls=20))
