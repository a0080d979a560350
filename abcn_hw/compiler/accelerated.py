"""The accelerated part of a lowered graph, and the check that it holds no float op.

The hardware runs what lies between the host's input quantizer (``Div -> Clip -> Round -> Cast``
of the first layer, or a ``FloatBaseQuant`` of a binarized input) and the final
``MultiBaseAccumulate``, whose integer logits the host scales (``Cast -> Mul(2**e) ->`` batch norm).
A residual join the lowering could not prove exact in integers stays float32 in the lowered graph
(exact in onnxruntime, but not mappable to integer hardware); the lowering records why in
``metadata_props[FLOAT_REGIONS_KEY]``, and :func:`check_integer_only` refuses it by name.
"""
from __future__ import annotations

import json

import onnx
from onnx import NodeProto

from ..errors import UnsupportedModelError
from .ops import DOMAIN

#: metadata key of a lowered graph: {node name: reason} of float regions kept between layers
FLOAT_REGIONS_KEY = "abcn_hw.float_regions"
#: standard ops that only move bits (the lowering's bit Reshape after a flatten)
_BIT_MOVES = ("Reshape", "Flatten", "Identity")


def float_regions(model: onnx.ModelProto) -> dict[str, str]:
    """{node name: reason} recorded by the lowering for float regions it kept (empty if none)."""
    for p in model.metadata_props:
        if p.key == FLOAT_REGIONS_KEY:
            return json.loads(p.value)
    return {}


def float_ops_in_accelerated_part(model: onnx.ModelProto) -> list[NodeProto]:
    """Standard-domain ops (other than bit reshapes) that are both downstream of an abcn_hw op and
    upstream of the final MultiBaseAccumulate: what integer hardware could not run. In graph order."""
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list[NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    down: set[str] = set()
    todo = [n for n in g.node if n.domain == DOMAIN]
    while todo:
        n = todo.pop()
        for o in n.output:
            for c in consumers.get(o, []):
                if c.name not in down:
                    down.add(c.name)
                    todo.append(c)
    finals = [n for n in g.node if n.domain == DOMAIN and n.op_type == "MultiBaseAccumulate"
              and not any(c.domain == DOMAIN for c in _descendants(n, consumers))]
    up: set[str] = set()
    todo = list(finals)
    while todo:
        n = todo.pop()
        for i in n.input:
            p = producer.get(i)
            if p is not None and p.name not in up:
                up.add(p.name)
                todo.append(p)
    return [n for n in g.node if n.name in up and n.name in down and n.domain != DOMAIN and n.op_type not in _BIT_MOVES]


def _descendants(node: NodeProto, consumers: dict) -> list[NodeProto]:
    seen: dict[str, NodeProto] = {}
    todo = [node]
    while todo:
        n = todo.pop()
        for o in n.output:
            for c in consumers.get(o, []):
                if c.name not in seen:
                    seen[c.name] = c
                    todo.append(c)
    return list(seen.values())


def check_integer_only(model: onnx.ModelProto, where: str | None = None) -> None:
    """One-line UnsupportedModelError naming the first float op of the accelerated part."""
    bad = float_ops_in_accelerated_part(model)
    if not bad:
        return
    reasons = float_regions(model)
    node = bad[0]
    why = next((f": {r}" for name, r in reasons.items() if name in {n.name for n in bad}), "")
    raise UnsupportedModelError(
        f"float32 op {node.op_type} '{node.name}' between two binary layers ({len(bad)} float op(s) in the "
        f"accelerated part; e.g. a residual join of float batch norms){why}", where,
        "use fixed-point batch norms on the joins (abcn_hw.nn.FixedPointBatchNorm, as the zoo ResNets) "
        "with few enough bases that the joins are exact, or run the lowered graph with onnxruntime")


__all__ = ["FLOAT_REGIONS_KEY", "check_integer_only", "float_ops_in_accelerated_part", "float_regions"]
