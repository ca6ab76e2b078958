"""`verify_bundle`: open-loop parity of a deploy bundle against its PyTorch reference (DESIGN.md 6.1).

Why a separate check from the exporter's own parity number: export compares each graph once, on
its tracing inputs, right after writing it. A bundle then travels (copied, edited, re-hashed); this
check rebuilds the reference *from the bundle's recorded sources* (the BFM checkpoint whose sha256
the manifest records, the encoder's run checkpoint or seeded fresh init) and runs the real
`SkillRuntime` on many valid inputs: random visible/hidden masks, every maskable token group
hidden, every token visible, extreme magnitudes, and observations recorded from a short MuJoCo
rollout of the skill's TaskEnv driven by the reference. Both runtime modes (fused, split), fused
with the shared specialised BFM graph (encoder + bfm.<groups>.onnx), and both graph variants
(static batch 1, dynamic batch) are checked. A bundle whose graphs do not compute
what their recorded sources compute fails, even when every hash is consistent.

Reduced-precision fused graphs (`export --precision int8`) are checked too, against the same fp32 PyTorch
reference, each by its precision's tier (export/precision.VERIFY_TIERS: int8 holds the p99 of the abs error).

Errors are Polygraphy-style per output: max abs error, its p99, and max rel error
(abs / max(|reference|, REL_FLOOR)); pass/fail is max abs <= atol (fp32: 1e-5).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tt_deploy import spec
from tt_deploy.errors import InputError
from tt_deploy.export.bundle import record_results, report_goal_records
from tt_deploy.export.onnx_graphs import BFMGraph, group_input_names
from tt_deploy.export.precision import UNGATED_CASES, VERIFY_TIERS
from tt_deploy.export.reference import (
    bfm_checkpoint,
    reference_actions,
    reference_bfm,
    reference_encoder,
    torch_threads,
)
from tt_deploy.models.bfm import BFM
from tt_deploy.runtime import SkillRuntime
from tt_deploy.runtime import manifest as mf
from tt_deploy.runtime.session import resolve_backend
from tt_deploy.runtime.skill_runtime import TRT_PRECISIONS
from tt_deploy.runtime.verdicts import measured_evidence

log = logging.getLogger(__name__)

ATOL = VERIFY_TIERS["fp32"][1]  # fp32 max abs error accepted on the clamped actions
REL_FLOOR = 1e-6  # denominator floor of the relative error (actions near 0 would make it infinite)
EXTREME = 50.0  # |value| of the extreme-value case: positions (m) / velocities (m/s, rad/s) bound
# (mode, runtime batch, share_bfm): fused graph, fused with the shared specialised BFM, split
MODES = (
    ("fused", 1, False), ("fused", None, False), ("fused", 1, True), ("fused", None, True),
    ("split", 1, None), ("split", None, None),
)  # fmt: skip


@dataclass(frozen=True)
class VerifyCases:
    """How many inputs each case family draws (keep small in tests, defaults for `ttdeploy verify`).

    random: samples with random masks (p visible 0.5); edge: samples per edge case (each group
    hidden, all visible, all hidden, extreme); rollout_envs x rollout_steps: recorded MuJoCo
    observations (0 envs = skip); batch1_max: cap on samples run one by one through the batch-1 graphs.
    """

    random: int = 64
    edge: int = 8
    rollout_envs: int = 8
    rollout_steps: int = 60
    batch1_max: int = 256


@dataclass
class ParityRow:
    """One (skill, mode, graph variant, case): errors on the `actions` output over n samples."""

    skill: str
    mode: str
    graphs: str
    case: str
    n: int
    max_abs: float
    max_rel: float
    passed: bool
    p99_abs: float = float("nan")
    precision: str = "fp32"
    gated: bool = True  # False: reported, but its precision's tier does not hold this case (UNGATED_CASES)


@dataclass
class VerifyReport:
    """Every ParityRow plus the settings; `passed` is True only if every row passed."""

    bundle: str
    backend: str
    atol: float
    rows: list[ParityRow] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    def worst(self) -> list[ParityRow]:
        """Worst case per (skill, mode, graphs, precision) - a failing row first, then the largest max abs: the
        per-graph summary for tables."""
        best: dict[tuple, ParityRow] = {}
        for r in self.rows:
            key = (r.skill, r.mode, r.graphs, r.precision)
            if key not in best or (not r.passed, r.gated, r.max_abs) > (not best[key].passed, best[key].gated,
                                                                        best[key].max_abs):
                best[key] = r
        return list(best.values())

    def to_dict(self) -> dict:
        return {"bundle": self.bundle, "backend": self.backend, "atol": self.atol, "passed": self.passed,
                "rows": [dataclasses.asdict(r) for r in self.rows]}  # fmt: skip


# --- inputs --------------------------------------------------------------------------------------
def random_inputs(
    n: int, rng: np.random.Generator, visible_p: float = 0.5, scale: float = 2.0
) -> dict[str, np.ndarray]:
    """Graph-named BFM inputs for every token group: float32 (n, F) / (n, k, F) ~ N(0, scale^2),
    masks (n, k) bool with P(visible) = visible_p. The shared numpy generator of test/verify inputs."""
    out: dict[str, np.ndarray] = {}
    for g in spec.TOKEN_GROUPS:
        shape = (n, g.feat_dim) if g.n_tokens == 1 else (n, g.n_tokens, g.feat_dim)
        out[g.name] = (rng.standard_normal(shape) * scale).astype(np.float32)
        if g.mask_name:
            out[g.mask_name] = rng.random((n, g.n_tokens)) < visible_p
    return out


def _extreme(n: int, rng: np.random.Generator, task_obs_dim: int) -> tuple[dict, np.ndarray]:
    """+-EXTREME on every feature (sign random), all tokens visible: saturates normalisers and clamp."""
    inputs = random_inputs(n, rng, visible_p=1.0)
    for g in spec.TOKEN_GROUPS:
        inputs[g.name] = (np.sign(inputs[g.name]) * EXTREME).astype(np.float32)
    task_obs = (np.where(rng.random((n, task_obs_dim)) < 0.5, -1, 1) * EXTREME).astype(np.float32)
    return inputs, task_obs


def edge_and_random_cases(
    n_random: int, n_edge: int, rng, task_obs_dim: int
) -> dict[str, tuple[dict, np.ndarray]]:
    """{case name: (inputs, task_obs)}: random masks, each maskable group hidden, all visible/hidden, extreme."""

    def task(n):
        return (rng.standard_normal((n, task_obs_dim)) * 2).astype(np.float32)

    cases = {"random": (random_inputs(n_random, rng), task(n_random))}
    for g in spec.TOKEN_GROUPS:
        if g.mask_name:
            inputs = random_inputs(n_edge, rng, visible_p=1.0)
            inputs[g.mask_name][:] = False
            cases[f"hidden:{g.name}"] = (inputs, task(n_edge))
    cases["all-visible"] = (random_inputs(n_edge, rng, visible_p=1.0), task(n_edge))
    cases["all-hidden"] = (random_inputs(n_edge, rng, visible_p=0.0), task(n_edge))
    cases["extreme"] = _extreme(n_edge, rng, task_obs_dim)
    return cases


def recorded_case(skill: mf.SkillManifest, graph: BFMGraph, envs: int, steps: int,
                  seed: int) -> tuple[dict, np.ndarray]:
    """Observations of a MuJoCo rollout of the skill's TaskEnv (with its prior prompt, if it was trained
    with one) driven by the reference policy."""
    from tt_deploy.sim.mujoco_backend import MujocoSimulator
    from tt_deploy.tasks.env import TaskEnv
    from tt_deploy.tasks.registry import make_task_for_skill

    task = make_task_for_skill(skill, envs)
    env = TaskEnv(MujocoSimulator(envs, nthread=1, objects=task.objects), task, seed=seed)
    out = env.reset()
    frames, obs = [], []
    for _ in range(steps):
        frames.append({k: v.copy() for k, v in out.inputs.items()})
        obs.append(out.task_obs.astype(np.float32, copy=True))
        out = env.step(reference_actions(graph, out.inputs, out.task_obs.astype(np.float32)))
    inputs = {k: np.concatenate([f[k] for f in frames]) for k in frames[0]}
    return inputs, np.concatenate(obs)


# --- comparison ----------------------------------------------------------------------------------
def compare(got: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(max abs error, max rel error = abs / max(|ref|, REL_FLOOR)) over every element."""
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    rel = diff / np.maximum(np.abs(ref.astype(np.float64)), REL_FLOOR)
    return float(diff.max(initial=0.0)), float(rel.max(initial=0.0))


