"""`bench_bundle`: latency of a deploy bundle against its PyTorch reference and the physical floor.

What is timed (each with `time.perf_counter_ns` around one call, after `warmup` untimed calls):
- `torch-eager`: the PyTorch reference (BFM + encoder, `torch.inference_mode`, all 31 tokens fed),
- `runtime-full`: `SkillRuntime(mode="split")` = encoder.onnx + bfm.onnx, every token group fed,
- `runtime-fused`: `SkillRuntime(mode="fused")` = the skill's specialised fused graph,
- `runtime-fused-shared`: `SkillRuntime(mode="fused", share_bfm=True)` = encoder.onnx + the shared
  specialised BFM graph (what fused mode runs when several resident skills share their groups),
- `runtime-fused-<precision>` (e.g. int8), where the bundle has that precision's fused graphs of the skill
  (`export --precision`): timed whether or not its closed-loop gate passed (the row says which), with its
  p50 as a ratio to `runtime-fused` (fp32) measured in the same run,
- `openvino-fused` and `openvino-fused-bf16` (on a CPU backend, where OpenVINO is installed): the same fused
  graph compiled by OpenVINO at fp32 (pinned) and at bf16, with the same ratio,
each at every batch size (batch 1 = static graphs through `act_into`; larger = dynamic graphs
through `act_batch`). Runtime calls include input validation, as a controller pays it. With `breakdown`, the
batch-1 `runtime-fused` row also times act_into's stages - validation, copy-in, run, copy-out - one of each
per round beside a whole call (`call_breakdown`).

Why the extra columns: batch-1 BFM inference is memory-bandwidth bound (DESIGN.md 7), so each row
prints the bytes of weights one call must read (graph initializers) divided by the measured copy
bandwidth - the floor no backend can beat unless the weights sit in cache. Deadline misses are
counted against the control period (1 / rate_hz) and against a tighter inference budget
(INFERENCE_BUDGET_FRACTION of the period) because the policy shares the period with state
estimation, observation building and the PD write. `switch()` and resident memory per extra skill
(RSS in fresh subprocesses, so allocator history cannot hide anything) complete the picture.

Rows are plain dicts (JSON-ready) with a "kind": "latency" | "switch" | "memory" | "bandwidth".
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tt_deploy import spec
from tt_deploy.atomic import atomic_write_text
from tt_deploy.bench.floor import (
    Machine,
    dispatch_ns,
    executed_nodes,
    floor_terms,
    gemm_peak,
    judge,
    last_level_cache_bytes,
)
from tt_deploy.errors import InputError, UnknownNameError
from tt_deploy.runtime import SessionConfig, SkillRuntime
from tt_deploy.runtime import manifest as mf
from tt_deploy.runtime.session import resolve_backend
from tt_deploy.runtime.verdicts import gate_problems
from tt_deploy.stats import percentiles

log = logging.getLogger(__name__)

INFERENCE_BUDGET_FRACTION = 0.10  # of the control period: the share left for the policy call
BANDWIDTH_BYTES = 256 * 2**20  # array size of the bandwidth probe (well beyond any cache)


# --- measurements --------------------------------------------------------------------------------
def measure_bandwidth(nbytes: int = BANDWIDTH_BYTES, repeats: int = 5) -> float:
    """Memory copy bandwidth in bytes/s, best of `repeats` numpy copies of `nbytes`.

    Counted STREAM-style as bytes read + bytes written (2 x nbytes per copy): a weight read is one
    of those directions, so floor = weight bytes / this number is a slightly optimistic bound.
    """
    src = np.ones(nbytes // 8, np.float64)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        np.copyto(dst, src)
        best = min(best, time.perf_counter_ns() - t0)
    return 2 * src.nbytes / (best * 1e-9)


def count_flops(module, args) -> int:
    """FLOPs of one forward (matmuls and the like, as torch's FlopCounterMode counts them)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        module(*args)
    return int(counter.get_total_flops())


MIN_TIMED_CALLS = 20  # a time budget never cuts a row below this many timed calls


def time_calls(fn: Callable[[], object], calls: int, warmup: int, budget_s: float | None = None) -> np.ndarray:
    """Int64 nanoseconds of `fn()`, each timed alone with perf_counter_ns after `warmup` calls.

    budget_s caps a row's wall time (warm-up gets a tenth of it): `calls` is then an upper bound and at
    least MIN_TIMED_CALLS are timed. Why: a paper-size BFM at batch 64 takes ~0.3 s a call, so 1100 calls
    per row made the default bench run past 10 minutes without a line of output."""
    start = time.perf_counter()
    for _ in range(warmup):
        fn()
        if budget_s is not None and time.perf_counter() - start > budget_s / 10:
            break
    out = np.empty(calls, np.int64)
    start = time.perf_counter()
    for i in range(calls):
        t0 = time.perf_counter_ns()
        fn()
        out[i] = time.perf_counter_ns() - t0
        if budget_s is not None and i + 1 >= MIN_TIMED_CALLS and time.perf_counter() - start > budget_s:
            return out[: i + 1]
    return out


def latency_row(name: str, batch: int, ns: np.ndarray, rate_hz: float, weight_bytes: int) -> dict:
    """Distribution (us), jitter and deadline misses of one timed series (its floor: `_add_floor`)."""
    us = ns / 1e3
    period_us = 1e6 / rate_hz
    budget_us = period_us * INFERENCE_BUDGET_FRACTION
    p = percentiles(us, (50, 90, 99))
    return {
        "kind": "latency", "name": name, "batch": batch, "calls": int(us.size),
        "p50_us": p["p50"], "p90_us": p["p90"], "p99_us": p["p99"], "max_us": float(us.max()),
        "jitter_p99_p50_us": p["p99"] - p["p50"], "std_us": float(us.std()),
        "period_us": period_us, "misses_period": int((us > period_us).sum()),
        "budget_us": budget_us, "misses_budget": int((us > budget_us).sum()),
        "calls_per_s": 1e6 / float(us.mean()), "samples_per_s": batch * 1e6 / float(us.mean()),
        "weight_bytes": int(weight_bytes),
    }  # fmt: skip


def initializer_bytes(path: str | os.PathLike) -> int:
    """Bytes of every initializer (weights, normaliser stats, constants) of an ONNX file."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    return sum(numpy_helper.to_array(t).nbytes for t in model.graph.initializer)


def rss_bytes() -> int:
    """Resident set size of this process in bytes (psutil if installed, else /proc/self/statm)."""
    try:
        import psutil
    except ImportError:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return int(psutil.Process().memory_info().rss)


# --- inputs --------------------------------------------------------------------------------------
def _inputs(batch: int, task_obs_dim: int, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """All 31 tokens' inputs (random values, every token visible) + task_obs, batch axis first."""
    from tt_deploy.runtime.parity import random_inputs  # the one input generator

    rng = np.random.default_rng(seed)
    inputs = random_inputs(batch, rng, visible_p=1.0)
    return inputs, rng.standard_normal((batch, task_obs_dim)).astype(np.float32)


def _batch1_args(rt: SkillRuntime, inputs: dict, task_obs: np.ndarray, keep: set[str] | None):
    """(per-sample inputs, task_obs, out buffer) of one batch-1 act_into call, as a controller holds them."""
    fed = {k: np.ascontiguousarray(v[0]) for k, v in inputs.items() if keep is None or k in keep}
    return fed, np.ascontiguousarray(task_obs[0]), np.empty(rt.manifest.action_dim, np.float32)


def _runtime_fn(rt: SkillRuntime, inputs: dict, task_obs: np.ndarray, keep: set[str] | None) -> Callable:
    """The call a controller makes: act_into a reused buffer at batch 1, act_batch otherwise."""
    if rt.batch == 1:
        fed, obs, out = _batch1_args(rt, inputs, task_obs, keep)
        return lambda: rt.act_into(fed, obs, out)
    fed = {k: v for k, v in inputs.items() if keep is None or k in keep}
    return lambda: rt.act_batch(fed, task_obs)


BREAKDOWN_STAGES = ("validation", "copy_in", "run", "copy_out")  # act_into's batch-1 fast path, in call order


def call_breakdown(rt: SkillRuntime, inputs: dict, task_obs: np.ndarray, keep: set[str] | None, calls: int,
                   warmup: int, budget_s: float | None = None) -> dict:
    """p50 us of each stage of a batch-1 act_into (SkillRuntime.act_into_stages), and of the whole call.

    One round calls act_into once and then each stage once, each timed alone with perf_counter_ns, so the
    stages and the whole call see the same load. validation = the type/dtype/shape/name/mask checks plus the
    NaN/inf pass over the bound float inputs (timed separately, summed per round); copy_in = the caller's arrays
    into the bound buffers; run = the bound graph (run_with_iobinding); copy_out = the actions into `out` and
    their NaN/inf check. rest_us = whole call - the stages' p50s: out checks, thread guard, plan lookup (noise can
    make it negative). budget_s caps the wall time as in time_calls (at least MIN_TIMED_CALLS rounds)."""
    fed, obs, out = _batch1_args(rt, inputs, task_obs, keep)
    stages = rt.act_into_stages(fed, obs, out)
    order = [("act_into", lambda: rt.act_into(fed, obs, out)), *stages.items()]
    for _ in range(warmup):
        for _, f in order:
            f()
    ns = {k: np.empty(calls, np.int64) for k, _ in order}
    clock, start, n = time.perf_counter_ns, time.perf_counter(), calls
    for i in range(calls):
        for k, f in order:
            t0 = clock()
            f()
            ns[k][i] = clock() - t0
        if budget_s is not None and i + 1 >= MIN_TIMED_CALLS and time.perf_counter() - start > budget_s:
            n = i + 1
            break
    ns = {k: v[:n] for k, v in ns.items()}
    ns["validation"] = ns.pop("check") + ns.pop("finite")
    p50 = {k: float(np.median(v)) / 1e3 for k, v in ns.items()}
    out_row = {f"{k}_us": p50[k] for k in BREAKDOWN_STAGES}
    out_row.update(act_into_us=p50["act_into"], rest_us=p50["act_into"] - sum(p50[k] for k in BREAKDOWN_STAGES),
                   calls=int(n))  # fmt: skip
    return out_row


def _torch_fn(bundle: Path, skill: str, inputs: dict, task_obs: np.ndarray):
    """(call, weight bytes, FLOPs of the full and of the fused graph) of the PyTorch eager reference
    rebuilt from the bundle's sources."""
    import torch

    from tt_deploy.export.onnx_graphs import BFMGraph
    from tt_deploy.export.reference import reference_bfm, reference_encoder

    bfm = reference_bfm(mf.read_manifest(bundle))
    graph = BFMGraph(bfm, encoder=reference_encoder(mf.read_skill(bundle, skill), bfm)).eval()
    args = [torch.from_numpy(inputs[k]) for k in graph.names] + [torch.from_numpy(task_obs)]
    nbytes = sum(t.numel() * t.element_size() for t in graph.state_dict().values())
    sk = mf.read_skill(bundle, skill)
    fused = BFMGraph(bfm, sk.visible_groups, graph.encoder).eval()
    fused_args = [torch.from_numpy(inputs[k]) for k in fused.names] + [torch.from_numpy(task_obs)]
    flops = {"split": count_flops(graph, args), "fused": count_flops(fused, fused_args)}

    def call():
        with torch.inference_mode():
            return graph(*args)

    return call, nbytes, flops


# --- the benchmark -------------------------------------------------------------------------------
def _graphs(bundle: Path, manifest: mf.BundleManifest, skill: str, dynamic: bool) -> dict[str, list[Path]]:
    """The ONNX files each runtime row runs: split, fused, fused-shared (where the bundle has it)."""
    g = {
        r: manifest.graph(r, None if r == "bfm" else skill, dynamic).path for r in ("bfm", "encoder", "fused")
    }
    shared = manifest.specialised_bfm(mf.read_skill(bundle, skill, manifest).visible_groups, dynamic)
    if shared is not None:
        g["shared"] = shared.path
    root = mf.content_dir(bundle, manifest)
    out = {"split": [root / g["bfm"], root / g["encoder"]], "fused": [root / g["fused"]]}
    if shared is not None:
        out["fused-shared"] = [root / g["shared"], root / g["encoder"]]
    return out


def _nodes(paths: list[Path], backend: str, threads: int | None) -> int | None:
    """Executed ONNX Runtime nodes of these graphs on CPU backends; None where the backend fuses its own way
    (TensorRT, OpenVINO, the GPU EPs): no dispatch term there."""
    if backend != "ort-cpu":
        return None
    return sum(executed_nodes(p, threads or 1) for p in paths)


def _latency_rows(bundle, skill, batch, calls, warmup, rate_hz, machine: Machine, threads, backend="auto",
                  spin: bool = False, budget_s: float | None = None, progress=None,
                  breakdown: bool = False) -> list[dict]:
    """torch-eager, runtime-full, runtime-fused (and runtime-fused-shared) rows at one batch size; breakdown: the
    batch-1 runtime-fused row also gets its act_into stages (call_breakdown) under "breakdown"."""
    manifest = mf.read_manifest(bundle)
    sk = mf.read_skill(bundle, skill)
    inputs, task_obs = _inputs(batch, sk.task_obs_dim)
    graphs = _graphs(bundle, manifest, skill, batch != 1)
    weights = {k: sum(initializer_bytes(p) for p in v) for k, v in graphs.items()}
    rows = []
    flops = {"split": None, "fused": None}  # torch counts them; without it the floor has no compute term
    if importlib.util.find_spec("torch") is not None:
        import torch

        from tt_deploy.export.reference import torch_threads

        with torch_threads(threads or 1):
            fn, nbytes, flops = _torch_fn(bundle, skill, inputs, task_obs)
            rows.append(latency_row("torch-eager", batch, time_calls(fn, calls, warmup, budget_s), rate_hz, nbytes))
            rows[-1]["torch_threads"] = torch.get_num_threads()
            _add_floor(rows[-1], machine, flops["split"], None)
            _tick(progress, rows[-1])
    else:
        log.warning("torch is not installed: no torch-eager row, and the floors have no compute term (FLOPs unknown)")
    keep = set(spec.group_input_names(sk.visible_groups))
    variants = [("runtime-full", "split", None, "split", None), ("runtime-fused", "fused", keep, "fused", False)]
    if "fused-shared" in weights and resolve_backend(backend, manifest)[0] != "trt":
        variants.append(("runtime-fused-shared", "fused", keep, "fused-shared", True))
    for name, mode, kept, key, share in variants:
        config = SessionConfig(intra_op_threads=threads or None, allow_spinning=spin)
        with SkillRuntime(
            bundle, backend=backend, skills=[skill], mode=mode, batch=1 if batch == 1 else None, config=config,
            share_bfm=share,
        ) as rt:  # fmt: skip
            ns = time_calls(_runtime_fn(rt, inputs, task_obs, kept), calls, warmup, budget_s)
            rows.append(latency_row(name, batch, ns, rate_hz, weights[key]))
            rows[-1]["backend"] = rt.backend
            rows[-1]["intra_op_threads"] = rt.threads()
            if breakdown and batch == 1 and name == "runtime-fused":
                rows[-1]["breakdown"] = call_breakdown(rt, inputs, task_obs, kept, calls, warmup, budget_s)
            _add_floor(rows[-1], machine, flops[mode], _nodes(graphs[key], rt.backend, threads))
            _tick(progress, rows[-1])
    fp32 = next(r["p50_us"] for r in rows if r["name"] == "runtime-fused")
    for name, run_backend, precision in _precision_variants(manifest, skill, backend):
        graph = manifest.graph("fused", skill, batch != 1, precision if precision in mf.PRECISIONS else "fp32")
        config = SessionConfig(intra_op_threads=threads or None, allow_spinning=spin)
        with SkillRuntime(bundle, backend=run_backend, skills=[skill], batch=1 if batch == 1 else None,
                          config=config, precision=precision, allow_unverified_precision=True) as rt:  # timed, gated or not
            ns = time_calls(_runtime_fn(rt, inputs, task_obs, keep), calls, warmup, budget_s)
            nbytes = initializer_bytes(mf.content_dir(bundle, manifest) / graph.path)
            # OpenVINO bf16 stores the fp32 file's weights in 2 bytes each: that is what a call reads
            row = latency_row(name, batch, ns, rate_hz, nbytes // 2 if precision == "bf16" else nbytes)
            nodes = _nodes([mf.content_dir(bundle, manifest) / graph.path], rt.backend, threads)
        gate = (sk.precision_gates or {}).get(precision)
        problems = gate_problems(gate, sk, manifest)
        state = "fp32: none needed" if precision == "fp32" else "none" if gate is None else (
            "passed" if not problems else "failed" if gate.get("passed") is not True else "not accepted")
        row.update(backend=rt.backend, precision=precision, ratio_to_fp32_fused=row["p50_us"] / fp32,
                   closed_loop_gate=state)
        # an int8 GEMM peak is not measured: the fp32 peak would overstate int8's compute term, so none
        _add_floor(row, machine, None if precision == "int8" else flops["fused"], nodes)
        rows.append(row)
        _tick(progress, row)
    return rows


def _precision_variants(manifest: mf.BundleManifest, skill: str, backend: str) -> list[tuple[str, str, str]]:
    """(row name, backend, precision) of the rows beside the fp32 ONNX Runtime ones: the skill's reduced-precision
    graphs on this backend, and OpenVINO fp32 / bf16 where it is installed and the backend runs on the CPU."""
    resolved = resolve_backend(backend, manifest)[0]
    if resolved in ("trt", "openvino"):
        return []
    out = [(f"runtime-fused-{p}", backend, p) for p in manifest.reduced_precisions(skill)]
    from tt_deploy.runtime.openvino_backend import available

    if resolved == "ort-cpu" and available():
        out += [("openvino-fused", "openvino", "fp32"), ("openvino-fused-bf16", "openvino", "bf16")]
    return out


def _tick(progress, row: dict) -> None:
    if progress is not None:
        progress(f"{row['name']} batch {row['batch']}: p50 {row['p50_us']:,.0f} us ({row['calls']} calls)")


def _add_floor(row: dict, machine: Machine, flops: int | None, nodes: int | None) -> None:
    """The row's FLOPs, its floor terms (bench/floor.py), the binding one, and p50 against it."""
    row["flops"] = flops
    row.update(floor_terms(machine, weight_bytes=row["weight_bytes"], flops=flops, nodes=nodes))
    row.update(judge(row["p50_us"], row["floor_us"]))


def _switch_row(bundle: Path, manifest: mf.BundleManifest, calls: int, warmup: int, backend: str = "auto") -> dict:
    """switch() between the first two skills (or one skill to itself), per-call ns incl. timer overhead."""
    names = list(manifest.skills[:2])
    with SkillRuntime(bundle, backend=backend, skills=names, mode="fused") as rt:
        i = iter(range(10**12))
        ns = time_calls(lambda: rt.switch(names[next(i) % len(names)]), calls, warmup)
    p = percentiles(ns / 1e3, (50, 99))
    return {"kind": "switch", "name": "switch()", "skills": names, "calls": calls, "p50_us": p["p50"],
            "p99_us": p["p99"], "max_us": float(ns.max() / 1e3)}  # fmt: skip


_RSS_SCRIPT = """
import json, sys
from tt_deploy.bench.latency import rss_bytes
from tt_deploy.runtime import SkillRuntime
bundle, mode, share, k, skills = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
rt = SkillRuntime(bundle, skills=skills[:k], mode=mode, share_bfm=share) if k else None
print(json.dumps(rss_bytes()))
"""
# (label, mode, share_bfm): fused as configured by default (shares the BFM from 2 skills on), fused with
# one self-contained graph per skill (a private BFM copy each), split
MEMORY_VARIANTS = (("fused", "fused", None), ("fused, share_bfm=False", "fused", False), ("split", "split", None))


def memory_rows(bundle: str | os.PathLike, max_skills: int = 3) -> list[dict]:
    """RSS (bytes) with 0..k resident skills per MEMORY_VARIANTS, each in a fresh subprocess; deltas per
    extra skill. k = 0 is the baseline (numpy + onnxruntime + tt_deploy.runtime imported, nothing loaded).
    """
    skills = list(mf.read_manifest(bundle).skills[:max_skills])
    rows = []
    baseline = None
    for label, mode, share in MEMORY_VARIANTS:
        rss = []
        for k in range(len(skills) + 1):
            if k == 0 and baseline is not None:
                rss.append(baseline)
                continue
            cmd = [sys.executable, "-c", _RSS_SCRIPT, str(bundle), mode, json.dumps(share), str(k), *skills]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300)
            rss.append(json.loads(out.stdout.strip().splitlines()[-1]))
        baseline = rss[0]
        for k in range(1, len(rss)):
            rows.append({"kind": "memory", "name": f"{label}: skill {k} ({skills[k - 1]})", "mode": mode,
                         "share_bfm": share, "resident_skills": k, "rss_bytes": rss[k],
                         "delta_bytes": rss[k] - rss[k - 1]})  # fmt: skip
    return rows


def bench_steps(bundle_dir, skill: str | None, batches: Sequence[int], memory: bool, backend: str = "auto") -> int:
    """How many progress ticks bench_bundle makes: latency rows, the switch row, the memory block."""
    manifest = mf.read_manifest(bundle_dir)
    per_batch = 4 if any(g.role == mf.SPECIALISED_ROLE for g in manifest.graphs) else 3  # + runtime-fused-shared
    per_batch += len(_precision_variants(manifest, skill or manifest.skills[0], backend))  # + int8, OpenVINO rows
    return len(batches) * per_batch + 1 + int(memory)


def bench_bundle(
    bundle_dir: str | os.PathLike,
    skill: str | None = None,
    *,
    batches: Sequence[int] = (1, 64),
    calls: int = 1000,
    warmup: int = 100,
    rate_hz: float = 30,
    json_path: str | os.PathLike | None = None,
    threads: int | None = 1,
    memory: bool = True,
    backend: str = "auto",
    spin: bool = False,
    budget_s: float | None = 10.0,
    progress: Callable[[str], None] | None = None,
    breakdown: bool = False,
) -> list[dict]:
    """Benchmark one skill (default: the bundle's first) of a bundle; returns JSON-ready rows.

    threads: intra-op threads for ONNX Runtime and torch alike; 0 or None = the runtime's default (ONNX Runtime:
    calibrated per static graph at load, SessionConfig; torch: 1). Default 1: on 2 shared cores 1 thread was
    faster for the small BFM and torch with 2 threads slowed 40-100x under load. Each runtime row records the
    threads its graphs got ("intra_op_threads"). memory: also measure RSS per extra skill (subprocesses, ~1 s each).
    spin: ONNX Runtime's worker threads spin between ops (SessionConfig.allow_spinning): faster on cores
    the controller owns, worse p99 on shared ones. budget_s: wall-time cap of one latency row (time_calls;
    None = exactly `calls`). progress(text) is called after each row. breakdown: the batch-1 runtime-fused row
    also carries "breakdown", the p50 of each act_into stage (call_breakdown: validation, copy_in, run, copy_out).
    """
    if calls < 1 or warmup < 0 or rate_hz <= 0 or any(int(b) != b or b < 1 for b in batches):
        raise InputError(f"need calls >= 1, warmup >= 0, rate_hz > 0, batches >= 1; got {calls}, {warmup}, "
                         f"{rate_hz}, {list(batches)}")  # fmt: skip
    bundle = Path(bundle_dir)
    manifest = mf.read_manifest(bundle)
    skill = skill or manifest.skills[0]
    if skill not in manifest.skills:
        raise UnknownNameError("skill", skill, manifest.skills)
    machine = Machine(bandwidth=measure_bandwidth(), gemm_peak=gemm_peak(threads or None), dispatch_ns=dispatch_ns(threads or 1),
                      llc_bytes=last_level_cache_bytes())  # fmt: skip
    rows: list[dict] = [{"kind": "bandwidth", "name": "numpy copy 256 MB, best of 5", "bytes_per_s": machine.bandwidth,
                         "matmul_flops_per_s": machine.gemm_peak, "dispatch_ns_per_node": machine.dispatch_ns,
                         "llc_bytes": machine.llc_bytes, "load_avg": list(os.getloadavg()), "ort_spinning": spin,
                         "cpus": os.cpu_count()}]  # fmt: skip
    for b in batches:
        rows += _latency_rows(bundle, skill, int(b), calls, warmup, rate_hz, machine, threads, backend, spin,
                              budget_s, progress, breakdown)
        log.info("benchmarked %s batch %d", skill, b)
    rows.append(_switch_row(bundle, manifest, calls, warmup, backend))
    if progress is not None:
        progress(f"switch(): p50 {rows[-1]['p50_us']:.2f} us")
    if memory:
        rows += memory_rows(bundle)
        if progress is not None:
            progress("resident memory measured")
    if json_path is not None:
        atomic_write_text(Path(json_path), json.dumps({"bundle": str(bundle), "skill": skill, "rows": rows}, indent=1))
    return rows


__all__ = [
    "bench_bundle",
    "call_breakdown",
    "BREAKDOWN_STAGES",
    "measure_bandwidth",
    "time_calls",
    "memory_rows",
    "rss_bytes",
    "INFERENCE_BUDGET_FRACTION",
]
