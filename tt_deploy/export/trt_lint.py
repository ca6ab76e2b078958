"""TensorRT compatibility lint for bundle graphs, run on CPU (no tensorrt import): `ttdeploy export --lint`.

Checks each ONNX graph against what TensorRT 10's ONNX parser accepts, before anyone needs a GPU:

- every op is in TensorRT's ONNX operator support matrix (table below, with its source), no op from a
  custom domain and no op the parser implements through a plugin (plugins are not in our engines' build
  or our runtime; a missing plugin only shows up on the GPU machine at parse time);
- the opset is inside the range the parser supports and >= 17 (our graphs need LayerNormalization as one
  op so FP16 builds can pin it to FP32 as a single layer);
- data types: no DOUBLE/STRING/complex/unsigned-wide types; int64 only for shape-like tensors (shape
  arithmetic and constant indices, which TensorRT handles) - int64 graph I/O, int64 tensors computed
  from data, and int64 constants outside the int32 range are flagged (TensorRT < 10 narrows int64 to
  int32, and several layers have no int64 kernels);
- deploy graphs (`*.onnx`, batch 1) have fully static I/O shapes; batch graphs (`*.batch.onnx`) have
  only the leading `batch` axis symbolic (it becomes an optimisation profile).

Source of the op table: onnx/onnx-tensorrt `docs/operators.md`, "Supported ONNX Operators", revision for
TensorRT 10.15 ("supports operators in the inclusive range of opset 9 to opset 24"); the TensorRT 10.0
revision of the same file gives opset 9 to 20, which is the range used here because `tt-deploy[gpu-cu12]`
allows any TensorRT 10.x from 10.9. Ops marked "N" there are left out; restrictions that matter for us are noted.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import onnx
from onnx import TensorProto

log = logging.getLogger(__name__)

TABLE_SOURCE = (
    "onnx/onnx-tensorrt docs/operators.md (TensorRT 10.x ONNX parser operator support matrix; "
    "TensorRT 10.15 revision, opset floor/ceiling from the 10.0 revision: 9..20)"
)
TRT_OPSET_RANGE = (9, 20)  # TensorRT 10.0 parser: "inclusive range of opset 9 to opset 20"
DEPLOY_MIN_OPSET = 17  # = export.onnx_graphs.MIN_OPSET (not imported: that module imports torch)

# Op -> restriction from the support matrix ("" = none listed). Every op of our graphs is here
# (Add Clip Concat ConstantOfShape Div Gather Gemm LayerNormalization MatMul Mul Reshape Relu Shape
# Softmax Sub Transpose Unsqueeze Where); the rest of the "Y" rows are kept so a model change that
# adds a common op does not trip the lint.
SUPPORTED_OPS: dict[str, str] = {
    "Abs": "", "Acos": "", "Acosh": "", "Add": "", "And": "", "ArgMax": "", "ArgMin": "", "Asin": "",
    "Asinh": "", "Atan": "", "Atanh": "", "AveragePool": "2D/3D only", "BatchNormalization": "",
    "Cast": "", "CastLike": "", "Ceil": "", "Celu": "", "Clip": "", "Concat": "", "Constant": "",
    "ConstantOfShape": "", "Conv": "", "ConvTranspose": "", "Cos": "", "Cosh": "",
    "CumSum": "axis must be a build-time constant", "DepthToSpace": "", "DequantizeLinear": "",
    "Div": "", "Dropout": "is_training must be an initializer evaluating to False", "Einsum": "",
    "Elu": "", "Equal": "", "Erf": "", "Exp": "", "Expand": "", "EyeLike": "", "Flatten": "", "Floor": "",
    "Gather": "", "GatherElements": "", "GatherND": "", "Gelu": "", "Gemm": "", "GlobalAveragePool": "",
    "GlobalLpPool": "", "GlobalMaxPool": "", "Greater": "", "GreaterOrEqual": "", "GridSample": "4D input",
    "GroupNormalization": "", "GRU": "", "HardSigmoid": "", "HardSwish": "", "Hardmax": "",
    "Identity": "", "If": "", "InstanceNormalization": "", "IsInf": "", "IsNaN": "",
    "LayerNormalization": "only the first output Y is supported", "LeakyRelu": "", "Less": "",
    "LessOrEqual": "", "Log": "", "LogSoftmax": "", "Loop": "", "LRN": "", "LSTM": "",
    "LpNormalization": "", "LpPool": "", "MatMul": "", "Max": "", "MaxPool": "Indices output unsupported",
    "Mean": "", "MeanVarianceNormalization": "", "Min": "", "Mish": "", "Mod": "", "Mul": "", "Neg": "",
    "NonMaxSuppression": "", "NonZero": "", "Not": "", "OneHot": "depth must be a build-time constant",
    "Or": "", "Pad": "", "Pow": "", "PRelu": "", "QuantizeLinear": "", "RandomNormal": "",
    "RandomNormalLike": "", "RandomUniform": "", "RandomUniformLike": "", "Range": "", "Reciprocal": "",
    "ReduceL1": "axes must be an initializer", "ReduceL2": "axes must be an initializer",
    "ReduceLogSum": "axes must be an initializer", "ReduceLogSumExp": "axes must be an initializer",
    "ReduceMax": "axes must be an initializer", "ReduceMean": "axes must be an initializer",
    "ReduceMin": "axes must be an initializer", "ReduceProd": "axes must be an initializer",
    "ReduceSum": "axes must be an initializer", "ReduceSumSquare": "axes must be an initializer",
    "Relu": "", "Reshape": "", "Resize": "", "ReverseSequence": "", "RNN": "", "Round": "",
    "ScatterElements": "", "ScatterND": "reduction must be none", "Selu": "", "Shape": "", "Shrink": "",
    "Sigmoid": "", "Sign": "", "Sin": "", "Sinh": "", "Size": "", "Slice": "", "Softmax": "",
    "Softplus": "", "Softsign": "", "SpaceToDepth": "", "Split": "", "Sqrt": "", "Squeeze": "",
    "Sub": "", "Sum": "", "Tan": "", "Tanh": "", "ThresholdedRelu": "", "Tile": "",
    "TopK": "K must be an initializer", "Transpose": "", "Trilu": "", "Unsqueeze": "", "Where": "",
    "Xor": "",
}  # fmt: skip

# Ops the parser imports through a TensorRT plugin rather than a native layer (onnx-tensorrt
# builtin_op_importers: RoiAlign -> ROIAlign_TRT, DeformConv -> plugin, InstanceNormalization ->
# InstanceNormalization_TRT unless the parser's native-instancenorm flag is on). Any op that is not in
# the table and any custom-domain op also goes to the parser's plugin-registry fallback.
PLUGIN_OPS = frozenset({"RoiAlign", "DeformConv", "InstanceNormalization"})

_SHAPE_SOURCES = frozenset({"Shape", "Size"})
_BAD_DTYPES = {
    TensorProto.DOUBLE: "DOUBLE (TensorRT casts it down to FLOAT, clamping to +-FLT_MAX)",
    TensorProto.STRING: "STRING", TensorProto.COMPLEX64: "COMPLEX64", TensorProto.COMPLEX128: "COMPLEX128",
    TensorProto.UINT16: "UINT16", TensorProto.UINT32: "UINT32", TensorProto.UINT64: "UINT64",
    TensorProto.INT16: "INT16",
}  # fmt: skip
_INT32 = (-(2**31), 2**31 - 1)
SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One lint result. severity: "error" (TensorRT would refuse or change the graph) | "warning" | "info"."""

    severity: str
    code: str  # e.g. "unsupported-op", "plugin-op", "opset", "dtype", "int64", "dynamic-shape"
    graph: str  # graph file name or bundle-relative path
    message: str
    node: str | None = None


