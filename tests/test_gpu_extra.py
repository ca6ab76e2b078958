"""The GPU extras pin one CUDA major: a mixed set fails on every driver of the other major (issue #39)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_each_gpu_extra_pins_one_cuda_major():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["gpu"] == extras["gpu-cu12"]
    pins = {req.split(">")[0].split("<")[0]: req for req in extras["gpu-cu12"]}
    assert set(pins) == {"onnxruntime-gpu", "tensorrt-cu12", "cuda-python"}  # no unsuffixed tensorrt: it picks cu13
    assert pins["cuda-python"].endswith("<13") and pins["tensorrt-cu12"].endswith("<11")  # TRT EP links TensorRT 10