def p99_abs(got: np.ndarray, ref: np.ndarray) -> float:
    """The 99th percentile of the element-wise abs error (0 for no elements)."""
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    return float(np.percentile(diff, 99)) if diff.size else 0.0


def _run_runtime(
    rt: SkillRuntime, inputs: dict, task_obs: np.ndarray, limit: int
) -> tuple[np.ndarray, slice]:
    """Runtime actions: act_batch on a dynamic runtime, else act_into one sample at a time (first `limit`)."""
    if rt.batch != 1:
        return rt.act_batch(inputs, task_obs), slice(None)
    n = min(limit, task_obs.shape[0])
    out = np.empty((n, spec.ACTION_DIM), np.float32)
    for i in range(n):
        rt.act_into({k: v[i] for k, v in inputs.items()}, task_obs[i], out[i])
    return out, slice(0, n)


def _verify_skill(bundle, sk, bfm, cases, backend, atol, limit) -> list[ParityRow]:
    """Rows for one skill: every case through every (mode, batch) runtime."""
    encoder = reference_encoder(sk, bfm)
    full = BFMGraph(bfm, encoder=encoder).eval()
    fused = BFMGraph(bfm, sk.visible_groups, encoder).eval()
    keep = set(group_input_names(sk.visible_groups))
    manifest = mf.read_manifest(bundle)
    backend_name = resolve_backend(backend, manifest)[0]
    native_trt = backend_name == "trt"  # runs fused engines, never a shared BFM
    variants = [(mode, batch, share, "fp32") for mode, batch, share in MODES
                if not (share and (native_trt or manifest.specialised_bfm(sk.visible_groups, batch != 1) is None))]
    variants += [("fused", batch, None, p) for p in _reduced(manifest, sk.name, backend_name) for batch in (1, None)]
    rows = []
    for mode, batch, share, precision in variants:
        graph = fused if mode == "fused" else full  # the fp32 PyTorch reference, whatever the runtime's precision
        statistic, bound = ("max", atol) if precision == "fp32" else VERIFY_TIERS[precision]
        # parity over arbitrary masks (random cases hide the prior too): numerics, not behaviour; a reduced
        # precision is measured here, so its closed-loop gate is not required
        with SkillRuntime(bundle, backend, skills=[sk.name], mode=mode, batch=batch, share_bfm=share,
                          allow_hidden_prior=True, precision=precision, allow_unverified_precision=True) as rt:
            label = " + ".join(rt.graphs())
            for case, (inputs, task_obs) in cases.items():
                fed = {k: v for k, v in inputs.items() if mode == "split" or k in keep}
                got, sel = _run_runtime(rt, fed, task_obs, limit)
                ref = reference_actions(graph, {k: v[sel] for k, v in fed.items()}, task_obs[sel])
                (abs_err, rel_err), p99 = compare(got, ref), p99_abs(got, ref)
                gated = case not in UNGATED_CASES[precision]
                ok = (abs_err if statistic == "max" else p99) <= bound or not gated
                rows.append(ParityRow(sk.name, mode, label, case, int(ref.shape[0]), abs_err, rel_err, ok, p99,
                                      precision, gated))  # fmt: skip
    return rows


