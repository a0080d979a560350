"""Final passes: attach the model-local functions of the ops in use, dynamic batch dimension."""
from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from ..graphutil import attr, fresh_name
from ..ops import DOMAIN, function_protos


class AttachFunctions(Transformation):
    """Add the FunctionProto of every abcn_hw op used (same domain and name) and the domain to
    opset_import, so onnxruntime runs the graph with no Python callbacks."""

    def apply(self, model: ModelWrapper):
        proto = model.model
        used = sorted({n.op_type for n in proto.graph.node if n.domain == DOMAIN})
        have = {(f.domain, f.name, f.overload) for f in proto.functions}
        for fp in function_protos(used):
            if (fp.domain, fp.name, fp.overload) not in have:
                proto.functions.append(fp)
        if used and all(o.domain != DOMAIN for o in proto.opset_import):
            proto.opset_import.append(helper.make_opsetid(DOMAIN, 1))
        in_use = {n.domain for n in proto.graph.node} | {"", "ai.onnx"}
        keep = [o for o in proto.opset_import if o.domain in in_use]
        del proto.opset_import[:]
        proto.opset_import.extend(keep)
        return model, False


def make_reshapes_batch_agnostic(model: ModelWrapper) -> None:
    """Reshape nodes with a constant target whose first entry is the export's fixed batch size
    (and whose input keeps the batch on axis 0) copy the batch instead (target[0] = 0)."""
    batch = model.graph.input[0].type.tensor_type.shape.dim[0].dim_value
    if not batch:
        return
    for node in model.graph.node:
        if node.op_type != "Reshape":
            continue
        shape = model.get_initializer(node.input[1])
        ishape = model.get_tensor_shape(node.input[0])
        if shape is None or not len(shape) or int(shape[0]) != batch or not ishape or ishape[0] != batch:
            continue
        if attr(node, "allowzero", 0):
            if np.any(np.asarray(shape) == 0):
                continue
            for a in node.attribute:  # no literal zeros: allowzero makes no difference
                if a.name == "allowzero":
                    a.i = 0
        new = np.array(shape, np.int64).copy()
        new[0] = 0
        name = fresh_name(model, node.name + "_shape")
        model.set_initializer(name, new)
        node.input[1] = name


class MakeBatchDynamic(Transformation):
    """Graph inputs/outputs get a symbolic batch dimension; intermediate value_info is dropped
    (it was inferred for the export's fixed batch)."""

    def __init__(self, name: str = "batch"):
        super().__init__()
        self.name = name

    def apply(self, model: ModelWrapper):
        graph = model.graph
        make_reshapes_batch_agnostic(model)
        for vi in list(graph.input) + list(graph.output):
            dims = vi.type.tensor_type.shape.dim
            if len(dims):
                dims[0].ClearField("dim_value")
                dims[0].dim_param = self.name
        del graph.value_info[:]
        return model, False
