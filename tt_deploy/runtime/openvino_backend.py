"""OpenVINO CPU runner: one bundle graph compiled by OpenVINO, a GraphRunner (runtime/base.py).

Why a second CPU backend: on CPUs with AVX-512 bf16 / AMX, OpenVINO computes in bf16 by default, which
halves the bytes a batch-1 call reads; the issue measured the `paper` fused graph at 0.56x ONNX Runtime fp32
there. That default is also the trap: fp32 here pins `INFERENCE_PRECISION_HINT=f32`, so a runtime asked for
fp32 never computes in bf16 silently. bf16 is a reduced precision like int8: `SkillRuntime` loads it only
after `ttdeploy sim2sim --backend openvino --precision bf16` passed (skill.json precision_gates), and
`backend="auto"` never picks OpenVINO. It runs the bundle's fp32 ONNX graphs (bf16 is a compile option, not
a file), checked like ONNX Runtime's: sha256 of the bytes loaded, tt-deploy metadata, inputs and outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tt_deploy.errors import BundleError, MissingExtraError
from tt_deploy.runtime.manifest import GraphSpec
from tt_deploy.runtime.session import SessionConfig, check_metadata, physical_cores, read_verified

INSTALL_HINT = 'pip install "tt-deploy[openvino]"'
HINTS = {"fp32": "f32", "bf16": "bf16"}  # precision -> INFERENCE_PRECISION_HINT
_DTYPES = {"f32": "float32", "boolean": "bool", "i64": "int64"}


def require():
    """The openvino module, or MissingExtraError naming the install command."""
    try:
        import openvino
    except ImportError as exc:
        raise MissingExtraError(f"backend 'openvino' needs OpenVINO; install with: {INSTALL_HINT}") from exc
    return openvino


def available() -> bool:
    try:
        require()
    except MissingExtraError:
        return False
    return True


def _metadata(data: bytes) -> dict[str, str]:
    import onnx

    model = onnx.load_model_from_string(data)
    return {p.key: p.value for p in model.metadata_props}


def _check_io(kind: str, expected, ports, path: Path) -> None:
    got = [(p.get_any_name(), [d.get_length() if d.is_static else "?" for d in p.get_partial_shape()],
            _DTYPES.get(p.get_element_type().get_type_name(), p.get_element_type().get_type_name())) for p in ports]  # fmt: skip
    want = [(t.name, [d if isinstance(d, int) else "?" for d in t.shape], t.dtype) for t in expected]
    if got != want:
        raise BundleError(f"{path}: graph {kind} {got} do not match the manifest {want}; re-export the bundle")


class OpenVinoSession:
    """One bundle graph compiled for OpenVINO's CPU plugin at `precision` ("fp32" pinned, or "bf16")."""

    def __init__(self, bundle_dir: Path, spec: GraphSpec, config: SessionConfig, bfm_sha256: str, content: str = "",
                 precision: str = "fp32") -> None:  # fmt: skip
        ov = require()
        path = Path(bundle_dir) / content / spec.path
        self.spec, self.path, self.precision = spec, path, precision
        data = read_verified(path, spec.sha256)
        check_metadata(_metadata(data), spec, bfm_sha256, path)
        core = ov.Core()
        try:
            model = core.read_model(model=data, weights=b"")
            props = {"INFERENCE_PRECISION_HINT": HINTS[precision], "PERFORMANCE_HINT": "LATENCY",
                     "INFERENCE_NUM_THREADS": config.intra_op_threads or physical_cores()}  # fmt: skip
            self.compiled = core.compile_model(model, "CPU", props)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses from its C++ core
            raise BundleError(f"{path} does not compile with OpenVINO ({exc}); re-export the bundle") from exc
        actual = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        if actual != HINTS[precision]:
            raise BundleError(f"{path}: OpenVINO compiled it at {actual}, not {HINTS[precision]}; refusing")
        _check_io("inputs", spec.inputs, model.inputs, path)
        _check_io("outputs", spec.outputs, model.outputs, path)
        self.input_names = tuple(t.name for t in spec.inputs)
        self.inputs, self.outputs, self.graphs = spec.inputs, spec.outputs, (spec.path,)
        self._request = self.compiled.create_infer_request()

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        self._request.infer(feeds)
        return self._request.get_output_tensor(0).data.copy()

    def run_into(self, feeds: dict[str, np.ndarray], out: np.ndarray) -> np.ndarray:
        self._request.infer(feeds)
        np.copyto(out, self._request.get_output_tensor(0).data.reshape(out.shape))
        return out


__all__ = ["OpenVinoSession", "available", "require", "INSTALL_HINT"]
