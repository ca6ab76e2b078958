"""What this machine can really run (`ttdeploy doctor`), and every GPU figure from one short loan (`gpu-check`).

Why a doctor that loads things: onnxruntime lists the providers it was built with, not the ones whose
libraries load, and a session whose provider fails quietly runs on CPU. So each backend is proven by
creating something on it: a one-node session per ONNX Runtime provider (runtime/session.provider_failure),
a TensorRT runtime (libnvinfer), a CUDA device query, a MuJoCo Warp CUDA device.

Why gpu-check runs each step as its own `ttdeploy` process: a hung engine build or a CUDA fault must not take
the report with it, every step gets a hard time box (`subprocess.run(timeout=...)`), and the report names the
exact command, so a failed step can be rerun alone. Steps whose backend does not load are reported skipped,
with the reason, in seconds; on a CPU-only machine the whole check takes about as long as the doctor.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

PACKAGES = ("onnxruntime", "onnxruntime-gpu", "tensorrt", "tensorrt-cu12", "tensorrt-cu13", "cuda-python",
            "cuda-bindings", "openvino", "mujoco", "mujoco-warp", "warp-lang", "torch", "onnx")  # fmt: skip
BUDGET_S = 480  # issue #39: the whole check on one GPU within 8 minutes


def installed_packages() -> dict[str, str | None]:
    """Distribution name -> installed version (None: not installed)."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _cuda_failure() -> str | None:
    """Why no CUDA device is usable (cuda-python's device query; the TensorRT backend's own check)."""
    from tt_deploy.runtime.trt_backend import cuda_failure

    return cuda_failure()


def _trt_failure() -> str | None:
    from tt_deploy.runtime.trt_backend import _trt, trt_logger, unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        return reason
    trt = _trt()
    try:
        trt.Runtime(trt_logger(trt))  # loads libnvinfer
    except Exception as exc:  # noqa: BLE001 - any load failure is the answer
        return f"TensorRT runtime did not load ({exc})"
    return None


def _mjwarp_cuda_failure() -> str | None:
    try:
        import mujoco_warp  # noqa: F401
        import warp as wp
    except ImportError:
        return 'mujoco-warp / warp-lang are not installed (pip install "tt-deploy[mjwarp]")'
    try:
        wp.config.quiet = True  # no init banner in the doctor's table
        wp.init()
        count = wp.get_cuda_device_count()
    except Exception as exc:  # noqa: BLE001
        return f"warp could not query CUDA ({exc})"
    return None if count else "warp sees no CUDA device"


def backend_failures() -> dict[str, str | None]:
    """Backend -> why it cannot run here (None: it loads). Keys match `--backend` names, plus mjwarp-cuda."""
    from tt_deploy.runtime.openvino_backend import available as openvino_available
    from tt_deploy.runtime.session import BACKENDS, provider_failure

    out: dict[str, str | None] = {"cuda": _cuda_failure(), "trt": _trt_failure()}
    for name in ("ort-trt", "ort-cuda", "ort-cpu"):
        out[name] = provider_failure(BACKENDS[name])
    out["openvino"] = None if openvino_available() else 'openvino is not installed (pip install "tt-deploy[openvino]")'
    out["mjwarp-cuda"] = _mjwarp_cuda_failure()
    return out


def doctor() -> dict:
    """Installed packages and which backends really load on this machine."""
    return {"python": sys.version.split()[0], "packages": installed_packages(), "backends": backend_failures()}


# --- gpu-check ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """One `ttdeploy` command of the check, the backend it needs, and its time box."""

    name: str
    args: tuple[str, ...]  # after `ttdeploy`; "{json}" becomes this step's JSON output path
    needs: str  # a backend_failures() key
    budget_s: int


