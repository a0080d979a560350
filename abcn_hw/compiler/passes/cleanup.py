"""Clean-up and normalisation passes for Brevitas exports (TorchScript and dynamo exporters)."""
from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from ..graphutil import attr, const, fresh_name, remove_dead_nodes


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
                bt = fresh_name(model, node.name + "_transB")
                new.append(helper.make_node("Transpose", [b], [bt], perm=[1, 0], name=node.name + "_transB"))
                b = bt
            bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
            cval = const(model, bias) if bias else None
            if bias and (cval is None or np.any(cval != 0)):
                mm = fresh_name(model, node.name + "_matmul")
                new.append(helper.make_node("MatMul", [node.input[0], b], [mm], name=node.name + "_matmul"))
                new.append(helper.make_node("Add", [mm, bias], [node.output[0]], name=node.name + "_bias"))
            else:
                new.append(helper.make_node("MatMul", [node.input[0], b], [node.output[0]], name=node.name))
            graph.node.remove(node)
            for i, n in enumerate(new):
                graph.node.insert(pos + i, n)
            changed = True
        return model, changed


class UnshareParameterTensors(Transformation):
    """Every use of an initializer gets its own copy (qonnx's GiveUniqueParameterTensors with
    deterministic names: the copies are ``<name>_<k>``, never random strings), so later rewrites
    of one node's parameter cannot change another node's. The datatype annotation is copied."""

    def apply(self, model: ModelWrapper):
        changed = False
        seen: set[str] = set()
        for node in model.graph.node:
            for i, name in enumerate(list(node.input)):
                value = model.get_initializer(name) if name else None
                if value is None:
                    continue
                if name not in seen:
                    seen.add(name)
                    continue
                copy = fresh_name(model, name)
                model.set_initializer(copy, value)
                model.set_tensor_datatype(copy, model.get_tensor_datatype(name))
                node.input[i] = copy
                changed = True
        return model, changed


class PruneAnnotations(Transformation):
    """Drop ``quantization_annotation`` entries of tensors no longer in the graph (the export's and
    the clean-up's leftovers), so the lowered file holds no stale names."""

    def apply(self, model: ModelWrapper):
        g = model.graph
        live = {t.name for t in g.initializer} | {v.name for v in list(g.input) + list(g.output)} \
            | {t for n in g.node for t in list(n.input) + list(n.output)}
        keep = [a for a in g.quantization_annotation if a.tensor_name in live]
        changed = len(keep) != len(g.quantization_annotation)
        if changed:
            keep = [type(a).FromString(a.SerializeToString()) for a in keep]
            del g.quantization_annotation[:]
            g.quantization_annotation.extend(keep)
        return model, changed


class RemoveDeadNodes(Transformation):
    """Remove nodes whose outputs are unused, and unused initializers."""

    def apply(self, model: ModelWrapper):
        remove_dead_nodes(model)
        return model, False


__all__ = ["NormaliseOpsets", "RemoveIdentityOps", "GemmToMatMul", "RemoveDeadNodes", "UnshareParameterTensors",
           "PruneAnnotations"]
