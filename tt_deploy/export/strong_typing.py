"""Strongly typed reduced-precision copies of fp32 ONNX graphs, for TensorRT's strongly typed networks.

Why: TensorRT 10.12 deprecated weak typing and TensorRT 11 removed it (BuilderFlag.FP16, layer precision
pins, INormalizationLayer.compute_precision). A strongly typed network computes every tensor in the type the
graph gives it, so the precision has to be written into the ONNX graph itself. `strongly_typed(model)`
does that with the `onnx` package only:

- every node computes in fp16 (or bf16), its float initializers converted, except the nodes
  `tensorrt_build.fp32_pinned_nodes` picks (LayerNorm, Softmax, the attention-score chain, reductions) and
  any node reading a constant outside the reduced type's finite range: those stay fp32;
- where a tensor crosses between the two regions an explicit Cast is inserted (one per tensor and type);
- graph inputs and outputs keep their dtype (Cast at the boundary), so the runtime's I/O contract is the
  fp32 graph's; bool / integer tensors are never touched.

The result must pass `onnx.checker.check_model(full_check=True)`; the tracked types are compared with ONNX
shape inference, so a type this module got wrong is an error here, not a TensorRT parse failure later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tt_deploy.errors import TTDeployError, UnknownNameError

LOW_TYPES = {"fp16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16}
_FLOATS = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16})
_SUFFIX = {TensorProto.FLOAT: "fp32", TensorProto.FLOAT16: "fp16", TensorProto.BFLOAT16: "bf16"}
_FINITE_MAX = {TensorProto.FLOAT16: 65504.0, TensorProto.BFLOAT16: 3.38e38}
_CAST_DOMAIN = "strong_typing"  # prefix of the names of nodes and tensors this module adds


@dataclass(frozen=True)
class StrongTyping:
    """The rewritten model and what the rewrite did (for logs and tests)."""

    model: onnx.ModelProto
    precision: str
    fp32_nodes: tuple[str, ...]  # original nodes that compute in fp32 (pinned, range, no reduced-type schema)
    range_kept: tuple[str, ...]  # of those, the ones kept only because a constant overflows the reduced type
    casts_added: int  # Cast nodes inserted (activations, graph inputs and outputs)
    initializers_converted: int  # float initializers written in the reduced type


def strongly_typed(
    model: onnx.ModelProto, precision: str = "fp16", pinned: Sequence[str] | None = None
) -> StrongTyping:
    """Rewrite an fp32 graph so its own types say fp16 / bf16, with `pinned` nodes (default:
    `fp32_pinned_nodes(model)`) kept in fp32 behind explicit Casts; graph I/O dtypes unchanged."""
    if precision not in LOW_TYPES:
        raise UnknownNameError("strongly typed precision", precision, LOW_TYPES)
    low = LOW_TYPES[precision]
    _check_supported(model, low)
    if pinned is None:
        from tt_deploy.export.tensorrt_build import fp32_pinned_nodes  # it imports this module

        pinned = fp32_pinned_nodes(model)
    src = onnx.ModelProto()
    src.CopyFrom(model)
    nodes = list(src.graph.node)
    types = _elem_types(src)
    consts = _constants(src)
    names = set(pinned)
    pinned_at = {i for i, n in enumerate(nodes) if n.name and n.name in names}
    range_at = {i for i, n in enumerate(nodes) if i not in pinned_at and _overflows(n, consts, types, low)}
    rw = _Rewriter(src, types, low)
    fp32_at = pinned_at | range_at | {i for i, n in enumerate(nodes) if not rw.supports(n, low)}
    for i, node in enumerate(nodes):
        rw.add(node, TensorProto.FLOAT if i in fp32_at else low)
    out = rw.finish()
    try:
        onnx.checker.check_model(out, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(out, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise TTDeployError(f"strong typing produced an invalid graph: {str(exc).splitlines()[0]}") from exc
    _check_types(inferred, rw.types)
    return StrongTyping(
        inferred, precision, tuple(n.name for i, n in enumerate(nodes) if i in fp32_at),
        tuple(n.name for i, n in enumerate(nodes) if i in range_at), rw.casts, rw.converted,
    )  # fmt: skip


def _check_supported(model: onnx.ModelProto, low: int) -> None:
    """Subgraphs (If / Loop / Scan) and custom domains would need their own typing: refuse them."""
    for n in model.graph.node:
        if n.domain not in ("", "ai.onnx"):
            raise TTDeployError(f"strong typing: node {n.name!r} is in custom domain {n.domain!r}")
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in n.attribute):
            raise TTDeployError(f"strong typing: node {n.name!r} ({n.op_type}) has a subgraph")
    if low == TensorProto.BFLOAT16 and _opset(model) < 13:
        raise TTDeployError(f"strong typing to bf16 needs opset >= 13 (Cast to bfloat16); got {_opset(model)}")


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor of the fp32 graph (strict shape inference)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except onnx.shape_inference.InferenceError as exc:
        raise TTDeployError(f"strong typing: ONNX shape inference failed: {str(exc).splitlines()[0]}") from exc
    g = inferred.graph
    types = {i.name: i.data_type for i in g.initializer}
    for v in (*g.input, *g.value_info, *g.output):
        if v.type.HasField("tensor_type"):
            types[v.name] = v.type.tensor_type.elem_type
    missing = [o for n in g.node for o in n.output if o and o not in types]
    if missing:
        raise TTDeployError(f"strong typing: shape inference gave no type for {missing[:3]}")
    return types


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Initializer and Constant-node values, to find constants the reduced type cannot hold."""
    out = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            attr = next((a for a in n.attribute if a.name == "value"), None)
            if attr is not None:
                out[n.output[0]] = numpy_helper.to_array(attr.t)
    return out