@dataclass(frozen=True)
class LintReport:
    """Findings over one or more graphs, plus the op histogram per graph (what was checked)."""

    findings: tuple[Finding, ...]
    ops: dict[str, dict[str, int]] = field(default_factory=dict)  # graph -> op_type -> count
    table_source: str = TABLE_SOURCE

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def ok(self) -> bool:
        """True when no finding is an error (warnings do not fail CI)."""
        return not self.errors

    def op_types(self) -> list[str]:
        """Sorted union of the op types of every linted graph."""
        return sorted({op for ops in self.ops.values() for op in ops})

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "table_source": self.table_source,
            "findings": [asdict(f) for f in self.findings],
            "ops": self.ops,
        }


# --- graph walking -------------------------------------------------------------------------------
def _all_nodes(graph: onnx.GraphProto):
    """Nodes of `graph` and of every subgraph (If/Loop/Scan bodies), depth first."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            subs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for sub in subs:
                yield from _all_nodes(sub)


def _tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    """Tensor name -> ONNX elem type, from inputs, outputs, initializers, Constants and shape inference."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception as exc:  # onnx raises InferenceError and plain Exceptions for odd graphs
        log.warning("shape inference failed (%s); dtype checks use declared types only", exc)
        inferred = model
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.value_info, *g.input, *g.output]}
    types.update({i.name: i.data_type for i in g.initializer})
    for node in g.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    types[node.output[0]] = a.t.data_type
    return types


