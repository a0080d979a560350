"""Clean-up and normalisation passes for Brevitas exports (TorchScript and dynamo exporters)."""
from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from ..graphutil import attr, const, remove_dead_nodes


class NormaliseOpsets(Transformation):
    """Standard domain first in opset_import (and at least opset 18, which the function bodies
    need: the float ops we keep have not changed since), IR version capped at 10."""

    def __init__(self, ir_version: int = 10, min_opset: int = 18):
        super().__init__()
        self.ir_version = ir_version
        self.min_opset = min_opset

    def apply(self, model: ModelWrapper):
        proto = model.model
        imports = sorted(proto.opset_import, key=lambda o: (o.domain not in ("", "ai.onnx"), o.domain))
        for o in imports:
            if o.domain in ("", "ai.onnx") and o.version < self.min_opset:
                o.version = self.min_opset
        del proto.opset_import[:]
        proto.opset_import.extend(imports)
        if proto.ir_version > self.ir_version:
            proto.ir_version = self.ir_version
        return model, False


class RemoveIdentityOps(Transformation):
    """Drop inference no-ops: Identity and Dropout (outputs rewired to the input)."""

    def apply(self, model: ModelWrapper):
        changed = False
        graph_outputs = {o.name for o in model.graph.output}
        for node in list(model.graph.node):
            if node.op_type not in ("Identity", "Dropout"):
                continue
            src, dst = node.input[0], node.output[0]
            if dst in graph_outputs:
                continue
            for cons in model.find_consumers(dst) or []:
                for i, name in enumerate(cons.input):
                    if name == dst:
                        cons.input[i] = src
            model.graph.node.remove(node)
            changed = True
        return model, changed


class GemmToMatMul(Transformation):
    """Gemm(A, B, C) -> MatMul(A, B') [+ Add(C)]: B' = Transpose(B) when transB, alpha = beta = 1."""

    def apply(self, model: ModelWrapper):
        changed = False
        for node in list(model.graph.node):
            if node.op_type != "Gemm" or attr(node, "transA", 0) or attr(node, "alpha", 1.0) != 1.0 \
                    or attr(node, "beta", 1.0) != 1.0:
                continue
            graph = model.graph
            pos = list(graph.node).index(node)
            b = node.input[1]
            new = []
            if attr(node, "transB", 0):
                bt = model.make_new_valueinfo_name()
                new.append(helper.make_node("Transpose", [b], [bt], perm=[1, 0], name=node.name + "_transB"))
                b = bt
            bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
            cval = const(model, bias) if bias else None
            if bias and (cval is None or np.any(cval != 0)):
                mm = model.make_new_valueinfo_name()
                new.append(helper.make_node("MatMul", [node.input[0], b], [mm], name=node.name + "_matmul"))
                new.append(helper.make_node("Add", [mm, bias], [node.output[0]], name=node.name + "_bias"))
            else:
                new.append(helper.make_node("MatMul", [node.input[0], b], [node.output[0]], name=node.name))
            graph.node.remove(node)
            for i, n in enumerate(new):
                graph.node.insert(pos + i, n)
            changed = True
        return model, changed


class RemoveDeadNodes(Transformation):
    """Remove nodes whose outputs are unused, and unused initializers."""

    def apply(self, model: ModelWrapper):
        remove_dead_nodes(model)
        return model, False


__all__ = ["NormaliseOpsets", "RemoveIdentityOps", "GemmToMatMul", "RemoveDeadNodes"]
