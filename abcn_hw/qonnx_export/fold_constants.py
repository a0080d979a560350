"""qonnx's constant folding, every foldable node in one pass.

qonnx's ``FoldConstants`` folds one node per ``apply`` (qonnx #104) and ``ModelWrapper.transform``
repeats it; each fold then runs a full ``InferShapes`` transform: a deep copy of the model, ONNX
shape inference, the cleanup transformations (``SortGraph`` among them, quadratic in the nodes) and
the conversion of every initializer to numpy for the next ``apply``'s execution context. On the zoo's
resnet18 (113 folds) that was 402 s of a 224x224 export.

:class:`FoldConstantsInOrder` folds the same nodes in the same order with the same values -- each
time the first foldable node (qonnx's criteria: every input an initializer, or a Shape of a tensor
of known shape, or no input; excluded op types never), the node list re-sorted after each fold as
the cleanup's ``SortGraph`` sorts it (the same dependency sets and ``toposort_flatten``, with a
tensor -> producer map instead of a search per input) -- executing each node with
``qonnx.core.onnx_exec.execute_node`` on a context of its own inputs and outputs only, and runs the
``InferShapes`` transform once at the end. The exported file is byte-identical to qonnx's
``cleanup_model`` (tests/test_zoo_export.py)."""
from __future__ import annotations

from onnx import numpy_helper

from qonnx.core import onnx_exec
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util import basic as util
from qonnx.util import onnx as onnxutil
from toposort import toposort_flatten


def _sort_graph(model) -> None:
    """qonnx's SortGraph (its dependency sets, toposort_flatten, its dropping of unconnected nodes)
    with a tensor -> first producer map instead of a scan of the node list per input."""
    graph = model.graph
    nodes = list(graph.node)
    if len(nodes) == 1:
        return
    producer: dict[str, int] = {}
    for i, n in enumerate(nodes):
        for o in n.output:
            producer.setdefault(o, i)
    known = {t.name for t in graph.initializer} | {t.name for t in graph.input}
    deps: dict[int, set] = {}
    for i, n in enumerate(nodes):
        preds = [producer[t] for t in n.input if t in producer]
        if not preds:
            if any(t in known for t in n.input):
                deps[i] = set()
            continue
        deps[i] = set(preds)
    order = toposort_flatten(deps)
    del graph.node[:]
    graph.node.extend(nodes[i] for i in order)


class FoldConstantsInOrder(Transformation):
    """qonnx.transformation.fold_constants.FoldConstants, all folds in one ``apply`` (see the module
    docstring); returns the model after one InferShapes transform, unchanged flag False."""

    def __init__(self, exclude_op_types=("Quant", "BipolarQuant")):
        super().__init__()
        self.exclude_op_types = tuple(exclude_op_types)

    def _foldable(self, model, n, inits: set) -> bool:
        if n.op_type in self.exclude_op_types:
            return False
        if not n.input:
            return True
        if all(t in inits for t in n.input):
            return True
        return n.op_type == "Shape" and model.get_tensor_shape(n.input[0]) is not None

    def _context(self, model, n) -> dict:
        graph = model.graph
        vis = {vi.name: vi for vi in list(graph.input) + list(graph.output) + list(graph.value_info)}
        ctx: dict = {}
        for t in list(n.input) + list(n.output):
            if t in vis:
                ctx[t] = onnxutil.valueinfo_to_tensor(vis[t])
        for t in n.input:
            init = util.get_by_name(graph.initializer, t)
            if init is not None:
                ctx[t] = numpy_helper.to_array(init)
        ctx[""] = None
        return ctx

    def apply(self, model):
        opset_version = model.model.opset_import[0].version
        folded = False
        while True:
            inits = {t.name for t in model.graph.initializer}
            n = next((n for n in model.graph.node if self._foldable(model, n, inits)), None)
            if n is None:
                break
            for inp in n.input:
                model.get_tensor_shape(inp, fix_missing_init_shape=True)
            ctx = self._context(model, n)
            onnx_exec.execute_node(n, ctx, model.graph, opset_version=opset_version)
            model.set_initializer(n.output[0], ctx[n.output[0]])
            model.graph.node.remove(n)
            _sort_graph(model)  # what the per-fold InferShapes transform's cleanup does to the order
            folded = True
        if folded:
            model = model.transform(InferShapes())
        return (model, False)


__all__ = ["FoldConstantsInOrder"]
