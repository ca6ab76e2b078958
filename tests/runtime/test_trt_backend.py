"""Native TensorRT backend: selection and errors on CPU; engine-vs-onnxruntime parity on a GPU (skipped here)."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
import types

import numpy as np
import pytest
from bundle_helpers import random_inputs

from tt_deploy.errors import BundleError, InputError, MissingExtraError, TTDeployError
from tt_deploy.export.bundle import export_skill
from tt_deploy.runtime import BACKENDS, SkillRuntime
from tt_deploy.runtime import manifest as mf
from tt_deploy.runtime import trt_backend as tb

REASON = tb.unavailable_reason()
gpu = [
    pytest.mark.gpu,
    pytest.mark.skipif(REASON is not None, reason=f"needs TensorRT + cuda-python + a CUDA GPU: {REASON}"),
]


@pytest.fixture(scope="module")
def bundle(small_bfm_file, tmp_path_factory):
    _, path = small_bfm_file
    root = tmp_path_factory.mktemp("trtrt") / "deploy"
    for skill in ("reach", "steering"):
        export_skill(skill, bfm_path=path, bundle_dir=root)
    return root


def _engine(graph: mf.GraphSpec, precision: str, gpu_name="NVIDIA A10", version="10.9.0", sha=None):
    return mf.EngineSpec(
        f"engines/{graph.path}.{precision}",
        graph.path,
        sha or graph.sha256,
        "k",
        "s",
        precision,
        version,
        gpu_name,
        (),
    )


def test_auto_order_and_backend_names():
    from tt_deploy.runtime.session import ORT_BACKENDS

    assert list(BACKENDS) == ["trt", "ort-trt", "ort-cuda", "ort-cpu", "openvino"]
    assert ORT_BACKENDS == ("ort-trt", "ort-cuda", "ort-cpu")  # what auto tries after native TensorRT: never OpenVINO


@pytest.mark.skipif(REASON is None, reason="TensorRT and a GPU are present")
def test_explicit_trt_without_tensorrt_names_the_install_command(bundle):
    with pytest.raises(MissingExtraError, match=r'needs TensorRT.*pip install "tt-deploy\[gpu-cu12\]"'):
        SkillRuntime(bundle, backend="trt")


@pytest.mark.skipif(REASON is None, reason="TensorRT and a GPU are present")
def test_auto_reports_why_it_skips_trt(bundle, caplog):
    with caplog.at_level(logging.INFO, logger="tt_deploy.runtime.session"):
        with SkillRuntime(bundle, backend="auto") as rt:
            assert rt.backend != "trt"
    assert "not using native TensorRT" in caplog.text and REASON in caplog.text


def test_select_engine_prefers_fastest_and_honours_precision(bundle):
    man = mf.read_manifest(bundle)
    g = man.graph("fused", "reach", False)
    man = dataclasses.replace(man, engines=(_engine(g, "fp32"), _engine(g, "fp16"), _engine(g, "tf32")))
    assert tb.select_engine(man, g, "10.9.0", "NVIDIA A10").precision == "fp16"
    assert tb.select_engine(man, g, "10.9.0", "NVIDIA A10", "fp32").precision == "fp32"


@pytest.mark.parametrize(
    "version, gpu_name, sha",
    [("10.8.0", "NVIDIA A10", None), ("10.9.0", "NVIDIA L4", None), ("10.9.0", "NVIDIA A10", "0" * 64)],
)
def test_select_engine_refuses_engines_built_elsewhere(bundle, version, gpu_name, sha):
    man = mf.read_manifest(bundle)
    g = man.graph("fused", "reach", False)
    man = dataclasses.replace(man, engines=(_engine(g, "fp16", version=version, gpu_name=gpu_name, sha=sha),))
    with pytest.raises(BundleError, match="ttdeploy export --skill reach --format trt"):
        tb.select_engine(man, g, "10.9.0", "NVIDIA A10")


def test_select_engine_honours_the_batch_profile(bundle):
    man = mf.read_manifest(bundle)
    g = man.graph("fused", "reach", False)
    only64 = tuple(mf.ProfileShape(t.name, (64, *t.shape[1:]), (64, *t.shape[1:]), (64, *t.shape[1:])) for t in g.inputs)
    man = dataclasses.replace(man, engines=(dataclasses.replace(_engine(g, "fp16"), profile=only64),))
    assert tb.select_engine(man, g, "10.9.0", "NVIDIA A10", batch=64).precision == "fp16"
    with pytest.raises(BundleError, match="batch 1"):
        tb.select_engine(man, g, "10.9.0", "NVIDIA A10", batch=1)


def test_cuda_errors_name_the_call():
    ok, bad = object(), types.SimpleNamespace(name="cudaErrorMemoryAllocation")
    fake = types.SimpleNamespace(cudaError_t=types.SimpleNamespace(cudaSuccess=ok))
    assert tb._ok(fake, (ok, 1234), "cudaMalloc") == 1234
    assert tb._ok(fake, (ok,), "cudaFree") is None
    with pytest.raises(TTDeployError, match="cudaMalloc failed: cudaErrorMemoryAllocation"):
        tb._ok(fake, (bad, None), "cudaMalloc")


def test_backend_module_imports_neither_torch_nor_tensorrt():
    code = (
        "import sys, tt_deploy.runtime.trt_backend, tt_deploy.runtime;"
        "bad = [m for m in ('torch', 'tensorrt', 'cuda') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- GPU: engines vs onnxruntime -----------------------------------------------------------------
@pytest.fixture(scope="module")
def obs():
    x = random_inputs(1, 3)
    return {k: x[k] for k in ("obs", "historical_pose_obs", "historical_pose_obs_mask", "terrain")}


def _ort_actions(bundle, mode, obs, task_obs):
    with SkillRuntime(bundle, backend="ort-cpu", mode=mode) as rt:
        return rt.act(obs, task_obs)


@pytest.mark.gpu
@pytest.mark.skipif(REASON is not None, reason=f"needs TensorRT + cuda-python + a CUDA GPU: {REASON}")
@pytest.mark.parametrize("precision, atol", [("fp32", 1e-3), ("fp16", 1e-2)])
@pytest.mark.parametrize("mode", ["fused", "split"])
def test_trt_matches_onnxruntime(bundle, obs, precision, atol, mode):
    """Engines (batch-1 CUDA-graph path, act_into, switch, batch profile) vs ONNX Runtime CPU."""
    from tt_deploy.export.tensorrt_build import BatchProfile, build_bundle_engines
    from tt_deploy.runtime.session import SessionConfig

    build_bundle_engines(
        bundle, precision=precision, batch_profile=BatchProfile(1, 4, 8)
    )  # cached after the 1st
    task = np.array([0.5, -0.2, 0.1], np.float32)
    ref = _ort_actions(bundle, mode, obs, task)
    cfg = SessionConfig(trt_precision=precision)
    unverified = {"allow_unverified_precision": True}  # parity is measured here; fp16's closed-loop gate is sim2sim's
    with SkillRuntime(bundle, backend="trt", mode=mode, config=cfg, **unverified) as rt:
        got = rt.act(obs, task)
        out = np.empty(69, np.float32)
        rt.act_into(obs, task, out)
        rt.switch("steering")
        rt.act(obs, np.zeros(5, np.float32))
        rt.switch("reach")
        again = rt.act(obs, task)
    assert np.abs(got - ref).max() <= atol
    assert np.array_equal(got, out) and np.array_equal(got, again)  # graph replay is deterministic
    with SkillRuntime(bundle, backend="trt", mode=mode, batch=None, config=cfg, **unverified) as rt:
        batch = {k: np.repeat(v[None], 3, 0) for k, v in obs.items()}
        acts = rt.act_batch(batch, np.repeat(task[None], 3, 0))
    assert acts.shape == (3, 69) and np.abs(acts - ref).max() <= atol


def test_tensorrt_precisions_are_gated_like_every_reduced_precision(bundle):
    """tf32 / fp16 go through the same closed-loop gate as int8 and bf16, however they are asked for."""
    from tt_deploy.errors import InputError
    from tt_deploy.export.verify import _reduced
    from tt_deploy.runtime.session import SessionConfig
    from tt_deploy.runtime.skill_runtime import _check_precision, _require_precision_gate

    assert _check_precision("fp16", "trt", "fused", None) == "fp16"
    assert _check_precision("fp16", "ort-trt", "split", None) == "fp16"  # the TRT EP builds the fp32 graphs at fp16
    # the config's trt_precision is the precision the engines compute in: it counts as asked, so it is gated
    assert _check_precision("fp32", "trt", "fused", None, SessionConfig(trt_precision="tf32")) == "tf32"
    assert _check_precision("fp32", "ort-cpu", "fused", None, SessionConfig(trt_precision="fp16")) == "fp32"
    for args, message in ((("fp16", "ort-cpu"), "TensorRT's"), (("tf32", "ort-trt"), "fp16 only"),
                          (("int8", "trt"), "runs ONNX Runtime graphs")):
        with pytest.raises(InputError, match=message):
            _check_precision(*args, "fused", None)
    with pytest.raises(InputError, match="disagree"):
        _check_precision("fp16", "trt", "fused", None, SessionConfig(trt_precision="tf32"))
    from tt_deploy.runtime.verdicts import measured_evidence

    skill, manifest = mf.read_skill(bundle, "reach"), mf.read_manifest(bundle)
    with pytest.raises(InputError, match=r"has none.*sim2sim --skill reach --precision fp16 --backend trt"):
        _require_precision_gate(skill, "fp16", manifest)
    with pytest.raises(InputError, match="names no evidence"):  # a bare `passed: true` unlocks nothing
        _require_precision_gate(dataclasses.replace(skill, precision_gates={"fp16": {"passed": True}}), "fp16", manifest)
    enough = {"passed": True, "cell_names": ["nominal", *(f"c{i}" for i in range(12))], "episodes": 8,
              "episode_seconds": 5.0, "evidence": measured_evidence(bundle, "reach")}  # fmt: skip
    _require_precision_gate(dataclasses.replace(skill, precision_gates={"fp16": enough}), "fp16", manifest)
    # verify measures the engines a bundle has: fp16 engines of reach's fused graph, none of steering's
    fused = manifest.graph("fused", "reach")
    with_engines = dataclasses.replace(manifest, engines=(_engine(fused, "fp16"), _engine(fused, "fp32")))
    assert _reduced(with_engines, "reach", "trt") == ["fp16"] and _reduced(with_engines, "steering", "trt") == []
    assert _reduced(manifest, "reach", "ort-trt") == ["fp16"] and _reduced(manifest, "reach", "ort-cpu") == []


class _CaptureCudart:
    """cuda-python's runtime surface that _Step uses (a stand-in for NVIDIA's library, not one of ours)."""

    class cudaError_t:
        cudaSuccess = 0

    class cudaStreamCaptureMode:
        cudaStreamCaptureModeThreadLocal = 1

    def __init__(self):
        self.capturing = False
        self.calls = []

    def cudaStreamSynchronize(self, stream):
        return (0,)

    def cudaStreamBeginCapture(self, stream, mode):
        self.capturing = True
        return (0,)

    def cudaStreamEndCapture(self, stream):
        self.capturing = False
        return (0, "graph")

    def cudaGraphInstantiate(self, graph, flags):
        return (0, "exec")


class _FailingEngine:
    def __init__(self, fail_at: int):
        self.calls, self.fail_at = 0, fail_at

    def enqueue(self, n, h2d, d2h):
        self.calls += 1
        if self.calls == self.fail_at:
            raise TTDeployError("enqueue failed")


def test_a_failure_during_cuda_graph_capture_leaves_the_stream_out_of_capture(monkeypatch):
    cudart = _CaptureCudart()
    monkeypatch.setattr(tb, "_cudart", lambda: cudart)
    with pytest.raises(TTDeployError, match="enqueue failed"):
        tb._Step("stream", [(_FailingEngine(fail_at=2), set(), set())], capture=True)  # 1 = warm-up, 2 = captured
    assert not cudart.capturing
    step = tb._Step("stream", [(_FailingEngine(fail_at=0), set(), set())], capture=True)
    assert step.exec == "exec" and not cudart.capturing


def test_one_tensorrt_logger_serves_the_whole_process(monkeypatch):
    class Logger:  # TensorRT's Logger(severity) shape
        WARNING = 2

        def __init__(self, severity):
            self.severity = severity

    fake = types.SimpleNamespace(Logger=Logger)
    monkeypatch.setattr(tb, "_LOGGER", [])
    from tt_deploy.export.tensorrt_build import _logger

    first = tb.trt_logger(fake)
    assert _logger(fake) is first and tb.trt_logger(fake) is first and first.severity == Logger.WARNING


class _AllocCudart(_CaptureCudart):
    """Device/pinned allocations that record what is freed (host memory is real: the engine views it)."""

    def __init__(self):
        super().__init__()
        self.buffers, self.live = {}, set()

    def cudaMalloc(self, nbytes):
        ptr = 0x1000 + len(self.buffers)
        self.buffers[ptr] = None
        self.live.add(ptr)
        return (0, ptr)

    def cudaMallocHost(self, nbytes):
        import ctypes

        buf = ctypes.create_string_buffer(nbytes)
        ptr = ctypes.addressof(buf)
        self.buffers[ptr] = buf
        self.live.add(ptr)
        return (0, ptr)

    def cudaFree(self, ptr):
        self.live.discard(ptr)
        return (0,)

    cudaFreeHost = cudaFree


def _fake_tensorrt(accept_shape: bool, context=True):
    """TensorRT's Runtime / engine / context surface for a (1, 4) -> (1, 2) float engine."""
    mode = types.SimpleNamespace(INPUT="in", OUTPUT="out")
    shapes = {"x": (1, 4), "y": (1, 2)}

    class Context:
        def set_input_shape(self, name, shape):
            return accept_shape

        def get_tensor_shape(self, name):
            return shapes[name]

        def set_tensor_address(self, name, ptr):
            return True

    class Engine:
        num_io_tensors = 2

        def get_tensor_name(self, i):
            return "xy"[i]

        def get_tensor_mode(self, name):
            return mode.INPUT if name == "x" else mode.OUTPUT

        def get_tensor_shape(self, name):
            return shapes[name]

        def get_tensor_dtype(self, name):
            return "float32"

        def create_execution_context(self):
            return Context() if context else None

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            return Engine()

    class Logger:
        WARNING = 2

        def __init__(self, severity):
            pass

    return types.SimpleNamespace(Runtime=Runtime, Logger=Logger, TensorIOMode=mode, nptype=np.dtype)


def test_engine_set_up_checks_tensorrt_returns_and_frees_what_it_allocated(monkeypatch):
    cudart = _AllocCudart()
    monkeypatch.setattr(tb, "_cudart", lambda: cudart)
    monkeypatch.setattr(tb, "_trt", lambda: _fake_tensorrt(accept_shape=True))
    engine = tb.TrtEngine(b"", "stream", name="ok")
    assert engine.max_batch == 1 and len(cudart.live) == 4  # device + pinned host for x and y
    engine.free()
    assert not cudart.live
    monkeypatch.setattr(tb, "_trt", lambda: _fake_tensorrt(accept_shape=False))
    with pytest.raises(InputError, match="outside the engine's profile"):
        tb.TrtEngine(b"", "stream", name="bad shape")
    assert not cudart.live  # nothing leaked by the half-built engine
    monkeypatch.setattr(tb, "_trt", lambda: _fake_tensorrt(accept_shape=True, context=False))
    with pytest.raises(BundleError, match="execution context"):
        tb.TrtEngine(b"", "stream", name="no context")
