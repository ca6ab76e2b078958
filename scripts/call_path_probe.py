"""Batch-1 call path of SkillRuntime.act_into against the same graph run more directly (issue #37 item 2).

Usage: python scripts/call_path_probe.py BUNDLE [--skill reach] [--rounds 3000] [--seed 0] [--baseline-bundle OLD]
(BUNDLE from e.g. `ttdeploy export --skill reach --bundle /tmp/tb`; OLD: the same skill exported by an earlier
tt-deploy, e.g. from a `git worktree` of the commit before the lean graphs).

All variants live in one process and are called interleaved - one call of each per round, in a rotating order -
so a background load hits them alike; the medians (and their ratios) are what to read. Fused mode, batch 1:
- `act_into's bound run alone`: act_into's own bound graph (its run_with_iobinding) with no Python path around it;
- `act_into`: SkillRuntime(mode="fused", batch=1, SessionConfig(intra_op_threads=1)).act_into, the product;
- `act_into (pre-#37 path)`: the same runtime through the call path act_into had before the bound fast path
  (`_legacy_act_into` below: full validation and feeds, every input and the output rebound each call);
- `raw session, bound once, 1 thread`: onnxruntime.InferenceSession(fused.onnx) with intra_op_num_threads=1,
  inputs and output bound once, `run_with_iobinding` only - no Python path at all;
- `plain default InferenceSession.run`: InferenceSession(fused.onnx) with default options, `run(None, feeds)`.
- `act_into, default SessionConfig (threads calibrated)`: the product's default runtime (SessionConfig()), whose
  intra-op threads were calibrated at load;
- with --baseline-bundle, `issue-time act_into (baseline graph, pre-#37 path, default threads)`: what issue #37
  measured as today's: the baseline bundle's graph through the pre-#37 call path with the default SessionConfig.
Two groups are interleaved separately: the plain default session's intra-op pool spins after each run and would
slow whatever runs next, so it is timed against `act_into` alone (group 2). Group 3 times act_into's stages
(SkillRuntime.act_into_stages) interleaved with act_into itself; group 4 what the output choice was decided on
(copying the 69 actions out of a bound buffer vs rebinding the output to the caller's buffer).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import onnxruntime as ort

from tt_deploy.errors import InputError
from tt_deploy.export.onnx_graphs import group_input_names
from tt_deploy.runtime.parity import random_inputs
from tt_deploy.runtime import SessionConfig, SkillRuntime
from tt_deploy.runtime import manifest as mf


def _legacy_act_into(rt: SkillRuntime, inputs, task_obs, out):
    """act_into as it was before the bound fast path: out checks, then the full path (_feeds + run_into)."""
    if not (type(out) is np.ndarray and out.dtype == np.float32 and out.flags.c_contiguous):
        raise InputError("out must be a C-contiguous float32 numpy.ndarray")
    if not out.flags.writeable:
        raise InputError("out is read-only")
    if out.size != rt.manifest.action_dim:
        raise InputError("out has the wrong size")
    rt._run(inputs, task_obs, None, out.reshape(1, -1))
    return out


def interleaved(fns: dict, rounds: int) -> dict[str, np.ndarray]:
    """ns per call of each fn, one call of each per round, the order rotated every round."""
    names = list(fns)
    for f in fns.values():  # warm-up
        for _ in range(50):
            f()
    ns = {k: np.empty(rounds, np.int64) for k in names}
    clock = time.perf_counter_ns
    for r in range(rounds):
        k0 = r % len(names)
        for k in names[k0:] + names[:k0]:
            f = fns[k]
            t0 = clock()
            f()
            ns[k][r] = clock() - t0
    return ns


def _report(title: str, ns: dict[str, np.ndarray], ref: str) -> None:
    print(f"\n{title} ({len(next(iter(ns.values())))} rounds)")
    base = np.median(ns[ref])
    for k, v in ns.items():
        p50, p90, p99 = np.percentile(v, (50, 90, 99)) / 1e3
        print(f"  {k:38s} p50 {p50:8.1f} us  p90 {p90:8.1f}  p99 {p99:8.1f}   {ref} / this p50: "
              f"{base / np.median(v):.2f}x  this / {ref}: {np.median(v) / base:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("--skill", default=None)
    ap.add_argument("--rounds", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baseline-bundle", default=None)
    args = ap.parse_args()
    manifest = mf.read_manifest(args.bundle)
    skill = args.skill or manifest.skills[0]
    sk = mf.read_skill(args.bundle, skill, manifest)
    rng = np.random.default_rng(args.seed)
    keep = set(group_input_names(sk.visible_groups))
    batch1 = {k: v for k, v in random_inputs(1, rng, visible_p=1.0).items() if k in keep}
    fed = {k: np.ascontiguousarray(v[0]) for k, v in batch1.items()}  # what bench's runtime-fused row feeds
    obs = rng.standard_normal(sk.task_obs_dim).astype(np.float32)
    rt = SkillRuntime(args.bundle, backend="ort-cpu", skills=[skill], mode="fused", batch=1, share_bfm=False,
                      config=SessionConfig(intra_op_threads=1))
    assert rt.graphs() == (f"skills/{skill}/fused.onnx",), rt.graphs()
    path = str(mf.content_dir(args.bundle, manifest) / rt.graphs()[0])
    feeds = {**batch1, manifest.task_obs_name: obs[None]}
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    raw = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    binding, raw_out = raw.io_binding(), np.empty((1, manifest.action_dim), np.float32)
    for k, v in feeds.items():
        binding.bind_cpu_input(k, v)
    binding.bind_output(raw.get_outputs()[0].name, "cpu", 0, raw_out.dtype, raw_out.shape, raw_out.ctypes.data)
    plain = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    out_new, out_old = np.empty(manifest.action_dim, np.float32), np.empty(manifest.action_dim, np.float32)
    rt.act_into(fed, obs, out_new)
    _legacy_act_into(rt, fed, obs, out_old)
    raw.run_with_iobinding(binding)
    (plain_out,) = plain.run(None, feeds)
    same = (np.array_equal(out_new, out_old), np.array_equal(out_new, raw_out[0]), np.array_equal(out_new, plain_out[0]))
    print(f"{skill} fused.onnx, batch 1; actions equal (new vs pre-#37 / raw bound / plain run): {same}")
    print(f"plain default session: intra_op_num_threads {plain.get_session_options().intra_op_num_threads} "
          "(0 = ORT's default: physical cores, spinning on)")

    bound_run = rt._bound[skill].run  # act_into's own bound graph run, without any Python path around it
    variants = {
        "act_into": lambda: rt.act_into(fed, obs, out_new),
        "act_into (pre-#37 path)": lambda: _legacy_act_into(rt, fed, obs, out_old),
        "raw session, bound once, 1 thread": lambda: raw.run_with_iobinding(binding),
        "act_into's bound run alone": bound_run,
    }  # fmt: skip
    auto = SkillRuntime(args.bundle, backend="ort-cpu", skills=[skill], mode="fused", batch=1, share_bfm=False)
    out_auto = np.empty(manifest.action_dim, np.float32)
    print(f"default SessionConfig: threads calibrated at load to {auto.threads()}")
    variants["act_into, default SessionConfig (threads calibrated)"] = lambda: auto.act_into(fed, obs, out_auto)
    base = "issue-time act_into (baseline graph, pre-#37 path, default threads)"
    if args.baseline_bundle:
        old_rt = SkillRuntime(args.baseline_bundle, backend="ort-cpu", skills=[skill], mode="fused", batch=1,
                              share_bfm=False)  # fmt: skip
        out_base = np.empty(manifest.action_dim, np.float32)
        _legacy_act_into(old_rt, fed, obs, out_base)
        print(f"baseline bundle's actions vs this one's: max abs {np.abs(out_base - out_new).max():.1e}")
        variants[base] = lambda: _legacy_act_into(old_rt, fed, obs, out_base)
    g1 = interleaved(variants, args.rounds)
    _report("group 1: runtime paths and the bound raw session", g1, "act_into")
    g2 = interleaved({
        "act_into": lambda: rt.act_into(fed, obs, out_new),
        "act_into, default SessionConfig (threads calibrated)": lambda: auto.act_into(fed, obs, out_auto),
        "plain default InferenceSession.run": lambda: plain.run(None, feeds),
        "raw session, bound once, 1 thread": lambda: raw.run_with_iobinding(binding),
    }, args.rounds)  # fmt: skip
    _report("group 2: against a plain default InferenceSession", g2, "act_into")
    stages = rt.act_into_stages(fed, obs, out_new)
    g3 = interleaved({"act_into": lambda: rt.act_into(fed, obs, out_new), **stages}, args.rounds)
    print(f"\ngroup 3: act_into's stages, p50 us ({args.rounds} rounds): "
          + ", ".join(f"{k} {np.median(v) / 1e3:.2f}" for k, v in g3.items()))
    parts = sum(np.median(g3[k]) for k in stages)
    print(f"  sum of stage p50s {parts / 1e3:.1f} us; act_into p50 - run p50 = "
          f"{(np.median(g3['act_into']) - np.median(g3['run'])) / 1e3:.1f} us of Python path")
    name = raw.get_outputs()[0].name
    g4 = interleaved({
        "copy actions out (np.copyto, 69 float32)": lambda: np.copyto(out_new, raw_out[0]),
        "rebind the output (bind_output)": lambda: binding.bind_output(name, "cpu", 0, raw_out.dtype, raw_out.shape,
                                                                       raw_out.ctypes.data),
        "rebind one input (bind_cpu_input obs)": lambda: binding.bind_cpu_input("obs", feeds["obs"]),
    }, args.rounds)  # fmt: skip
    print("\ngroup 4: the output decision, p50 us: "
          + ", ".join(f"{k} {np.median(v) / 1e3:.2f}" for k, v in g4.items()))
    dflt = "act_into, default SessionConfig (threads calibrated)"
    print(f"\ngroup 1 ratios: act_into / pre-#37 = {np.median(g1['act_into']) / np.median(g1['act_into (pre-#37 path)']):.2f}x,"
          f" act_into / raw bound = {np.median(g1['act_into']) / np.median(g1['raw session, bound once, 1 thread']):.2f}x,"
          f" raw bound / pre-#37 = "
          f"{np.median(g1['raw session, bound once, 1 thread']) / np.median(g1['act_into (pre-#37 path)']):.2f}x"
          f" (the best any call path can do); group 2: act_into / plain default = "
          f"{np.median(g2['act_into']) / np.median(g2['plain default InferenceSession.run']):.2f}x, raw bound / plain "
          f"default = {np.median(g2['raw session, bound once, 1 thread']) / np.median(g2['plain default InferenceSession.run']):.2f}x, "
          f"default-config act_into / plain default = {np.median(g2[dflt]) / np.median(g2['plain default InferenceSession.run']):.2f}x")
    if base in g1:
        print(f"act_into / issue-time act_into = {np.median(g1['act_into']) / np.median(g1[base]):.2f}x; "
              f"default-config act_into / issue-time = {np.median(g1[dflt]) / np.median(g1[base]):.2f}x")


if __name__ == "__main__":
    main()
