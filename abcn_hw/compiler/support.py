"""Support check: list EVERY node the lowering cannot handle, before any rewriting."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnx import NodeProto
from qonnx.core.modelwrapper import ModelWrapper

from ..errors import UnsupportedModelError, group_problems
from .graphutil import attr, const
from .patterns import QONNX_DOMAINS
from .regions import analyse

#: float ops allowed between layers (per-channel / scalar constant operand) or on the input
ELEMENTWISE = {"Mul", "Add", "Sub", "Div"}
UNARY = {"Neg"}
#: float ops kept verbatim in the lowered graph (exact: the same float32 op on the same values);
#: Round: a residual join's requantisation Round(v * 2**-g), lowered to a ResidualAdd shift
FLOAT_KEPT = {"AveragePool", "GlobalAveragePool", "ReduceSum", "Round"}
STRUCTURAL = {"Reshape", "Flatten", "MaxPool", "Pad", "Transpose", "BatchNormalization"}


def is_spatial_sum(model: ModelWrapper, node: NodeProto) -> bool:
    """``node`` is a ReduceSum over exactly the axes (2, 3) of a rank-4 tensor (a global sum pool)."""
    shape = model.get_tensor_shape(node.input[0])
    axes = const(model, node.input[1]) if len(node.input) > 1 else None
    if axes is None or shape is None or len(shape) != 4:
        return False
    return sorted(int(a) % 4 for a in np.asarray(axes).reshape(-1)) == [2, 3]


def double_sum_pool(model: ModelWrapper, node: NodeProto) -> tuple[NodeProto, NodeProto] | None:
    """``Cast<double> -> ReduceSum(H, W) -> Cast<float>`` around the spatial sum ``node`` (the zoo
    ResNets' exact global pool, :class:`abcn_hw.nn.GlobalSumPool2d`): (cast in, cast out) or None."""
    from onnx import TensorProto

    if node.op_type != "ReduceSum" or not is_spatial_sum(model, node):
        return None
    cin = model.find_producer(node.input[0])
    cons = model.find_consumers(node.output[0]) or []
    if cin is None or cin.op_type != "Cast" or attr(cin, "to") != TensorProto.DOUBLE or len(cons) != 1 \
            or cons[0].op_type != "Cast" or attr(cons[0], "to") != TensorProto.FLOAT:
        return None
    if len(model.find_consumers(cin.output[0]) or []) != 1:
        return None
    return cin, cons[0]


@dataclass(frozen=True)
class Problem:
    op_type: str
    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.op_type} '{self.name}': {self.reason}"


