"""doctor and gpu-check: backends proven by loading them, every GPU step time-boxed and reported."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from typer.testing import CliRunner

from tt_deploy import gpu_check as gc
from tt_deploy.cli import _register, app
from tt_deploy.export.bundle import export_skill
from tt_deploy.runtime import session

runner = CliRunner()
_register()
GPU_FREE = {"cuda": None, "trt": None, "ort-trt": None, "ort-cuda": None, "ort-cpu": None, "mjwarp-cuda": None}


@pytest.fixture(scope="module")
def bundle(small_bfm_file, tmp_path_factory):
    _, path = small_bfm_file
    out = tmp_path_factory.mktemp("gpu-check") / "deploy"
    export_skill("reach", bfm_path=path, bundle_dir=out)
    return out


def test_a_listed_provider_that_does_not_load_is_not_picked_by_auto(monkeypatch):
    import onnxruntime as ort

    listed = ["CUDAExecutionProvider", "CPUExecutionProvider"]  # what a broken onnxruntime-gpu install lists
    monkeypatch.setattr(ort, "get_available_providers", lambda: listed)
    session.provider_failure.cache_clear()
    try:
        assert session.provider_failure("CUDAExecutionProvider") is not None  # the CPU build cannot load it
        assert session.provider_failure("CPUExecutionProvider") is None
        assert session.resolve_backend("auto") == ("ort-cpu", "CPUExecutionProvider")
    finally:
        session.provider_failure.cache_clear()


def test_doctor_names_every_backend_and_why_it_cannot_run(tmp_path):
    out = tmp_path / "doctor.json"
    result = runner.invoke(app, ["doctor", "--json", str(out)])
    assert result.exit_code == 0, result.output
    found = json.loads(out.read_text())
    assert found["backends"]["ort-cpu"] is None and found["packages"]["onnxruntime"]
    assert set(found["backends"]) == {"cuda", "trt", "ort-trt", "ort-cuda", "ort-cpu", "openvino", "mjwarp-cuda"}
    assert all(v is None or isinstance(v, str) and v for v in found["backends"].values())


def test_the_plan_fits_the_budget_and_covers_the_issues_steps(bundle):
    steps = gc.plan(bundle, "reach")
    assert sum(s.budget_s for s in steps) <= gc.BUDGET_S
    names = [s.name for s in steps]
    assert names[:3] == ["engines fp32", "engines tf32", "engines fp16"]
    assert {"verify trt", "verify ort-trt", "verify ort-cuda", "sim bench mjwarp cuda:0", "sim2sim trt"} <= set(names)
    bench = next(s for s in steps if s.name.startswith("bench"))
    assert bench.args.count("--batch") == 2 and "64" in bench.args


@pytest.mark.skipif(gc._cuda_failure() is None, reason="this machine has a CUDA GPU: the check would really run")
def test_gpu_check_on_a_cpu_machine_skips_every_step_with_its_reason_in_seconds(bundle, tmp_path):
    out = tmp_path / "report.json"
    t0 = time.monotonic()
    result = runner.invoke(app, ["gpu-check", "--bundle", str(bundle), "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert time.monotonic() - t0 < 60
    assert report["summary"] == {"passed": 0, "failed": 0, "timed out": 0, "skipped": len(gc.plan(bundle, "reach"))}
    assert all(r["reason"] and r["command"].startswith("ttdeploy ") for r in report["steps"])
    assert "skipped" in result.output and "0 passed" in result.output


def test_a_step_runs_as_its_own_process_and_brings_back_its_numbers(bundle, tmp_path):
    step = gc.Step("verify ort-cpu", ("verify", "--bundle", str(bundle), "--skill", "reach", "--backend", "ort-cpu",
                                      "--random", "2", "--rollout-steps", "0", "--json", "{json}"), "ort-cpu", 120)
    row = gc.run_step(step, GPU_FREE, tmp_path, deadline=time.monotonic() + 600)
    assert row["status"] == "passed", row.get("output_tail")
    assert row["numbers"]["passed"] is True and row["command"].startswith("ttdeploy verify --bundle")


def test_a_step_past_its_time_box_or_the_budget_is_reported_not_hung(tmp_path):
    step = gc.Step("slow", ("verify",), "ort-cpu", 5)

    def hangs(argv, **kw):
        raise subprocess.TimeoutExpired(argv, kw["timeout"], output="built 3 of 9 layers")

    row = gc.run_step(step, GPU_FREE, tmp_path, deadline=time.monotonic() + 100, runner=hangs)
    assert row["status"] == "timed out" and "3 of 9" in row["output_tail"]
    row = gc.run_step(step, GPU_FREE, tmp_path, deadline=time.monotonic() + 2, runner=hangs)
    assert row["status"] == "skipped" and "left of the check's budget" in row["reason"]
    failed = gc.run_step(step, GPU_FREE, tmp_path, deadline=time.monotonic() + 100,
                         runner=lambda argv, **kw: subprocess.CompletedProcess(argv, 2, "", "boom"))  # fmt: skip
    assert failed["status"] == "failed" and failed["exit_code"] == 2 and "boom" in failed["output_tail"]


def test_gpu_check_refuses_an_unknown_skill(bundle):
    result = runner.invoke(app, ["gpu-check", "--bundle", str(bundle), "--skill", "nope"])
    assert result.exit_code != 0 and "nope" in (result.output + str(result.exception))