def _shape_like(model: onnx.ModelProto) -> set[str]:
    """Tensors that are constants or computed only from constants and Shape/Size (shape arithmetic)."""
    g = model.graph
    like = {i.name for i in g.initializer}
    for node in g.node:  # topological order is required by the ONNX spec
        if node.op_type == "Constant" or node.op_type in _SHAPE_SOURCES:
            like.update(node.output)
        elif node.input and all(i in like or i == "" for i in node.input):
            like.update(node.output)
    return like


def _dims(value: onnx.ValueInfoProto) -> list[int | str | None]:
    out = []
    for d in value.type.tensor_type.shape.dim:
        out.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or None))
    return out


# --- checks --------------------------------------------------------------------------------------
def _check_opset(model: onnx.ModelProto, name: str) -> list[Finding]:
    found = []
    for imp in model.opset_import:
        if imp.domain not in ("", "ai.onnx"):
            found.append(Finding("error", "custom-domain", name,
                                 f"opset domain {imp.domain!r}: custom ops go to TensorRT's plugin fallback"))  # fmt: skip
            continue
        lo, hi = TRT_OPSET_RANGE
        if not lo <= imp.version <= hi:
            found.append(Finding("error", "opset", name,
                                 f"opset {imp.version} is outside TensorRT 10's parser range {lo}..{hi}"))  # fmt: skip
        elif imp.version < DEPLOY_MIN_OPSET:
            found.append(Finding("error", "opset", name,
                                 f"opset {imp.version} < {DEPLOY_MIN_OPSET}: LayerNormalization is decomposed into "
                                 "reductions that FP16 engines cannot pin as one layer; re-export with --opset 17"))  # fmt: skip
    return found


def _check_ops(model: onnx.ModelProto, name: str) -> list[Finding]:
    found, seen = [], set()
    for node in _all_nodes(model.graph):
        op, where = node.op_type, node.name or node.op_type
        if node.domain not in ("", "ai.onnx"):
            found.append(Finding("error", "plugin-op", name,
                                 f"{node.domain}::{op} is a custom op: TensorRT would look for a plugin", where))  # fmt: skip
        elif op in PLUGIN_OPS:
            found.append(Finding("error", "plugin-op", name,
                                 f"{op} is imported through a TensorRT plugin, not a native layer", where))  # fmt: skip
        elif op not in SUPPORTED_OPS:
            if op not in seen:
                found.append(Finding("error", "unsupported-op", name,
                                     f"{op} is not in TensorRT's ONNX operator support matrix", where))  # fmt: skip
            seen.add(op)
        elif op == "LayerNormalization" and sum(1 for o in node.output if o) > 1:
            found.append(Finding("error", "unsupported-op", name,
                                 "LayerNormalization: only the first output (Y) is supported", where))  # fmt: skip
    return found


def _check_dtypes(model: onnx.ModelProto, name: str) -> list[Finding]:
    found = []
    types = _tensor_types(model)
    g = model.graph
    for tname, t in types.items():
        if t in _BAD_DTYPES:
            found.append(Finding("error", "dtype", name, f"tensor {tname!r} has type {_BAD_DTYPES[t]}"))
    io = [*g.input, *g.output]
    for v in io:
        if v.type.tensor_type.elem_type == TensorProto.INT64:
            found.append(Finding("error", "int64", name,
                                 f"graph I/O {v.name!r} is int64; TensorRT would narrow it - use int32/float32/bool"))  # fmt: skip
    like, io_names = _shape_like(model), {v.name for v in io}
    for tname, t in types.items():
        if t == TensorProto.INT64 and tname not in like and tname not in io_names:
            found.append(Finding("warning", "int64", name,
                                 f"int64 tensor {tname!r} is computed from data, not shapes; TensorRT < 10 "
                                 "narrows it to int32 and several layers have no int64 kernels"))  # fmt: skip
    for init in g.initializer:
        if init.data_type == TensorProto.INT64 and init.dims and _out_of_int32(init):
            found.append(Finding("error", "int64", name,
                                 f"int64 initializer {init.name!r} holds values outside the int32 range; "
                                 "narrowing would clamp them"))  # fmt: skip
    return found