def plan(bundle: Path, skill: str) -> list[Step]:
    """The issue's list: engines at three precisions, verify per GPU backend, TRT-vs-ORT parity (verify --backend
    trt compares TensorRT with the PyTorch reference, ort-cuda likewise: both against one reference), bench at
    batch 1 and 64, MuJoCo Warp on CUDA at 1,024 and 4,096 worlds, and a short closed-loop sim2sim on TensorRT.
    Budgets sum to 445 s, inside BUDGET_S."""
    b, s = str(bundle), skill
    steps = [Step(f"engines {p}", ("export", "--bundle", b, "--skill", s, "--format", "trt", "--precision", p), "trt",
                  budget)  # fmt: skip
             for p, budget in (("fp32", 60), ("tf32", 45), ("fp16", 60))]
    steps += [Step(f"verify {k}", ("verify", "--bundle", b, "--skill", s, "--backend", k, "--json", "{json}"), k, budget)
              for k, budget in (("trt", 30), ("ort-trt", 60), ("ort-cuda", 25))]  # fmt: skip
    steps += [
        Step("bench trt batch 1, 64", ("bench", "--bundle", b, "--skill", s, "--backend", "trt", "--batch", "1",
                                       "--batch", "64", "--row-seconds", "3", "--no-memory", "--json", "{json}"),
             "trt", 45),
        Step("sim bench mjwarp cuda:0", ("sim", "bench", "--sim", "mjwarp", "--device", "cuda:0", "--num-envs", "1024",
                                         "--num-envs", "4096", "--seconds", "3", "--json", "{json}"),
             "mjwarp-cuda", 60),
        Step("sim2sim trt", ("sim2sim", "--bundle", b, "--skill", s, "--backend", "trt", "--episodes", "1",
                             "--seconds", "2", "--json", "{json}"), "trt", 60),
    ]  # fmt: skip
    return steps


def _tail(text: str, n: int = 1500) -> str:
    return text[-n:] if text else ""


def run_step(step: Step, failures: dict[str, str | None], workdir: Path, *, deadline: float,
             runner: Callable = subprocess.run) -> dict:
    """Run one step under its time box; skipped (with the reason) where its backend does not load or the
    check's budget would be overrun."""
    json_path = workdir / f"{step.name.replace(' ', '_').replace(',', '')}.json"
    argv = [sys.executable, "-m", "tt_deploy.cli", *(str(json_path) if a == "{json}" else a for a in step.args)]
    row = {"step": step.name, "command": shlex.join(["ttdeploy", *argv[3:]]), "budget_s": step.budget_s}
    reason = failures.get(step.needs)
    if reason is None and step.needs in ("trt", "ort-trt", "ort-cuda", "mjwarp-cuda"):
        reason = failures.get("cuda") and f"no CUDA GPU: {failures['cuda']}"
    if reason is not None:
        return {**row, "status": "skipped", "seconds": 0.0, "reason": f"{step.needs}: {reason}"}
    left = deadline - time.monotonic()
    if left < step.budget_s:
        return {**row, "status": "skipped", "seconds": 0.0,
                "reason": f"{left:.0f} s left of the check's budget, the step needs up to {step.budget_s} s"}
    t0 = time.monotonic()
    try:
        done = runner(argv, capture_output=True, text=True, timeout=step.budget_s)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        return {**row, "status": "timed out", "seconds": round(time.monotonic() - t0, 1), "output_tail": _tail(out)}
    seconds = round(time.monotonic() - t0, 1)
    result = {**row, "status": "passed" if done.returncode == 0 else "failed", "exit_code": done.returncode,
              "seconds": seconds, "output_tail": _tail((done.stdout or "") + (done.stderr or ""))}  # fmt: skip
    if json_path.is_file():
        try:
            result["numbers"] = json.loads(json_path.read_text())
        except ValueError:
            result["numbers_error"] = f"{json_path.name} is not JSON"
    return result


def gpu_check(bundle: Path, skill: str, *, budget_s: float = BUDGET_S, progress: Callable | None = None,
              runner: Callable = subprocess.run) -> dict:
    """Every step of `plan`, in order, each time-boxed; the report has the doctor's findings and one row a step."""
    t0 = time.monotonic()
    found = doctor()
    deadline = t0 + budget_s
    rows = []
    with tempfile.TemporaryDirectory(prefix="tt-gpu-check-") as tmp:
        for step in plan(bundle, skill):
            row = run_step(step, found["backends"], Path(tmp), deadline=deadline, runner=runner)
            rows.append(row)
            if progress is not None:
                progress(row)
    counts = {k: sum(r["status"] == k for r in rows) for k in ("passed", "failed", "timed out", "skipped")}
    return {"bundle": str(bundle), "skill": skill, "budget_s": budget_s, "doctor": found, "steps": rows,
            "summary": counts, "seconds": round(time.monotonic() - t0, 1)}  # fmt: skip
