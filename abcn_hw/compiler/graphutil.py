"""Small graph helpers on top of qonnx's ModelWrapper (no hand-kept node indices)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import NodeProto, helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper


def const(model: ModelWrapper, name: str) -> np.ndarray | None:
    """Initializer value of tensor ``name`` or None if it is computed at run time."""
    if not name:
        return None
    return model.get_initializer(name)


def single_consumer(model: ModelWrapper, tensor: str) -> NodeProto | None:
    """The only consumer of ``tensor`` (None if it has 0 or several, or is a graph output)."""
    if tensor in {o.name for o in model.graph.output}:
        return None
    cons = model.find_consumers(tensor)
    return cons[0] if cons is not None and len(cons) == 1 else None


def attr(node: NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def fresh_name(model: ModelWrapper, hint: str) -> str:
    """A readable tensor name based on ``hint`` that is not used in the graph yet."""
    g = model.graph
    used = {i.name for i in g.initializer} | {t for n in g.node for t in list(n.input) + list(n.output)} \
        | {v.name for v in list(g.input) + list(g.output) + list(g.value_info)} \
        | {a.tensor_name for a in g.quantization_annotation}
    name, i = hint, 0
    while name in used:
        i += 1
        name = f"{hint}_{i}"
    return name


def add_init(model: ModelWrapper, hint: str, value: np.ndarray) -> str:
    name = fresh_name(model, hint)
    model.set_initializer(name, value)
    return name


def insert_after(model: ModelWrapper, anchor: NodeProto, nodes: list[NodeProto]) -> None:
    """Insert ``nodes`` right after ``anchor`` (keeps the node list topologically sorted)."""
    graph = model.graph
    pos = list(graph.node).index(anchor) + 1
    for i, n in enumerate(nodes):
        graph.node.insert(pos + i, n)


def remove_dead_nodes(model: ModelWrapper) -> bool:
    """Remove nodes none of whose outputs are used; returns whether anything was removed."""
    graph = model.graph
    changed = False
    while True:
        outputs = {o.name for o in graph.output}
        used = {i for n in graph.node for i in n.input} | outputs
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
        changed = True
    if changed:
        used = {i for n in graph.node for i in n.input}
        for init in list(graph.initializer):
            if init.name not in used:
                graph.initializer.remove(init)
        for vi in list(graph.value_info):
            if vi.name not in used and vi.name not in {o for n in graph.node for o in n.output}:
                graph.value_info.remove(vi)
    return changed


def scalar(arr: np.ndarray | None) -> float | None:
    if arr is None or arr.size != 1:
        return None
    return float(np.asarray(arr).reshape(-1)[0])


def copy_model(model: ModelWrapper) -> ModelWrapper:
    return ModelWrapper(onnx.ModelProto.FromString(model.model.SerializeToString()))


def tensor_proto(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


_DT = {np.dtype(np.uint8): onnx.TensorProto.UINT8, np.dtype(np.int32): onnx.TensorProto.INT32,
       np.dtype(np.int64): onnx.TensorProto.INT64, np.dtype(np.float32): onnx.TensorProto.FLOAT}


def known_shape(model: ModelWrapper, tensor: str, node_name: str) -> list[int]:
    """The inferred shape of ``tensor``, or an UnsupportedModelError naming it (a graph whose shapes
    cannot be inferred, e.g. a malformed attribute upstream, cannot be lowered)."""
    shape = model.get_tensor_shape(tensor)
    if shape is None:
        raise_unknown_shape(tensor, node_name)
    return shape


def raise_unknown_shape(tensor: str, node_name: str):
    from ..errors import UnsupportedModelError

    raise UnsupportedModelError(f"the shape of tensor {tensor!r} (at node {node_name!r}) cannot be inferred",
                                fix="check the export: a malformed attribute or input upstream leaves it undefined")


def propagate_shapes(model: ModelWrapper, nodes: list[NodeProto]) -> None:
    """Annotate the outputs of freshly created nodes (our ops and the few standard ops the passes
    emit) with shapes and element types, in order, without qonnx's InferShapes (which cannot see
    through chains of custom ops)."""
    from .ops import DOMAIN, custom_op

    for node in nodes:
        ins = [model.get_tensor_shape(i) for i in node.input]
        if ins and ins[0] is None:
            raise_unknown_shape(node.input[0], node.name)
        if node.domain == DOMAIN:
            inst = custom_op[node.op_type](node)
            shape = inst.output_shape([tuple(s) if s is not None else None for s in ins])
            dtype = inst.output_np_dtype(model)
        elif node.op_type == "Reshape":
            s = ins[0]
            shape = (s[0], s[1], int(np.prod(s[2:])))
            dtype = np.dtype(np.uint8)
        elif node.op_type == "Cast":
            to = attr(node, "to")
            shape = tuple(ins[0])
            dtype = {onnx.TensorProto.FLOAT: np.dtype(np.float32), onnx.TensorProto.INT32: np.dtype(np.int32),
                     onnx.TensorProto.UINT8: np.dtype(np.uint8)}[to]
        else:  # elementwise on the first input (Div, Clip, Round, Mul by a broadcast constant)
            shape = tuple(ins[0])
            dtype = np.dtype(np.float32)
        model.set_tensor_shape(node.output[0], list(shape), _DT[dtype])