def _out_of_int32(init: onnx.TensorProto) -> bool:

    arr = onnx.numpy_helper.to_array(init)
    return bool(arr.size) and bool((arr < _INT32[0]).any() or (arr > _INT32[1]).any())


def _check_shapes(model: onnx.ModelProto, name: str, deploy: bool) -> list[Finding]:
    found = []
    inits = {i.name for i in model.graph.initializer}
    for v in [*model.graph.input, *model.graph.output]:
        if v.name in inits:
            continue
        dims = _dims(v)
        if not v.type.tensor_type.HasField("shape"):
            found.append(Finding("error", "dynamic-shape", name, f"{v.name!r} has no shape (unknown rank)"))
            continue
        symbolic = [i for i, d in enumerate(dims) if not isinstance(d, int) or d <= 0]
        if deploy and symbolic:
            found.append(Finding("error", "dynamic-shape", name,
                                 f"deploy graph I/O {v.name!r} has dynamic dims {dims}; the batch-1 engine "
                                 "needs a fully static shape"))  # fmt: skip
        elif not deploy and any(i != 0 for i in symbolic):
            found.append(Finding("error", "dynamic-shape", name,
                                 f"batch graph I/O {v.name!r} has dynamic dims {dims} beyond the batch axis; "
                                 "only axis 0 gets an optimisation profile"))  # fmt: skip
    return found


# --- public API ----------------------------------------------------------------------------------
def is_deploy_graph(path: str | Path) -> bool:
    """Deploy (static batch 1) graphs are `*.onnx`; `*.batch.onnx` are the dynamic-batch evaluation graphs."""
    return not str(path).endswith(".batch.onnx")


def lint_model(model: onnx.ModelProto, name: str = "model", *, deploy: bool = True) -> list[Finding]:
    """All findings for one in-memory ONNX model. deploy=True: static shapes required everywhere."""
    return [
        *_check_opset(model, name),
        *_check_ops(model, name),
        *_check_dtypes(model, name),
        *_check_shapes(model, name, deploy),
    ]


def lint_onnx(path: str | Path, *, deploy: bool | None = None, name: str | None = None) -> LintReport:
    """Lint one .onnx file (deploy inferred from the file name when None)."""
    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    name = name or path.name
    deploy = is_deploy_graph(path) if deploy is None else deploy
    ops = dict(sorted(Counter(n.op_type for n in _all_nodes(model.graph)).items()))
    return LintReport(tuple(lint_model(model, name, deploy=deploy)), {name: ops})


def lint_bundle(bundle_dir: str | Path) -> LintReport:
    """Lint every graph the bundle manifest lists (static graphs as deploy graphs)."""
    from tt_deploy.runtime import manifest as mf

    bundle_dir = Path(bundle_dir)
    manifest = mf.read_manifest(bundle_dir)
    findings: list[Finding] = []
    ops: dict[str, dict[str, int]] = {}
    for g in (g for g in manifest.graphs if g.precision == "fp32"):  # int8 graphs are ONNX Runtime's, not TensorRT's
        rep = lint_onnx(mf.content_dir(bundle_dir, manifest) / g.path, deploy=g.batch == "static", name=g.path)
        findings += rep.findings
        ops.update(rep.ops)
    report = LintReport(tuple(findings), ops)
    log.info("TensorRT lint of %s: %d graphs, %d errors, %d findings", bundle_dir, len(ops),
             len(report.errors), len(findings))  # fmt: skip
    return report


__all__ = ["Finding", "LintReport", "lint_model", "lint_onnx", "lint_bundle", "SUPPORTED_OPS", "PLUGIN_OPS",
           "TABLE_SOURCE", "TRT_OPSET_RANGE"]  # fmt: skip