def find_problems(model: ModelWrapper) -> list[Problem]:
    problems: list[Problem] = []
    covered: set[str] = set()  # node names that belong to a recognised layer operand

    def bad(node: NodeProto | None, reason: str, fallback: NodeProto | None = None) -> None:
        n = node if node is not None else fallback
        problems.append(Problem(n.op_type if n is not None else "?", n.name if n is not None else "?", reason))

    # graph input shape: static except the batch dimension
    for inp in model.graph.input:
        if model.get_initializer(inp.name) is not None:
            continue
        dims = inp.type.tensor_type.shape.dim
        if not len(dims) or any(not d.dim_value for d in list(dims)[1:]):
            problems.append(Problem("input", inp.name, "dynamic or unknown input shape (only the batch may be symbolic)"))
    analysis = analyse(model)
    for node, reason, fallback in analysis.problems:
        bad(node, reason, fallback)
    covered.update(analysis.covered)
    products = {p.node.name: p for layer in analysis.layers for p in layer.products}
    for node in model.graph.node:
        if node.op_type not in ("Conv", "MatMul", "Gemm"):
            continue
        if node.op_type == "Gemm":
            bad(node, "Gemm left after normalisation (transA or alpha/beta != 1)")
            continue
        if node.op_type == "Conv":
            if attr(node, "group", 1) != 1:
                bad(node, f"grouped convolution (group={attr(node, 'group')}) is not supported")
            if any(d != 1 for d in attr(node, "dilations", [1, 1])):
                bad(node, "dilated convolution is not supported")
            if len(node.input) > 2 and node.input[2]:  # a constant bias became an Add (ExtractConvBias)
                bad(node, "convolution bias computed at run time (not a constant) is not supported")
            if attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                bad(node, "auto_pad is not supported (use explicit pads)")
            p = products.get(node.name)
            if p is not None and p.act.kind == "bits" and any(attr(node, "pads", [0, 0, 0, 0])) and any(p.act.pads):
                bad(node, "convolution pads an input that an explicit Pad already pads (merge the two paddings)")
            if p is not None and len(p.kernel) != 2:
                bad(node, "only 2-D convolutions are supported")
    named = {p.name for p in problems}
    for node in model.graph.node:  # the float64 sum pool idiom: its two casts are part of the pool
        casts = double_sum_pool(model, node)
        if casts is not None:
            covered.update(c.name for c in casts)
    for node in model.graph.node:
        if node.name in covered or node.name in named or node.op_type in ("Conv", "MatMul", "Gemm"):
            continue
        op = node.op_type
        if node.domain in QONNX_DOMAINS:
            if op == "Quant":
                bad(node, "Quant that neither quantizes the graph input nor feeds a convolution / matrix product")
            elif op == "BipolarQuant":
                bad(node, "BipolarQuant that does not feed a convolution or matrix product")
            else:
                bad(node, f"unsupported QONNX op {op}")
            continue
        if node.domain not in ("", "ai.onnx"):
            bad(node, f"unknown op domain '{node.domain}'")
            continue
        if op in ELEMENTWISE:
            consts = [i for i in node.input if const(model, i) is not None]
            if op == "Add" and not consts:
                continue  # residual join of two float tensors: kept in float32
            if len(consts) != 1:
                bad(node, "elementwise op with two constant operands or two run-time operands")
            continue
        if op in ("Dropout", "Identity") or op in UNARY:
            continue
        if op in FLOAT_KEPT:
            if op == "AveragePool" and (attr(node, "ceil_mode", 0) or any(attr(node, "pads", [0, 0, 0, 0]))):
                bad(node, "AveragePool with ceil_mode or padding is not supported")
            if op == "ReduceSum" and not is_spatial_sum(model, node):
                bad(node, "ReduceSum other than a sum over the spatial axes (2, 3) of a 4-D tensor (a global sum pool)")
            continue
        if op == "BatchNormalization":
            if any(const(model, i) is None for i in node.input[1:]):
                bad(node, "batch norm parameters are not constants")
            continue
        if op == "MaxPool":
            if attr(node, "ceil_mode", 0) or any(d != 1 for d in attr(node, "dilations", [1, 1])):
                bad(node, "MaxPool with ceil_mode or dilation is not supported")
            continue
        if op in ("Reshape", "Flatten"):
            if op == "Reshape" and const(model, node.input[1]) is None:
                bad(node, "dynamic shape: Reshape target is computed at run time")
            continue
        if op in STRUCTURAL:
            bad(node, f"{op} outside a recognised layer operand is not supported")
            continue
        bad(node, f"op type {op} is not supported by the lowering")
    return problems


def check_support(model: ModelWrapper, where: str | None = None) -> None:
    """Raise one UnsupportedModelError listing every problem (nothing is rewritten)."""
    problems = find_problems(model)
    if problems:
        lines = group_problems([(p.reason, f"{p.op_type} '{p.name}'") for p in problems])
        reasons = len({p.reason for p in problems})
        raise UnsupportedModelError(f"cannot lower {len(problems)} node(s) for {reasons} reason(s), listed below", where,
                                    "only binary (BipolarQuant) or integer-input layers joined by linear ops "
                                    "(see docs/lowering.md) with batch norm, max pooling and flatten can be lowered",
                                    details=lines)
