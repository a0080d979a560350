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


class FoldBiasQuant(Transformation):
    """A layer's quantized bias (Brevitas ``bias_quant=Int32Bias`` ...): a qonnx ``Quant`` with
    constant inputs whose output is only read as the bias of Conv / Gemm nodes becomes the constant
    it computes (qonnx's own execution of the op), so the bias is an ordinary constant affine term.
    Weight quantizers are never folded (the lowering reads their bits)."""

    def apply(self, model: ModelWrapper):
        from qonnx.custom_op.registry import getCustomOp

        from ..patterns import QONNX_DOMAINS

        changed = False
        for q in list(model.graph.node):
            if q.op_type != "Quant" or q.domain not in QONNX_DOMAINS:
                continue
            values = {i: const(model, i) for i in q.input if i}
            cons = model.find_consumers(q.output[0]) or []
            if any(v is None for v in values.values()) or not cons or q.output[0] in {o.name for o in model.graph.output} \
                    or any(c.op_type not in ("Conv", "Gemm") or list(c.input).index(q.output[0]) != 2 for c in cons):
                continue
            context = {k: np.asarray(v) for k, v in values.items()}
            getCustomOp(q).execute_node(context, model.graph)
            model.set_initializer(q.output[0], np.asarray(context[q.output[0]], np.float32))
            model.graph.node.remove(q)
            changed = True
        return model, changed


class ExtractConvBias(Transformation):
    """Conv(X, W, B) with a constant bias -> Conv(X, W) + Add(B as (O, 1, ..)): the bias becomes one
    more per-channel affine term after the product, lowered like a batch norm's shift (joined to the
    layer's core while the float32 arithmetic stays exact, else kept in the tail that the thresholds
    or the output affine execute as exported). onnxruntime's Conv adds the bias to the finished sum
    (MLAS applies it after the GEMM), so the Add computes the same float32 value."""

    def apply(self, model: ModelWrapper):
        changed = False
        for node in list(model.graph.node):
            if node.op_type != "Conv" or len(node.input) < 3 or not node.input[2]:
                continue
            bias = const(model, node.input[2])
            if bias is None or np.asarray(bias).ndim != 1:
                continue  # a run-time or malformed bias: the support check names it
            rank = len(model.get_tensor_shape(node.input[1]) or [])
            graph = model.graph
            pos = list(graph.node).index(node)
            out = node.output[0]
            conv_out = fresh_name(model, node.name + "_nobias")
            b = fresh_name(model, node.input[2] + "_channel")
            model.set_initializer(b, np.asarray(bias, np.float32).reshape((-1,) + (1,) * max(rank - 2, 0)))
            del node.input[2:]
            node.output[0] = conv_out
            graph.node.insert(pos + 1, helper.make_node("Add", [conv_out, b], [out], name=node.name + "_bias"))
            changed = True
        return model, changed


class MoveFlattenBeforeInputQuant(Transformation):
    """Quant(x) -> Flatten  =>  Flatten(x) -> Quant, for the graph input's quantizer (no layer
    upstream) with scalar constant scale, zero point and bit width: the quantizer is elementwise, so
    both orders give the same values bit for bit. An MLP that flattens the quantized image then reads
    integer codes in the layout the integer-input layer expects (the flatten is float preprocessing,
    like BNN-PYNQ's Reshape before its input quantizer)."""

    def apply(self, model: ModelWrapper):
        from ..patterns import QONNX_DOMAINS, _is_flatten, depends_on_layer

        changed = False
        for q in list(model.graph.node):
            if q.op_type != "Quant" or q.domain not in QONNX_DOMAINS or len(q.input) < 4:
                continue
            params = [const(model, i) for i in q.input[1:4]]
            if const(model, q.input[0]) is not None or any(p is None or np.asarray(p).size != 1 for p in params):
                continue
            cons = model.find_consumers(q.output[0]) or []
            if len(cons) != 1 or cons[0].op_type not in ("Flatten", "Reshape") or cons[0].input[0] != q.output[0] \
                    or not _is_flatten(model, cons[0]) or depends_on_layer(model, q.input[0]) \
                    or q.output[0] in {o.name for o in model.graph.output}:
                continue
            flat = cons[0]
            moved = fresh_name(model, flat.output[0] + "_float")
            qout, fout = q.output[0], flat.output[0]
            flat.input[0], flat.output[0] = q.input[0], moved
            q.input[0], q.output[0] = moved, fout
            nodes = model.graph.node
            nodes.remove(flat)
            nodes.insert(list(nodes).index(q), flat)
            for vi in [v for v in model.graph.value_info if v.name in (qout, fout)]:
                model.graph.value_info.remove(vi)  # shapes changed: inferred again after normalisation
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
