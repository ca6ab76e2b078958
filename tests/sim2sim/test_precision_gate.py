"""Reduced precision end to end: `export --precision int8` writes int8 fused graphs beside the fp32 ones, the
runtime refuses them until `sim2sim --precision int8` recorded a passing closed-loop verdict, and then runs them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from bundle_helpers import rehash_skill
from typer.testing import CliRunner

from tt_deploy.cli import _register, app
from tt_deploy.errors import InputError, UnknownNameError
from tt_deploy.runtime import SkillRuntime
from tt_deploy.runtime import manifest as mf
from tt_deploy.runtime.verdicts import MIN_GATE_EVIDENCE, measured_evidence
from tt_deploy.sim.perturbations import NOMINAL, grid
from tt_deploy.sim2sim import run_sim2sim

_register()


@pytest.fixture(scope="module")
def int8_bundle(tmp_path_factory):
    bundle = tmp_path_factory.mktemp("int8") / "deploy"
    res = CliRunner().invoke(app, ["export", "--skill", "reach", "--precision", "int8", "--bundle", str(bundle)])
    assert res.exit_code == 0, res.output
    return bundle


def _inputs(rt, seed=0):
    rng = np.random.default_rng(seed)
    task = rng.standard_normal((1, rt.skills["reach"].task_obs_dim)).astype(np.float32)
    feeds = {t.name: (rng.random((1, *t.shape[1:])) < 0.5) if t.dtype == "bool" else
             rng.standard_normal((1, *t.shape[1:])).astype(np.float32)
             for t in rt.inputs if t.name != "task_obs"}  # fmt: skip
    return feeds, task


def test_int8_fused_graphs_sit_beside_the_fp32_ones_with_their_settings(int8_bundle):
    from tt_deploy.export.tensorrt_build import graphs_for

    man = mf.read_manifest(int8_bundle)
    int8 = {g.batch: g for g in man.graphs if g.precision == "int8"}
    assert set(int8) == {"static", "dynamic"} and all(g.role == "fused" and g.skill == "reach" for g in int8.values())
    assert int8["static"].path == "skills/reach/fused.int8.onnx"
    q = int8["static"].quantization
    assert q["weight_type"] == "QInt8" and q["tool"].endswith("quantize_dynamic") and q["version"]
    assert 0 < q["max_abs_vs_fp32"] < 0.1
    assert man.graph("fused", "reach").precision == "fp32"  # fp32 stays the default graph
    assert set(mf.read_skill(int8_bundle, "reach").graphs) >= {g.path for g in int8.values()}
    assert all(g.precision == "fp32" for g in graphs_for(man, ["reach"], ["fused", "split"]))  # not TensorRT's


def test_the_runtime_refuses_int8_without_a_verdict_and_runs_it_on_request(int8_bundle):
    with pytest.raises(InputError, match="sim2sim --skill reach --precision int8"):
        SkillRuntime(int8_bundle, precision="int8")
    with pytest.raises(UnknownNameError, match="fp8"):
        SkillRuntime(int8_bundle, precision="fp8")
    with pytest.raises(InputError, match="fp16' is TensorRT's"):
        SkillRuntime(int8_bundle, precision="fp16")  # backend auto resolves to ONNX Runtime CPU here
    with pytest.raises(InputError, match="fused graphs only"):
        SkillRuntime(int8_bundle, precision="int8", mode="split", allow_unverified_precision=True)
    with SkillRuntime(int8_bundle) as fp32, SkillRuntime(int8_bundle, precision="int8",
                                                         allow_unverified_precision=True) as int8:  # fmt: skip
        assert int8.graphs("reach") == ("skills/reach/fused.int8.onnx",)
        feeds, task = _inputs(fp32)
        diff = np.abs(fp32.act(feeds, task) - int8.act(feeds, task)).max()
    assert 0 < diff < 0.2


def test_the_closed_loop_verdict_gates_the_precision(int8_bundle):
    kw = dict(grid=[NOMINAL], episodes=2, episode_seconds=0.5, cross_sim=False, precision="int8")
    failed = run_sim2sim(int8_bundle, "reach", atol=1e-9, **kw)  # no int8 graph is that close to fp32
    assert not failed.passed and all("open-loop p99 abs error" in " ".join(c.reasons) for c in failed.cells)
    gate = mf.read_skill(int8_bundle, "reach").precision_gates["int8"]
    assert gate["passed"] is False and gate["precision"] == "int8"
    with pytest.raises(InputError, match="failed"):
        SkillRuntime(int8_bundle, precision="int8")
    thin = run_sim2sim(int8_bundle, "reach", atol=1.0, **kw)
    assert thin.passed, [c.reasons for c in thin.cells]
    with pytest.raises(InputError, match="ran 1 cells; at least 13.*2 episodes per cell; at least 8.*0.5 s"):
        SkillRuntime(int8_bundle, precision="int8")  # passed, on less than the documented minimum
    m = MIN_GATE_EVIDENCE
    enough = run_sim2sim(int8_bundle, "reach", atol=1.0, **{**kw, "grid": "default", "episodes": m.episodes,
                                                              "episode_seconds": m.episode_seconds})  # fmt: skip
    assert enough.passed and len(enough.cells) == len(grid("default")) >= m.cells
    assert mf.read_skill(int8_bundle, "reach").sim2sim is None  # fp32's own verdict is not touched
    with SkillRuntime(int8_bundle, precision="int8") as rt:  # no opt-in needed any more
        assert rt.graphs("reach") == ("skills/reach/fused.int8.onnx",)
    with pytest.raises(UnknownNameError, match="precision"):
        run_sim2sim(int8_bundle, "reach", **{**kw, "precision": "fp8"})
    with pytest.raises(InputError, match="TensorRT's"):
        run_sim2sim(int8_bundle, "reach", **{**kw, "precision": "fp16"})  # refused before any job runs


def _write_gate(bundle, gate: dict) -> None:
    """What a forger does: put a verdict into skill.json and fix manifest.json's hash of it."""
    sk = mf.content_dir(bundle) / mf.skill_dir("reach") / mf.SKILL_FILE
    data = json.loads(sk.read_text())
    data["precision_gates"] = {"int8": gate}
    sk.write_text(json.dumps(data))
    rehash_skill(bundle, "reach")


