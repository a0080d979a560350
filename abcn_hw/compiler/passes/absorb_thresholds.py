"""AbsorbThresholds: fold the float chain between a layer's accumulator and the next layer's
activation bits (scale, batch norm, TensorNorm, base shifts; max pooling and flatten commuted to
the bit side) into one MultiBaseThreshold with exact integer thresholds."""
from __future__ import annotations

import numpy as np
from onnx import NodeProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from ..graphutil import add_init, attr, const, fresh_name, propagate_shapes, remove_dead_nodes, single_consumer
from ..ops import DOMAIN
from ..patterns import _is_flatten
from ..bitspec import from_node
from ..thresholds import ChainEvaluator, check_thresholds, derive_thresholds
from .lower_layers import LayerRecord

ELEMENTWISE = ("Mul", "Add", "Sub", "Div")


def _per_channel(shape: tuple, rank: int) -> bool:
    """Constant of ``shape`` broadcasts per channel (axis 1) against a rank-``rank`` tensor."""
    s = (1,) * (rank - len(shape)) + tuple(shape)
    return len(s) == rank and all(d == 1 for i, d in enumerate(s) if i != 1)


class AbsorbThresholds(Transformation):
    def __init__(self, records: list[LayerRecord] | None = None, verify: bool = True):
        super().__init__()
        self.records = {r.acc: r for r in (records or [])}
        self.verify = verify
        self.probes: dict = {}  # lowered bits -> (export z, BitSpec)

    def apply(self, model: ModelWrapper):
        opset = next(o.version for o in model.model.opset_import if o.domain in ("", "ai.onnx"))
        outputs = {o.name for o in model.graph.output}
        for node in list(model.graph.node):
            if node.op_type != "MultiBaseAccumulate" or node.domain != DOMAIN:
                continue
            rec = self.records.get(node.output[0])
            found = self._walk(model, node)
            if found is None:
                if rec is not None:
                    rec.threshold = "final" if self._reaches_output(model, node.output[0], outputs) else "float"
                continue
            chain, pool, flatten, fbq = found
            self._fuse(model, node, chain, pool, flatten, fbq, rec, opset)
        remove_dead_nodes(model)
        return model, False

    @staticmethod
    def _reaches_output(model, tensor, outputs) -> bool:
        seen = set()
        todo = [tensor]
        while todo:
            t = todo.pop()
            if t in outputs:
                return True
            for c in model.find_consumers(t) or []:
                if c.op_type in ("Add",) and all(const(model, i) is None for i in c.input):
                    return False
                for o in c.output:
                    if o not in seen:
                        seen.add(o)
                        todo.append(o)
        return False

    def _walk(self, model: ModelWrapper, acc_node: NodeProto):
        """acc -> Cast -> Mul(unit) -> per-channel elementwise ops [-> MaxPool] [-> Flatten] ->
        FloatBaseQuant, every tensor on the way with a single consumer."""
        chain: list[NodeProto] = []
        pool = flatten = None
        rank = len(model.get_tensor_shape(acc_node.output[0]))
        t = acc_node.output[0]
        while True:
            nxt = single_consumer(model, t)
            if nxt is None:
                return None
            if nxt.op_type in ("FloatBaseQuant", "FloatQuantBits") and nxt.domain == DOMAIN:
                break
            after = pool is not None or flatten is not None
            if nxt.op_type == "Cast" and not chain:
                pass
            elif nxt.op_type in ELEMENTWISE:
                cin = [i for i in nxt.input if const(model, i) is not None]
                if len(cin) != 1 or (nxt.op_type == "Div" and nxt.input[0] != t):
                    return None  # c / x is not monotone across 0
                c = const(model, cin[0])
                if after:  # only scalar, non-decreasing ops may follow a max pool / flatten
                    if c.size != 1 or (nxt.op_type in ("Mul", "Div") and float(c.reshape(-1)[0]) <= 0) \
                            or (nxt.op_type == "Sub" and nxt.input[0] != t) or (nxt.op_type == "Div" and nxt.input[0] != t):
                        return None
                elif not _per_channel(c.shape, rank):
                    return None
            elif nxt.op_type == "Neg" and not after:
                pass
            elif nxt.op_type == "BatchNormalization" and not after:
                if any(const(model, i) is None for i in nxt.input[1:]) or attr(nxt, "training_mode", 0):
                    return None
            elif nxt.op_type == "MaxPool" and pool is None and flatten is None and rank == 4:
                if attr(nxt, "ceil_mode", 0) or any(d != 1 for d in attr(nxt, "dilations", [1, 1])) \
                        or any(attr(nxt, "pads", [0, 0, 0, 0])):
                    return None
                pool = nxt
            elif nxt.op_type in ("Flatten", "Reshape") and flatten is None and _is_flatten(model, nxt) \
                    and (rank == 4 or model.get_tensor_shape(nxt.output[0]) == model.get_tensor_shape(t)):
                # rank 4: (B, C, H, W) -> (B, C*H*W); rank 2: a no-op flatten of FC features
                flatten = nxt
            else:
                return None
            chain.append(nxt)
            t = nxt.output[0]
        if not chain or chain[0].op_type != "Cast":
            return None
        return chain, pool, flatten, nxt

    def _fuse(self, model, acc_node, chain, pool, flatten, fbq, rec: LayerRecord | None, opset: int) -> None:
        rank = len(model.get_tensor_shape(acc_node.output[0]))
        elementwise = [n for n in chain if n is not pool and n is not flatten]
        spec = from_node(fbq)
        c = model.get_initializer(acc_node.input[1])
        evaluator = ChainEvaluator(model, elementwise, acc_node.output[0], elementwise[-1].output[0], rank, opset,
                                   np.dtype(c.dtype))
        amax = rec.scales.amax if rec is not None else None
        if amax is None:
            return
        t, s = derive_thresholds(evaluator, spec, amax)
        if self.verify:
            bad = check_thresholds(evaluator, spec, amax, t, s)
            if bad:
                raise RuntimeError(f"threshold derivation failed for {rec.name}: {bad} mismatches")
        base = rec.name if rec is not None else acc_node.name
        t_name = add_init(model, base + "_thresholds", t.astype(c.dtype))
        s_name = add_init(model, base + "_direction", s)
        new: list[NodeProto] = []
        bits = fresh_name(model, base + "_bits")
        new.append(helper.make_node("MultiBaseThreshold", list(acc_node.input) + [t_name, s_name], [bits],
                                    domain=DOMAIN, name=acc_node.name.replace("Accumulate", "Threshold")))
        if pool is not None:
            out = fresh_name(model, pool.name + "_bits")
            ks = list(attr(pool, "kernel_shape"))
            new.append(helper.make_node("BitMaxPool", [bits], [out], domain=DOMAIN, kernel_shape=ks,
                                        strides=list(attr(pool, "strides", ks)), pads=[0, 0, 0, 0],
                                        name=pool.name + "_bits"))
            bits = out
        if flatten is not None and rank == 4:  # (rank 2: a no-op flatten, nothing to do on the bits)
            out = fresh_name(model, flatten.name + "_bits")
            shape = add_init(model, flatten.name + "_bits_shape", np.array([0, 0, -1], np.int64))
            new.append(helper.make_node("Reshape", [bits, shape], [out], name=flatten.name + "_bits"))
            bits = out
        # rewire: the FloatBaseQuant's output is now produced by the last new node
        new[-1].output[0] = fbq.output[0]
        graph = model.graph
        pos = list(graph.node).index(acc_node)
        graph.node.remove(acc_node)
        graph.node.remove(fbq)
        for i, nd in enumerate(new):
            graph.node.insert(pos + i, nd)
        propagate_shapes(model, new)
        self.probes[fbq.output[0]] = (fbq.input[0], spec)
        if rec is not None:
            rec.bits_tensor = fbq.output[0]
            rec.threshold = "fused"
            rec.next_bases = spec.count
