"""bench_bundle: row structure, hand-checked deadline/floor arithmetic, CLI smoke (tiny call counts)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tt_deploy.bench import bench_bundle, measure_bandwidth, memory_rows, rss_bytes, time_calls
from tt_deploy.bench.latency import INFERENCE_BUDGET_FRACTION, initializer_bytes, latency_row
from tt_deploy.cli import _register, app
from tt_deploy.errors import InputError, UnknownNameError
from tt_deploy.export.bundle import export_skill
from tt_deploy.runtime import manifest as mf

_register()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """Two skills on the embedded small BFM (two are needed for switch())."""
    root = tmp_path_factory.mktemp("bench") / "deploy"
    for skill in ("reach", "steering"):
        export_skill(skill, bundle_dir=root)
    return root


def test_latency_row_counts_misses_against_period_and_budget():
    ns = np.array([1_000_000, 2_000_000, 5_000_000, 40_000_000], np.int64)  # 1, 2, 5, 40 ms
    row = latency_row("x", 4, ns, rate_hz=30, weight_bytes=10**9)
    assert row["budget_us"] == pytest.approx(1e6 / 30 * INFERENCE_BUDGET_FRACTION)  # 3333 us
    assert row["misses_period"] == 1 and row["misses_budget"] == 2
    assert row["p50_us"] == pytest.approx(3500.0) and row["max_us"] == pytest.approx(40000.0)
    assert row["calls_per_s"] == pytest.approx(1e6 / 12000.0) and row["samples_per_s"] == pytest.approx(
        4e6 / 12000
    )


def test_time_calls_and_probes():
    calls = []
    ns = time_calls(lambda: calls.append(1), 20, 5)
    assert ns.shape == (20,) and ns.dtype == np.int64 and (ns > 0).all() and len(calls) == 25
    assert 1e8 < measure_bandwidth(8 * 2**20, repeats=2) < 1e12
    assert 10 * 2**20 < rss_bytes() < 64 * 2**30


def test_bench_rows_for_every_implementation_and_batch(bundle, tmp_path):
    from tt_deploy.bench.latency import bench_steps

    out, ticks = tmp_path / "b.json", []
    rows = bench_bundle(bundle, batches=(1, 4), calls=30, warmup=3, json_path=out, memory=False, progress=ticks.append)
    from tt_deploy.runtime.openvino_backend import available

    ov = ("openvino-fused", "openvino-fused-bf16") if available() else ()  # beside fp32, where OpenVINO is installed
    assert len(ticks) == bench_steps(bundle, None, (1, 4), memory=False) == 9 + 2 * len(ov)  # the progress bar's total
    assert ticks[0].startswith("torch-eager batch 1: p50 ")
    lat = [r for r in rows if r["kind"] == "latency"]
    assert [(r["name"], r["batch"]) for r in lat] == [
        (n, b) for b in (1, 4) for n in ("torch-eager", "runtime-full", "runtime-fused", "runtime-fused-shared", *ov)
    ]
    for r in (r for r in lat if r["name"] in ov):
        assert r["backend"] == "openvino" and r["ratio_to_fp32_fused"] > 0
    for r in lat:
        assert 0 < r["p50_us"] <= r["p90_us"] <= r["p99_us"] <= r["max_us"] and r["calls"] == 30
        assert r["floor_us"] > 0 and r["weight_bytes"] > 10**5 and r["floor_valid"]
        assert r["floor_us"] == max(r[f"floor_{k}_us"] for k in ("compute", "bandwidth", "dispatch"))
        assert r["over_floor"] >= 1 and r["floor_us"] == r[f"floor_{r['floor_binds']}_us"]
        if r["name"].startswith("runtime"):  # ONNX Runtime on CPU: its executed nodes give the dispatch term
            assert r["executed_nodes"] > 50 and r["floor_dispatch_us"] > 0
    full, fused = (
        next(r for r in lat if r["name"] == n and r["batch"] == 1) for n in ("runtime-full", "runtime-fused")
    )
    assert fused["weight_bytes"] < full["weight_bytes"]  # dropped token encoders
    root = mf.content_dir(bundle)
    assert full["weight_bytes"] == initializer_bytes(root / "bfm.onnx") + initializer_bytes(
        root / "skills/reach/encoder.onnx"
    )
    switch = next(r for r in rows if r["kind"] == "switch")
    assert switch["skills"] == ["reach", "steering"] and switch["p50_us"] < 100
    assert json.loads(out.read_text())["rows"] == json.loads(json.dumps(rows))


def test_memory_rows_one_fresh_process_per_count(bundle):
    rows = memory_rows(bundle, max_skills=2)
    assert [(r["mode"], r["share_bfm"], r["resident_skills"]) for r in rows] == [
        ("fused", None, 1), ("fused", None, 2), ("fused", False, 1), ("fused", False, 2), ("split", None, 1),
        ("split", None, 2),
    ]  # fmt: skip
    first = [r for r in rows if r["resident_skills"] == 1]
    assert all(r["delta_bytes"] > 2**20 for r in first)  # a session with ~2 MB of weights
    second = {r["share_bfm"]: r["delta_bytes"] for r in rows if r["mode"] == "fused" and r["resident_skills"] == 2}
    assert second[False] - second[None] > 2**20  # the shared BFM saves the second skill's weight copy


def test_bad_arguments(bundle):
    with pytest.raises(InputError, match="calls >= 1"):
        bench_bundle(bundle, calls=0)
    with pytest.raises(UnknownNameError, match="known: reach, steering"):
        bench_bundle(bundle, "jump")


def test_cli_bench_smoke(bundle, tmp_path):
    out = tmp_path / "bench.json"
    args = ["bench", "--bundle", str(bundle), "--calls", "50", "--warmup", "2", "--batch", "1", "--no-memory",
            "--json", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "runtime-fused" in result.output and "switch()" in result.output
    assert {r["kind"] for r in json.loads(out.read_text())["rows"]} == {"bandwidth", "latency", "switch"}


def test_a_row_time_budget_caps_calls_but_keeps_a_minimum():
    import time

    from tt_deploy.bench.latency import MIN_TIMED_CALLS, time_calls

    ns = time_calls(lambda: time.sleep(0.002), calls=1000, warmup=1000, budget_s=0.1)
    assert MIN_TIMED_CALLS <= len(ns) < 200  # ~50 calls of 2 ms, not 1000 (nor 1000 warm-up calls)
    assert len(time_calls(lambda: time.sleep(0.005), calls=1000, warmup=0, budget_s=0.001)) == MIN_TIMED_CALLS
    assert len(time_calls(lambda: None, calls=30, warmup=0)) == 30  # no budget: exactly `calls`


def test_breakdown_times_each_stage_of_the_batch1_fused_call(bundle, tmp_path):
    from tt_deploy.bench.latency import BREAKDOWN_STAGES

    rows = bench_bundle(bundle, batches=(1,), calls=25, warmup=2, memory=False, breakdown=True)
    with_b = [r for r in rows if "breakdown" in r]
    assert [(r["name"], r["batch"]) for r in with_b] == [("runtime-fused", 1)]  # that row only
    b = with_b[0]["breakdown"]
    assert set(b) == {*(f"{k}_us" for k in BREAKDOWN_STAGES), "act_into_us", "rest_us", "calls"}
    assert all(b[f"{k}_us"] > 0 for k in BREAKDOWN_STAGES) and b["act_into_us"] > 0 and b["calls"] == 25
    assert b["run_us"] > max(b["validation_us"], b["copy_in_us"], b["copy_out_us"])  # the graph dominates
    out = tmp_path / "bench.json"
    args = ["bench", "--bundle", str(bundle), "--calls", "25", "--warmup", "2", "--batch", "1", "--no-memory",
            "--breakdown", "--json", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "act_into stages (runtime-fused, batch 1" in result.output and "copy-out" in result.output
    (row,) = [r for r in json.loads(out.read_text())["rows"] if "breakdown" in r]
    assert all(row["breakdown"][f"{k}_us"] > 0 for k in BREAKDOWN_STAGES)
