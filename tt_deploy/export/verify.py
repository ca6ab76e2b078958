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

The comparison itself (runtime variants, error statistics, tiers) is runtime/parity.py's, torch-free; so is
`verify_recorded`, which compares against the reference actions export recorded in the bundle. Both first hold
every graph's metadata to the contract the manifest and skill.json state (parity.checked_request,
runtime/graph_contract.py): a graph must describe itself truly before its numbers are worth measuring.

Errors are Polygraphy-style per output: max abs error, its p99, and max rel error
(abs / max(|reference|, REL_FLOOR)); pass/fail is max abs <= atol (fp32: 1e-5).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tt_deploy.export.bundle import record_results, report_goal_records
from tt_deploy.export.onnx_graphs import BFMGraph
from tt_deploy.export.precision import UNGATED_CASES, VERIFY_TIERS
from tt_deploy.export.reference import (
    bfm_checkpoint,
    reference_actions,
    reference_bfm,
    reference_encoder,
    torch_threads,
)
from tt_deploy.models.bfm import BFM
from tt_deploy.runtime import manifest as mf
from tt_deploy.runtime.parity import (  # noqa: F401 - ParityRow .. random_inputs re-exported: verify's API
    ATOL,
    ParityRow,
    VerifyReport,
    _reduced,
    checked_request,
    compare,
    edge_and_random_cases,
    p99_abs,
    parity_rows,
    random_inputs,
)
from tt_deploy.runtime.verdicts import measured_evidence

log = logging.getLogger(__name__)


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


def _verify_skill(bundle, sk, bfm, cases, backend, atol, limit) -> list[ParityRow]:
    """Rows for one skill: every case through every runtime variant, against the fp32 PyTorch reference
    (whatever the runtime's precision)."""
    encoder = reference_encoder(sk, bfm)
    graphs = {"split": BFMGraph(bfm, encoder=encoder).eval(), "fused": BFMGraph(bfm, sk.visible_groups, encoder).eval()}
    return parity_rows(bundle, sk, cases, backend, atol, limit,
                       lambda mode, case, fed, obs, sel: reference_actions(graphs[mode], fed, obs))  # fmt: skip


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
    bundle = Path(bundle_dir)
    manifest, names, notes = checked_request(bundle, skills, atol)
    evidence = {name: measured_evidence(bundle, name) for name in names}  # before measuring: the CAS compares
    bfm = reference_bfm(manifest)
    report_goal_records({n: mf.read_skill(bundle, n).goals for n in names}, bfm_checkpoint(manifest), "verify")
    report = VerifyReport(str(bundle), backend, atol, notes=notes)
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