def _overflows(node: onnx.NodeProto, consts: dict, types: dict[str, int], low: int) -> bool:
    """True when a float constant the node reads has a finite value beyond the reduced type's range
    (it would turn into inf); +-inf itself (attention masks) converts exactly."""
    names = node.output if node.op_type == "Constant" else node.input
    for name in names:
        v = consts.get(name)
        if v is not None and types.get(name) == TensorProto.FLOAT and v.size:
            finite = np.abs(v[np.isfinite(v)])
            if finite.size and float(finite.max()) > _FINITE_MAX[low]:
                return True
    return False


class _Rewriter:
    """Builds the new node list in graph order, tracking each tensor's new element type."""

    def __init__(self, model: onnx.ModelProto, types: dict[str, int], low: int):
        self.model, self.orig, self.low = model, dict(types), low
        self.types = {i.name: types[i.name] for i in (*model.graph.input, *model.graph.initializer)}
        self.inits = {i.name: i for i in model.graph.initializer}
        self.outputs = {o.name for o in model.graph.output}
        self.nodes: list[onnx.NodeProto] = []
        self.new_inits: list[onnx.TensorProto] = []
        self.as_type: dict[tuple[str, int], str] = {}
        self.used_names = {n.name for n in model.graph.node} | set(types)
        self.casts = self.converted = 0
        self.opset = _opset(model)

    def supports(self, node: onnx.NodeProto, low: int) -> bool:
        """Whether the op's schema allows the reduced type wherever a float type flows through it."""
        schema = _schema(node, self.opset)
        allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
        want = f"tensor({helper.tensor_dtype_to_string(low).split('.')[-1].lower()})"
        return all(want in allowed.get(p, {want}) for p in _flowing_params(node, schema, self.orig))

    def add(self, node: onnx.NodeProto, compute: int) -> None:
        """Emit `node` computing in `compute`: its float inputs cast / converted to it, outputs typed."""
        new = onnx.NodeProto()
        new.CopyFrom(node)
        if node.op_type in ("Constant", "ConstantOfShape", "Cast"):
            self._retype_by_attribute(new, compute)
        else:
            schema = _schema(node, self.opset)
            flowing = _flowing_params(node, schema, self.orig)
            for i, name in enumerate(node.input):
                if name and _param(schema.inputs, i) in flowing and self.types[name] != compute:
                    new.input[i] = self._as(name, compute)
            for j, name in enumerate(node.output):
                if name:
                    keep = self.orig[name]
                    self.types[name] = compute if _param(schema.outputs, j) in flowing else keep
        boundary = [
            (j, o) for j, o in enumerate(new.output) if o in self.outputs and self.types[o] != self.orig[o]
        ]  # graph outputs keep their type: the node writes a renamed tensor, a Cast writes the output
        for j, o in boundary:
            new.output[j] = self._fresh(f"{o}.{_SUFFIX[self.types[o]]}")
            self.types[new.output[j]] = self.types[o]
        self.nodes.append(new)
        for j, o in boundary:
            self._emit_cast(new.output[j], o, self.orig[o])

    def _retype_by_attribute(self, node: onnx.NodeProto, compute: int) -> None:
        """Constant / ConstantOfShape / Cast get their output type from an attribute, not an input."""
        out = node.output[0]
        if self.orig[out] != TensorProto.FLOAT or compute == TensorProto.FLOAT:
            self.types[out] = self.orig[out]
            return
        if node.op_type == "Cast":
            next(a for a in node.attribute if a.name == "to").i = compute
        else:
            attr = next((a for a in node.attribute if a.name in ("value", "value_float", "value_floats")), None)
            if node.op_type == "ConstantOfShape" and attr is None:  # default: one float32 zero
                zero = numpy_helper.from_array(np.zeros(1, np.float32))
                node.attribute.append(helper.make_attribute("value", zero))
                attr = node.attribute[-1]
            if attr.name == "value":
                attr.t.CopyFrom(_convert(numpy_helper.to_array(attr.t), attr.t.name, compute))
            else:  # value_float(s): a float attribute becomes a typed tensor
                v = np.asarray(attr.f if attr.name == "value_float" else list(attr.floats), np.float32)
                node.attribute.remove(attr)
                node.attribute.append(helper.make_attribute("value", _convert(v, "", compute)))
        self.types[out] = compute

    def _as(self, name: str, dtype: int) -> str:
        """`name` in `dtype`: a converted initializer copy, or a Cast shared by every consumer."""
        key = (name, dtype)
        if key not in self.as_type:
            new = self._fresh(f"{name}.{_SUFFIX[dtype]}")
            if name in self.inits:
                self.new_inits.append(_convert(numpy_helper.to_array(self.inits[name]), new, dtype))
                self.converted += 1
                self.types[new] = dtype
            else:
                self._emit_cast(name, new, dtype)
            self.as_type[key] = new
        return self.as_type[key]

    def _emit_cast(self, src: str, dst: str, dtype: int) -> None:
        name = self._fresh(f"{_CAST_DOMAIN}/{src}->{_SUFFIX[dtype]}")
        self.nodes.append(helper.make_node("Cast", [src], [dst], name=name, to=dtype))
        self.types[dst] = dtype
        self.casts += 1

    def _fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.used_names:
            name, k = f"{base}_{k}", k + 1
        self.used_names.add(name)
        return name

    def finish(self) -> onnx.ModelProto:
        """The model with the new nodes; fp32 initializers no node reads any more are dropped."""
        g = self.model.graph
        read = {i for n in self.nodes for i in n.input} | {o.name for o in g.output}
        kept = [i for i in g.initializer if i.name in read]
        del g.node[:], g.initializer[:], g.value_info[:]
        g.node.extend(self.nodes)
        g.initializer.extend([*kept, *self.new_inits])
        return self.model