def _reduced(manifest: mf.BundleManifest, skill: str, backend: str) -> list[str]:
    """The reduced precisions this backend runs for `skill`: its int8 graphs on ONNX Runtime, bf16 on OpenVINO,
    TensorRT's engines built at tf32 / fp16 (native) or fp16 (ONNX Runtime's TensorRT EP)."""
    if backend == "openvino":
        return ["bf16"]
    if backend == "trt":
        fused = {g.sha256 for g in manifest.graphs if g.skill == skill and g.role == "fused"}
        return sorted({e.precision for e in manifest.engines if e.onnx_sha256 in fused} & set(TRT_PRECISIONS))
    return list(manifest.reduced_precisions(skill)) + (["fp16"] if backend == "ort-trt" else [])


def _parity_record(report: VerifyReport, skill: str) -> dict:
    """What skill.json's `parity` slot holds: settings, verdict, worst error per graph chain."""
    mine = [r for r in report.rows if r.skill == skill]
    worst = [r for r in report.worst() if r.skill == skill]
    return {
        "passed": all(r.passed for r in mine), "atol": report.atol, "backend": report.backend,
        "cases": sorted({r.case for r in mine}), "samples": sum(r.n for r in mine),
        "graphs": {f"{r.mode}: {r.graphs}" + ("" if r.precision == "fp32" else f" @ {r.precision}"): {"max_abs": r.max_abs, "p99_abs": r.p99_abs, "max_rel": r.max_rel,
                                             "worst_case": r.case, "precision": r.precision} for r in worst},
        "tiers": {p: {"statistic": s, "bound": b if p != "fp32" else report.atol, "ungated_cases": UNGATED_CASES[p]}
                  for p, (s, b) in VERIFY_TIERS.items() if any(r.precision == p for r in mine)},
        "torch": torch.__version__,
    }  # fmt: skip


