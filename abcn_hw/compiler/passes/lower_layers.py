"""LowerBinaryLayers: every binary Conv / MatMul becomes XNOR-popcount (or integer-input) dots and
one multi-base accumulator, followed by ``Cast -> Mul(2**e)`` that reproduces the export's float
layer output exactly (exact layers) so the rest of the graph is untouched and still equivalent."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from onnx import NodeProto, TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from ..graphutil import add_init, attr, fresh_name, known_shape, propagate_shapes, remove_dead_nodes
from ..ops import DOMAIN, pack_bits
from ..patterns import ActOperand, PatternError, WeightOperand, act_operand, integer_range, weight_operand
from ..regions import Layer, analyse, coefficient_grid
from ..scales import LayerScales, layer_scales, region_scales


@dataclass
class LayerRecord:
    """What the lowering did with one layer (feeds the report)."""

    name: str
    op: str
    in_shape: tuple
    out_shape: tuple
    m: int
    n: int
    k: int
    scales: LayerScales
    acc: str  # accumulator tensor name
    threshold: str = "float"  # "fused" | "final" | "residual" | "float"
    next_bases: int = 0
    bits_tensor: str | None = None
    float_scales: np.ndarray | None = None  # (M, N, O) float32 alpha*beta, kept for rounded layers
    notes: list[str] = field(default_factory=list)
    padding: str = "none"  # none | bit0 | zero | integer (see LayerReport)

    @property
    def acc_bits(self) -> int:
        return int(np.ceil(np.log2(float(self.scales.amax.max()) + 1))) + 1


class LowerBinaryLayers(Transformation):
    def __init__(self, records: list[LayerRecord] | None = None):
        super().__init__()
        self.records = records if records is not None else []

    def apply(self, model: ModelWrapper):
        analysis = analyse(model)
        if analysis.problems:
            node, reason, fallback = analysis.problems[0]
            raise PatternError(node if node is not None else fallback, reason)
        bit_cache: dict[tuple, str] = {}
        for layer in analysis.layers:
            p = layer.products[0]
            if layer.trivial:  # one product read as is: our exporter's idiom, BNN-PYNQ, the zoo
                try:
                    act = act_operand(model, p.node.input[0])
                    w = weight_operand(model, p.node.input[1], p.conv)
                except PatternError:
                    act = None
                if act is not None:
                    self._lower(model, p.node, act, w, p.conv, bit_cache)
                    continue
            self._lower_layer(model, layer, bit_cache)
        remove_dead_nodes(model)
        return model, False

    # ---------------------------------------------------------------------------------------------
    def _bits(self, model: ModelWrapper, act: ActOperand, anchor: list[NodeProto], cache: dict) -> str:
        """Bit tensor (B, N, ...) for a binary operand, with its pool/flatten transforms applied."""
        key = (act.source, act.spec)
        if key in cache:
            bits = cache[key]
        else:
            bits = fresh_name(model, act.source + "_bits")
            anchor.append(act.spec.node(act.source, bits))
            cache[key] = bits
        for t in act.transforms:
            if t.kind == "maxpool":
                if attr(t.node, "ceil_mode", 0) or any(d != 1 for d in attr(t.node, "dilations", [1, 1])):
                    raise PatternError(t.node, "MaxPool with ceil_mode or dilation on bits")
                out = fresh_name(model, t.node.name + "_bits")
                ks = list(attr(t.node, "kernel_shape"))
                anchor.append(helper.make_node("BitMaxPool", [bits], [out], domain=DOMAIN, kernel_shape=ks,
                                               strides=list(attr(t.node, "strides", ks)),
                                               pads=list(attr(t.node, "pads", [0, 0, 0, 0])), name=t.node.name + "_bits"))
                bits = out
            elif t.kind == "flatten":
                out = fresh_name(model, t.node.name + "_bits")
                shape = add_init(model, t.node.name + "_bits_shape", np.array([0, 0, -1], np.int64))
                anchor.append(helper.make_node("Reshape", [bits, shape], [out], name=t.node.name + "_bits"))
                bits = out
        return bits

    def _integer(self, model: ModelWrapper, act: ActOperand, anchor: list[NodeProto]) -> str:
        """The integer code q = clip(round(x / scale)) as int32, with the export's Quant arithmetic."""
        lo, hi = integer_range(act)
        q = act.nodes[-1].name
        s = add_init(model, q + "_scale", np.array(act.scale, np.float32))
        lo_t = add_init(model, q + "_qmin", np.array(lo, np.float32))
        hi_t = add_init(model, q + "_qmax", np.array(hi, np.float32))
        names = [fresh_name(model, f"{q}_{step}") for step in ("div", "clip", "round", "int")]
        anchor += [
            helper.make_node("Div", [act.source, s], [names[0]], name=names[0]),
            helper.make_node("Clip", [names[0], lo_t, hi_t], [names[1]], name=names[1]),
            helper.make_node("Round", [names[1]], [names[2]], name=names[2]),
            helper.make_node("Cast", [names[2]], [names[3]], to=TensorProto.INT32, name=names[3]),
        ]
        return names[3]

    def _lower(self, model, node, act: ActOperand, w: WeightOperand, conv: bool, cache) -> None:
        new: list[NodeProto] = []
        m, o, k = w.bits.shape
        if act.kind == "integer":
            x = self._integer(model, act, new)
            lo, hi = integer_range(act)
            sc = layer_scales(w.alpha, None, k, input_scale=act.scale, input_max=max(abs(lo), abs(hi)))
            op = "IntegerInputConv" if conv else "IntegerInputMatMul"
            n = 1
            pads = list(attr(node, "pads", [0, 0, 0, 0])) if conv else []  # zero padding of the integers
        else:
            x = self._bits(model, act, new, cache)
            sc = layer_scales(w.alpha, act.beta, k)
            op = "XnorPopcountConv" if conv else "XnorPopcountMatMul"
            n = act.spec.count
            # bit-0 padding (ABC: explicit Pad(-sum beta)) or zero padding (the conv's own pads, or
            # an explicit Pad(0)): bit 0 plus the weights' border correction inside the XNOR conv
            own = list(attr(node, "pads", [0, 0, 0, 0])) if conv else []
            pads = own if any(own) else list(act.pads)
            zero_pad = bool(any(own) or act.zero_pad)
        wname = add_init(model, node.name + "_wbits", pack_bits(w.bits))
        dots = fresh_name(model, node.name + "_dots")
        attrs = {}
        if conv:  # pads in ONNX order [top, left, bottom, right]
            attrs = dict(kernel_shape=list(w.kernel), strides=list(attr(node, "strides", [1, 1])), pads=list(pads))
            if act.kind == "bits" and zero_pad and any(pads):
                attrs["zero_pad"] = 1
        new.append(helper.make_node(op, [x, wname], [dots], domain=DOMAIN, name=node.name + "_" + op, **attrs))
        c_t = add_init(model, node.name + "_coef", sc.c)
        acc = fresh_name(model, node.name + "_acc")
        new.append(helper.make_node("MultiBaseAccumulate", [dots, c_t], [acc], domain=DOMAIN,
                                    name=node.name + "_MultiBaseAccumulate"))
        accf = fresh_name(model, node.name + "_acc_float")
        new.append(helper.make_node("Cast", [acc], [accf], to=TensorProto.FLOAT, name=node.name + "_acc_float"))
        out_shape = known_shape(model, node.output[0], node.name)
        ushape = (1, o) + (1,) * (len(out_shape) - 2)
        u_t = add_init(model, node.name + "_unit", sc.unit.reshape(ushape))
        new.append(helper.make_node("Mul", [accf, u_t], [node.output[0]], name=node.name + "_acc_scale"))
        graph = model.graph
        pos = list(graph.node).index(node)
        graph.node.remove(node)
        for i, nd in enumerate(new):
            graph.node.insert(pos + i, nd)
        propagate_shapes(model, new[:-1])
        if act.kind == "integer":
            fs = (w.alpha * np.float32(act.scale))[:, None, :]
        else:
            fs = w.alpha[:, None, :] * act.beta[None, :, None]
        in_shape = model.get_tensor_shape(act.transforms[-1].node.input[0] if act.pads != (0, 0, 0, 0) else node.input[0])
        self.records.append(LayerRecord(node.name, op, tuple(in_shape), tuple(out_shape),
                                        m, n, k, sc, acc, float_scales=fs.astype(np.float32)))
        if any(attrs.get("pads", [])):
            self.records[-1].padding = ("integer" if act.kind == "integer" else
                                        "zero" if attrs.get("zero_pad") else "bit0")

    def _lower_layer(self, model: ModelWrapper, layer: Layer, cache) -> None:
        """A fused layer: all its products as one XNOR (or integer-input) op over the distinct
        weight and activation bases, one accumulator with the coefficients of the joined sum, and
        ``Cast -> Mul(unit) [-> Add(offset)]`` producing the join's tensor (exact layers: the same
        float32 values as the export's join), so the tail stays verbatim for the thresholds."""
        p0 = layer.products[0]
        position = {n.name: i for i, n in enumerate(model.graph.node)}
        wbits, coef, _, akeys = coefficient_grid(layer, position)
        act = p0.act
        if act.kind == "bits" and akeys[0][0] == "kbit":  # every thermometer level, in level order
            full = [(akeys[0][0], akeys[0][1], akeys[0][2], j) for j in range(act.spec.count)]
            grid = np.zeros((coef.shape[0], len(full), coef.shape[2]))
            for j, a in enumerate(akeys):
                grid[:, full.index(a)] = coef[:, j]
            coef, akeys = grid, full
        m, o, k = wbits.shape
        new: list[NodeProto] = []
        if act.kind == "integer":
            x = self._integer(model, act, new)
            op = "IntegerInputConv" if p0.conv else "IntegerInputMatMul"
        else:
            if akeys[0][0] == "shift":
                from ..bitspec import ShiftBits

                shifts = tuple(a[2] for a in akeys)
                act = ActOperand("bits", act.source, list(shifts), None, act.transforms, act.nodes,
                                 spec=ShiftBits(shifts))
            x = self._bits(model, act, new, cache)
            op = "XnorPopcountConv" if p0.conv else "XnorPopcountMatMul"
        sc, offset = region_scales(coef, layer.form.offset, k, p0.xmax, layer.form.exact)
        base = p0.node.name
        wname = add_init(model, base + "_wbits", pack_bits(wbits))
        dots = fresh_name(model, base + "_dots")
        attrs = dict(kernel_shape=list(p0.kernel), strides=list(p0.strides), pads=list(p0.pads)) if p0.conv else {}
        if act.kind == "bits" and p0.act.zero_pad and any(p0.pads):
            attrs["zero_pad"] = 1
        new.append(helper.make_node(op, [x, wname], [dots], domain=DOMAIN, name=base + "_" + op, **attrs))
        c_t = add_init(model, base + "_coef", sc.c)
        acc = fresh_name(model, base + "_acc")
        new.append(helper.make_node("MultiBaseAccumulate", [dots, c_t], [acc], domain=DOMAIN,
                                    name=base + "_MultiBaseAccumulate"))
        accf = fresh_name(model, base + "_acc_float")
        new.append(helper.make_node("Cast", [acc], [accf], to=TensorProto.FLOAT, name=base + "_acc_float"))
        out_shape = model.get_tensor_shape(layer.t_core)
        ushape = (1, o) + (1,) * (len(out_shape) - 2)
        u_t = add_init(model, base + "_unit", sc.unit.reshape(ushape))
        if np.any(offset != 0):
            scaled = fresh_name(model, base + "_acc_scaled")
            new.append(helper.make_node("Mul", [accf, u_t], [scaled], name=base + "_acc_scale"))
            off_t = add_init(model, base + "_offset", offset.reshape(ushape))
            new.append(helper.make_node("Add", [scaled, off_t], [layer.t_core], name=base + "_offset"))
        else:
            new.append(helper.make_node("Mul", [accf, u_t], [layer.t_core], name=base + "_acc_scale"))
        graph = model.graph
        anchor = model.find_producer(layer.t_core)
        pos = list(graph.node).index(anchor)
        graph.node.remove(anchor)
        for i, nd in enumerate(new):
            graph.node.insert(pos + i, nd)
        propagate_shapes(model, new[:-1])
        in_shape = model.get_tensor_shape(p0.node.input[0])
        self.records.append(LayerRecord(base, op, tuple(in_shape), tuple(out_shape), m, coef.shape[1], k, sc, acc,
                                        float_scales=coef.astype(np.float32)))
        if any(attrs.get("pads", [])):
            self.records[-1].padding = ("integer" if act.kind == "integer" else
                                        "zero" if attrs.get("zero_pad") else "bit0")