def _schema(node: onnx.NodeProto, opset: int):
    try:
        return onnx.defs.get_schema(node.op_type, opset, node.domain or "")
    except onnx.defs.SchemaError as exc:
        raise TTDeployError(f"strong typing: no ONNX schema for {node.op_type} at opset {opset}") from exc


def _param(formals, i: int) -> str:
    """Type parameter (or fixed type string) of the i-th actual input/output; variadics repeat the last."""
    return formals[min(i, len(formals) - 1)].type_str if formals else ""


def _flowing_params(node: onnx.NodeProto, schema, types: dict[str, int]) -> set[str]:
    """Type parameters bound to a float input that the op carries through to an output: the ones whose
    type is the node's compute type (Cast's, Shape's or Pow's exponent's input type does not flow)."""
    out_params = {_param(schema.outputs, j) for j in range(len(node.output))}
    return {
        p for i, name in enumerate(node.input)
        if name and types.get(name) in _FLOATS and (p := _param(schema.inputs, i)) in out_params
        and not p.startswith("tensor(")
    }  # fmt: skip


def _convert(value: np.ndarray, name: str, dtype: int) -> onnx.TensorProto:
    np_type = helper.tensor_dtype_to_np_dtype(dtype)
    return numpy_helper.from_array(np.asarray(value, np.float32).astype(np_type), name)


def _check_types(model: onnx.ModelProto, tracked: dict[str, int]) -> None:
    """ONNX inference must agree with the types the rewrite tracked (a disagreement is a bug here)."""
    g = model.graph
    got = {v.name: v.type.tensor_type.elem_type for v in (*g.input, *g.value_info, *g.output)}
    got |= {i.name: i.data_type for i in g.initializer}
    wrong = [(n, tracked[n], t) for n, t in got.items() if n in tracked and tracked[n] != t]
    if wrong:
        raise TTDeployError(f"strong typing: tracked types disagree with ONNX inference: {wrong[:3]}")


__all__ = ["LOW_TYPES", "StrongTyping", "strongly_typed"]