def verify_bundle(
    bundle_dir: str | os.PathLike,
    skills: list[str] | tuple[str, ...] | None = None,
    *,
    backend: str = "auto",
    cases: VerifyCases = VerifyCases(),  # noqa: B008 - frozen dataclass, safe as a default
    seed: int = 0,
    atol: float = ATOL,
    record: bool = False,
    progress=None,
) -> VerifyReport:
    """PyTorch reference vs SkillRuntime for each skill (default: all) of a bundle; reads the bundle only.

    Returns a VerifyReport (one row per skill x mode x graph variant x case); with `record`, and only when every
    checked skill passed, writes each skill's verdict (`parity`, with the evidence it measured) into its
    skill.json, all in one new bundle version; progress(done, total, skill) after each skill.
    Raises BundleError when the
    reference cannot be rebuilt from what the bundle records, InputError for bad arguments.
    """
    if not atol > 0:
        raise InputError(f"atol must be > 0; got {atol}")
    bundle = Path(bundle_dir)
    manifest = mf.read_manifest(bundle)
    names = list(manifest.skills if skills is None else skills)
    unknown = sorted(set(names) - set(manifest.skills))
    if unknown:
        raise InputError(f"skills {unknown} are not in bundle {bundle}; it has {list(manifest.skills)}")
    evidence = {name: measured_evidence(bundle, name) for name in names}  # before measuring: the CAS compares
    bfm = reference_bfm(manifest)
    report_goal_records({n: mf.read_skill(bundle, n).goals for n in names}, bfm_checkpoint(manifest), "verify")
    report = VerifyReport(str(bundle), backend, atol)
    with torch_threads(1):
        for i, name in enumerate(names):
            _verify_one(bundle, name, i, bfm, report, cases, seed)
            if progress is not None:
                progress(i + 1, len(names), name)
    if record and report.passed and names:
        record_results(bundle, {n: {"parity": {**_parity_record(report, n), "evidence": evidence[n]}} for n in names},
                       measured=evidence[names[0]])  # fmt: skip
    elif record:
        log.warning("verify: %s failed; nothing recorded", bundle)
    return report


def _verify_one(
    bundle: Path,
    name: str,
    i: int,
    bfm: BFM,
    report: VerifyReport,
    cases: VerifyCases,
    seed: int,
) -> None:
    """Build the skill's cases, compare every runtime variant, append rows."""
    sk = mf.read_skill(bundle, name)
    rng = np.random.default_rng([seed, i])  # independent, reproducible inputs per skill
    case_set = edge_and_random_cases(cases.random, cases.edge, rng, sk.task_obs_dim)
    if cases.rollout_envs > 0 and cases.rollout_steps > 0:
        graph = BFMGraph(bfm, encoder=reference_encoder(sk, bfm)).eval()
        case_set["recorded"] = recorded_case(sk, graph, cases.rollout_envs, cases.rollout_steps, seed)
    report.rows += _verify_skill(bundle, sk, bfm, case_set, report.backend, report.atol, cases.batch1_max)
    log.info(
        "verified %s: %s", name, "pass" if all(r.passed for r in report.rows if r.skill == name) else "FAIL"
    )


__all__ = ["verify_bundle", "VerifyCases", "VerifyReport", "ParityRow", "random_inputs", "compare", "ATOL"]