def test_forged_verdicts_unlock_nothing(tmp_path):
    """Adversarial (issue #38 N2): a bare `passed: true`, and a full-evidence verdict of other graphs."""
    from tt_deploy.export.bundle import export_skill

    bundle, other = tmp_path / "deploy", tmp_path / "other"
    export_skill("reach", bundle_dir=bundle, precisions=["int8"])
    export_skill("reach", bundle_dir=other, precisions=["int8"], seed=1)  # another untrained encoder
    _write_gate(bundle, {"passed": True})
    with pytest.raises(InputError, match="names no evidence"):
        SkillRuntime(bundle, precision="int8")
    enough = {"passed": True, "cell_names": [c.name for c in grid("default")], "episodes": 8,
              "episode_seconds": 5.0}  # fmt: skip
    _write_gate(bundle, {**enough, "evidence": measured_evidence(other, "reach")})
    with pytest.raises(InputError, match="graphs differ from the bundle's"):
        SkillRuntime(bundle, precision="int8")
    _write_gate(bundle, {**enough, "evidence": measured_evidence(bundle, "reach")})
    with SkillRuntime(bundle, precision="int8") as rt:  # write access can still write a verdict: docs say so
        assert rt.precision == "int8"


def test_a_verdict_measured_before_a_re_export_is_refused(tmp_path):
    """Adversarial (issue #38 N1): reach re-exported as another untrained encoder while its int8 gate runs.
    The verdict must not land on the new graphs, and nothing is written."""
    from tt_deploy.errors import BundleError
    from tt_deploy.export.bundle import export_skill

    bundle = tmp_path / "deploy"
    export_skill("reach", bundle_dir=bundle, precisions=["int8"])
    swapped = []

    def re_export(done, total):
        if not swapped:
            swapped.append(export_skill("reach", bundle_dir=bundle, precisions=["int8"], seed=1))

    kw = dict(grid=[NOMINAL], episodes=2, episode_seconds=0.5, cross_sim=False, precision="int8", atol=1.0)
    with pytest.raises(BundleError, match="moved on from 'v1' to 'v2' while it was measured"):
        run_sim2sim(bundle, "reach", progress=re_export, **kw)
    assert swapped and mf.read_manifest(bundle).content == "v2"
    assert mf.read_skill(bundle, "reach").precision_gates is None
    assert sorted(p.name for p in bundle.iterdir() if p.is_dir()) == ["v1", "v2"]  # no half-written v3


def test_export_names_the_precisions_it_knows(tmp_path):
    res = CliRunner().invoke(app, ["export", "--skill", "reach", "--precision", "fp16", "--bundle", str(tmp_path / "d")])
    assert res.exit_code != 0 and "int8" in str(res.exception) and not (tmp_path / "d").exists()
    from tt_deploy.export.precision import check_precisions

    with pytest.raises(InputError, match="fp8"):
        check_precisions(["fp8"])
    assert check_precisions(["fp32", "int8", "int8"]) == ("int8",)


def test_bench_times_the_int8_graph_beside_fp32_in_the_same_run(int8_bundle):
    from tt_deploy.bench import bench_bundle
    from tt_deploy.bench.latency import bench_steps

    ticks = []
    rows = bench_bundle(int8_bundle, batches=(1,), calls=10, warmup=2, memory=False, progress=ticks.append)
    lat = {r["name"]: r for r in rows if r["kind"] == "latency"}
    assert len(ticks) == bench_steps(int8_bundle, None, (1,), memory=False)
    int8, fp32 = lat["runtime-fused-int8"], lat["runtime-fused"]
    assert int8["precision"] == "int8" and int8["closed_loop_gate"] in ("none", "passed", "failed", "not accepted")
    assert int8["ratio_to_fp32_fused"] == pytest.approx(int8["p50_us"] / fp32["p50_us"])
    assert int8["weight_bytes"] < fp32["weight_bytes"] / 2  # int8 weights: a quarter of the MatMul bytes


def test_verify_checks_the_int8_graphs_against_the_fp32_reference_by_their_tier(int8_bundle):
    from tt_deploy.export.precision import VERIFY_TIERS
    from tt_deploy.export.verify import VerifyCases, verify_bundle

    report = verify_bundle(int8_bundle, ["reach"], backend="ort-cpu", record=False,
                           cases=VerifyCases(random=8, edge=2, rollout_envs=0))  # fmt: skip
    int8 = [r for r in report.rows if r.precision == "int8"]
    assert {r.graphs for r in int8} == {"skills/reach/fused.int8.onnx", "skills/reach/fused.int8.batch.onnx"}
    assert all(1e-5 < r.max_abs and r.p99_abs <= r.max_abs for r in int8)  # really int8, not the fp32 graph
    assert all(r.passed == (r.p99_abs <= VERIFY_TIERS["int8"][1]) for r in int8 if r.gated)
    assert {r.case for r in int8 if not r.gated} == {"extreme"} and all(r.passed for r in int8 if not r.gated)
    assert all(r.passed for r in report.rows if r.precision == "fp32")
