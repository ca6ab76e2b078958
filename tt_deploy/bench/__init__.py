"""Latency benchmark of deploy bundles (`ttdeploy bench`): runtime vs PyTorch reference vs bandwidth floor."""

from tt_deploy.bench.latency import (
    INFERENCE_BUDGET_FRACTION,
    bench_bundle,
    measure_bandwidth,
    memory_rows,
    rss_bytes,
    time_calls,
)

__all__ = [
    "bench_bundle",
    "measure_bandwidth",
    "memory_rows",
    "rss_bytes",
    "time_calls",
    "INFERENCE_BUDGET_FRACTION",
]
