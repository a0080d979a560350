"""FloatCombineRoundedLayers: a layer whose scales had to be rounded (``float`` scale grid) and
whose output is kept in float (a residual join; the pipeline passes only those -- the last layer
keeps its integer accumulator on its coefficient grid, which the HLS backend maps) combines its M*N dots with the export's own float32 scales instead of the rounded integer
grid: y = sum_{m,n} (alpha[m,o] * beta[n]) * dot[m,n,o] in float32. This is not bit-exact (the
summation order differs from the export's float conv) but its error is ~1 ulp, far below what
the rounded integer grid would add to the logits."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from ..graphutil import add_init, fresh_name, remove_dead_nodes, single_consumer
from ..ops import DOMAIN
from .lower_layers import LayerRecord


class FloatCombineRoundedLayers(Transformation):
    def __init__(self, records: list[LayerRecord]):
        super().__init__()
        self.records = {r.acc: r for r in records}

    def apply(self, model: ModelWrapper):
        for node in list(model.graph.node):
            rec = self.records.get(node.output[0])
            if node.op_type != "MultiBaseAccumulate" or node.domain != DOMAIN or rec is None:
                continue
            if not rec.scales.scales_rounded or rec.float_scales is None:
                continue
            cast = single_consumer(model, node.output[0])
            mul = single_consumer(model, cast.output[0]) if cast is not None else None
            if cast is None or mul is None or cast.op_type != "Cast" or mul.op_type != "Mul":
                continue
            dots = node.input[0]
            rank = len(model.get_tensor_shape(dots))
            coef = rec.float_scales.reshape((1,) + rec.float_scales.shape + (1,) * (rank - 4))
            c_t = add_init(model, rec.name + "_float_scales", coef.astype(np.float32))
            ax = add_init(model, rec.name + "_base_axes", np.array([1, 2], np.int64))
            f = fresh_name(model, rec.name + "_dots_float")
            p = fresh_name(model, rec.name + "_scaled")
            new = [helper.make_node("Cast", [dots], [f], to=TensorProto.FLOAT, name=rec.name + "_dots_float"),
                   helper.make_node("Mul", [f, c_t], [p], name=rec.name + "_float_scales"),
                   helper.make_node("ReduceSum", [p, ax], [mul.output[0]], keepdims=0, name=rec.name + "_float_sum")]
            graph = model.graph
            pos = list(graph.node).index(node)
            for n in (node, cast, mul):
                graph.node.remove(n)
            for i, n in enumerate(new):
                graph.node.insert(pos + i, n)
            rec.notes.append("float32 scale combination (scales not on a small dyadic grid)")
        remove_dead_nodes(model)
        return model, False
