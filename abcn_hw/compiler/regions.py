"""Linear regions: the float ops between a layer's binary products and what reads their result.

A hand-written ABC layer is many products (one Conv / MatMul per weight base x activation base
branch) joined by float ops: ``sum_n beta_n sum_m conv(A_n, B_m)``, scales before or after the
product, Neg, Sub, batch norm ... This module finds, for every layer, the products that belong to
it and evaluates the join symbolically: every tensor of the region is an affine form in the
integer dot products, ``sum_k coef_k[o] * dot_k + offset[o]`` (per output channel o), with a flag
saying whether the export's float32 arithmetic computes it exactly. Analysis only: no rewriting.

Terms:
  product     a Conv / MatMul whose operands are recognised (weight bases x activation bases);
  act base    one activation bit plane: ("shift", z, transforms, c) = (z + c >= 0) of a float z,
              ("kbit", z, transforms, spec, j) = thermometer level j of a k-bit Quant,
              ("int", x, quant) = the integer-coded graph input;
  weight base one (O, K) bit matrix (its bytes are its key: shared quantizers merge);
  region      the nodes reachable from a group's products through linear ops, up to the tensors
              read elsewhere (the next layer's quantizers, the graph output, a foreign op);
  core / tail the core ends at the last join of branches (``t_core``); the tail is the
              single-input chain from there to the sink, kept verbatim so thresholds are derived
              by executing the export's own float ops on the accumulator.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from onnx import NodeProto
from qonnx.core.modelwrapper import ModelWrapper

from .graphutil import attr, const, scalar
from .patterns import (ActOperand, PatternError, QONNX_DOMAINS, _act_operand_below, _bq_scale, _kbit_weight_bases,
                       bipolar_weight, bit_transforms, integer_range, is_op, weight_base,
                       weight_transpose)

#: ops a region may contain (linear in the products, or monotone single-input ops for the tail)
REGION_OPS = {"Add", "Sub", "Mul", "Div", "Neg", "BatchNormalization", "MaxPool", "Flatten", "Reshape", "Transpose"}
SCALE_OPS = ("Mul", "Div", "Neg")
EXACT_LIMIT = 2 ** 24


# -- operands -------------------------------------------------------------------------------------

@dataclass
class Product:
    node: NodeProto
    conv: bool
    kernel: tuple
    strides: tuple
    pads: tuple  # [top, left, bottom, right]: bit padding (Pad folded) or integer zero padding
    o: int
    k: int
    xmax: int  # |activation code| bound (1 for bits)
    act: ActOperand  # kind / source / transforms / spec of the activation side (bases in ``acts``)
    acts: dict  # act base key -> factor (float64): the activation operand is sum factor * h(base)
    consts: float  # constant part of the activation operand (a re-quantized base that is constant)
    weights: dict  # weight key -> (bits (O, K) uint8, alpha (O,) float64)
    nodes: list[NodeProto] = field(default_factory=list)
    origin: dict = field(default_factory=dict)  # base key -> (graph position of its quantizer, level)

    @property
    def signature(self) -> tuple:
        """What products of one layer must share to run as one XNOR engine."""
        tsig = tuple((t.kind, tuple(attr(t.node, "kernel_shape", []) or []), tuple(attr(t.node, "strides", []) or []),
                      t.pads) for t in self.act.transforms)
        spec = self.act.spec.encode() if self.act.kind == "bits" and not hasattr(self.act.spec, "shifts") else None
        q = (self.act.scale, self.act.bitwidth, self.act.signed, self.act.narrow) if self.act.kind == "integer" else None
        return (self.conv, self.act.kind, self.act.source, tsig, spec, q, self.kernel, self.strides, self.pads,
                self.act.zero_pad, self.o)


def _scale_chain(model: ModelWrapper, tensor: str, per_element: bool = False):
    """Peel Mul / Div by a constant and Neg below ``tensor``: (tensor under them, [(op, const or None)])
    innermost op first."""
    ops = []
    while True:
        p = model.find_producer(tensor)
        if p is None or p.op_type not in SCALE_OPS:
            break
        if p.op_type == "Neg":
            ops.append(("Neg", None))
            tensor = p.input[0]
            continue
        c0, c1 = const(model, p.input[0]), const(model, p.input[1])
        if c1 is not None and c0 is None:
            ops.append((p.op_type, np.asarray(c1, np.float32)))
            tensor = p.input[0]
        elif c0 is not None and c1 is None and p.op_type == "Mul":
            ops.append(("Mul", np.asarray(c0, np.float32)))
            tensor = p.input[1]
        else:
            break
        if not per_element and ops[-1][1] is not None and ops[-1][1].size != 1:
            raise PatternError(p, "an activation operand is scaled by a non-scalar constant "
                                  "(per-channel scales belong on the weights or after the product)")
    ops.reverse()
    return tensor, ops


def _apply_f32(v: np.ndarray, ops) -> np.ndarray:
    """The export's float32 arithmetic of a peeled scale chain, op for op."""
    v = np.asarray(v, np.float32)
    for op, c in ops:
        if op == "Neg":
            v = -v
        elif op == "Mul":
            v = (v * c).astype(np.float32)
        else:
            v = (v / c).astype(np.float32)
    return v


def _nodes_of_chain(model: ModelWrapper, top: str, bottom: str) -> list[NodeProto]:
    out = []
    t = top
    while t != bottom:
        p = model.find_producer(t)
        out.append(p)
        t = p.input[0] if const(model, p.input[0]) is None else p.input[1]
    return out


def bit_of(model: ModelWrapper, x: str, depth: int = 0):
    """The bit ``x >= 0`` that a BipolarQuant reads, as (base, sign, nodes): base ("shift", z, c)
    means (z + c >= 0); sign -1 is its inversion; base None is a constant bit (sign +1: always 1).
    A quantizer whose input is an earlier bipolar quantizer shifted / scaled by constants is a
    function of that one bit (identity, inversion or constant): it is folded."""
    nodes: list[NodeProto] = []
    # peel constant elementwise ops down to an earlier BipolarQuant, if any
    t, ops = x, []
    while depth < 16:
        p = model.find_producer(t)
        if p is None or p.op_type not in ("Add", "Sub", "Mul", "Div", "Neg"):
            break
        if p.op_type == "Neg":
            ops.append((p, "Neg", None, False))
            t = p.input[0]
            continue
        c0, c1 = const(model, p.input[0]), const(model, p.input[1])
        if c1 is not None and c0 is None and np.asarray(c1).size == 1:
            ops.append((p, p.op_type, np.float32(np.asarray(c1).reshape(-1)[0]), False))
            t = p.input[0]
        elif c0 is not None and c1 is None and np.asarray(c0).size == 1 and p.op_type != "Div":
            ops.append((p, p.op_type, np.float32(np.asarray(c0).reshape(-1)[0]), True))
            t = p.input[1]
        else:
            break
    inner = model.find_producer(t)
    if is_op(inner, "BipolarQuant") and inner.domain in QONNX_DOMAINS and const(model, inner.input[0]) is None:
        s1 = _bq_scale(model, inner)
        if s1.size != 1:
            raise PatternError(inner, "activation BipolarQuant scale must be a scalar")
        vals = np.array([s1.reshape(-1)[0], -s1.reshape(-1)[0]], np.float32)  # h = +1, h = -1
        for _, op, c, left in reversed(ops):
            if op == "Neg":
                vals = -vals
            elif op == "Add":
                vals = (vals + c).astype(np.float32)
            elif op == "Sub":
                vals = ((c - vals) if left else (vals - c)).astype(np.float32)
            elif op == "Mul":
                vals = (vals * c).astype(np.float32)
            else:
                vals = (vals / c).astype(np.float32)
        hp, hm = bool(vals[0] >= 0), bool(vals[1] >= 0)
        base, sign, sub = bit_of(model, inner.input[0], depth + 1)
        nodes = [o[0] for o in ops] + [inner] + sub
        if hp == hm:
            return None, 1 if hp else -1, nodes
        return base, sign if hp else -sign, nodes
    # a plain float source: (z + c >= 0) with one Add/Sub of a scalar constant, else (x >= 0)
    p = model.find_producer(x)
    if p is not None and p.op_type in ("Add", "Sub"):
        c1 = scalar(const(model, p.input[1]))
        c0 = scalar(const(model, p.input[0])) if p.op_type == "Add" else None
        if c1 is not None and const(model, p.input[0]) is None:
            return ("shift", p.input[0], float(np.float32(c1 if p.op_type == "Add" else -np.float32(c1)))), 1, [p]
        if c0 is not None and const(model, p.input[1]) is None:
            return ("shift", p.input[1], float(np.float32(c0))), 1, [p]
    return ("shift", x, 0.0), 1, []


def _act_terms(model: ModelWrapper, tensor: str, nodes: list[NodeProto], origin: dict | None = None) -> tuple[dict, float]:
    """Linear combination of activation bases below ``tensor``: ({base: factor}, constant)."""
    p = model.find_producer(tensor)
    if p is None:
        raise PatternError(None, "float operand: input is the float graph input (not quantized)")
    runtime = [i for i in p.input if i and const(model, i) is None]
    if p.op_type in ("Add", "Sub") and len(runtime) == 2:
        a, ca = _act_terms(model, p.input[0], nodes, origin)
        b, cb = _act_terms(model, p.input[1], nodes, origin)
        sgn = 1.0 if p.op_type == "Add" else -1.0
        for key, f in b.items():
            a[key] = a.get(key, 0.0) + sgn * f
        nodes.append(p)
        return a, ca + sgn * cb
    if p.op_type in SCALE_OPS:
        below, ops = _scale_chain(model, tensor)
        nodes.extend(_nodes_of_chain(model, tensor, below))
        terms, c = _act_terms(model, below, nodes, origin)
        f = float(np.float64(_apply_f32(np.float32(1), ops)))  # the factor, as the export rounds it
        return {k: v * f for k, v in terms.items()}, c * f
    if is_op(p, "BipolarQuant") and p.domain in QONNX_DOMAINS:
        if const(model, p.input[0]) is not None:
            raise PatternError(p, "activation BipolarQuant has a constant input")
        s = _bq_scale(model, p)
        if s.size != 1:
            raise PatternError(p, "activation BipolarQuant scale must be a scalar")
        base, sign, sub = bit_of(model, p.input[0])
        nodes.extend([p] + sub)
        s = float(s.reshape(-1)[0])
        if base is None:
            return {}, sign * s
        if origin is not None:
            origin.setdefault(base, []).append(p.name)
        return {base: sign * s}, 0.0
    kind = f"{p.op_type} '{p.name}'"
    raise PatternError(None, f"float operand: input produced by {kind}, not by BipolarQuant/Quant")


def _weight_terms(model: ModelWrapper, tensor: str, conv: bool, nodes: list[NodeProto],
                  origin: dict | None = None) -> tuple[dict, tuple]:
    """{bits bytes: (bits (O, K), alpha (O,) float64)} and the kernel shape."""
    tensor, perm = weight_transpose(model, tensor, nodes)
    out: dict = {}
    kernel: tuple = ()

    def add(bits2, alpha, name):
        key = (bits2.shape, bits2.tobytes())
        if origin is not None:
            origin.setdefault(key, []).append(name)
        if key in out:
            out[key] = (bits2, out[key][1] + alpha)
        else:
            out[key] = (bits2, alpha)

    def leaf(t: str, sign: float):
        nonlocal kernel
        p = model.find_producer(t)
        if p is not None and p.op_type in ("Add", "Sub") and all(const(model, i) is None for i in p.input):
            nodes.append(p)
            leaf(p.input[0], sign)
            leaf(p.input[1], sign if p.op_type == "Add" else -sign)
            return
        below, ops = _scale_chain(model, t, per_element=True)
        nodes.extend(_nodes_of_chain(model, t, below))
        bq = model.find_producer(below)
        if is_op(bq, "Quant") and not ops:
            for (b2, kern), a in _kbit_weight_bases(model, bq, perm, conv):
                add(b2, sign * a.astype(np.float64), bq.name)
                kernel = kern
            nodes.append(bq)
            return
        w = bipolar_weight(model, bq)
        try:
            a = _apply_f32(np.broadcast_to(_bq_scale(model, bq), w.shape), ops)
            a = np.broadcast_to(a, w.shape)
        except ValueError as e:
            raise PatternError(bq, f"weight scale does not broadcast to the weights {w.shape}") from e
        b2, a1, kernel = weight_base(bq, w, a, perm, conv)
        nodes.append(bq)
        add(b2, sign * a1.astype(np.float64), bq.name)

    leaf(tensor, 1.0)
    return out, kernel


def product_of(model: ModelWrapper, node: NodeProto) -> Product:
    """Recognise the operands of one Conv / MatMul (raises PatternError)."""
    conv = node.op_type == "Conv"
    nodes: list[NodeProto] = []
    try:
        return _product_of(model, node, conv, nodes)
    except PatternError as e:  # what was recognised before the problem is not reported again
        e.covered = [n.name for n in nodes]
        if not any(n.op_type in ("BipolarQuant", "Quant") for n in nodes):  # weights failed: still cover the act side
            try:
                below, _, tnodes, _ = bit_transforms(model, node.input[0])
                more: list[NodeProto] = []
                _act_terms(model, below, more)
                e.covered += [n.name for n in tnodes + more]
            except PatternError:
                pass
        raise


def _product_of(model: ModelWrapper, node: NodeProto, conv: bool, nodes: list[NodeProto]) -> Product:
    origin: dict = {}
    weights, kernel = _weight_terms(model, node.input[1], conv, nodes, origin)
    (bits0, _), = [next(iter(weights.values()))]
    o, k = bits0.shape
    below, transforms, tnodes, pad_value = bit_transforms(model, node.input[0])
    nodes += tnodes
    prod = model.find_producer(below)
    consts = 0.0
    if is_op(prod, "Quant"):
        act = _act_operand_below(model, below, transforms, tnodes, pad_value)
        nodes += act.nodes
        if act.kind == "integer":
            acts = {("int", act.source, act.nodes[-1].name): float(act.scale)}
        else:
            acts = {("kbit", act.source, act.spec.encode(), j): float(b) for j, b in enumerate(act.beta)}
    else:
        acts, consts = _act_terms(model, below, nodes, origin)
        acts = {kk: f for kk, f in acts.items() if f != 0.0}
        srcs = {kk[1] for kk in acts}
        if len(srcs) > 1:
            raise PatternError(node, "activation bases do not share one input (expected BipolarQuant(x + c_n))")
        if not acts:
            raise PatternError(node, "the activation operand is a constant (every base is constant)")
        src = next(iter(srcs))
        shifts = tuple(kk[2] for kk in acts)
        from .bitspec import ShiftBits

        act = ActOperand("bits", src, list(shifts), None, transforms, nodes, spec=ShiftBits(shifts),
                         zero_pad=pad_value is not None and pad_value == 0)
        if pad_value is not None and pad_value != 0:
            total = np.float32(0)
            for f in acts.values():  # the operand with every bit 0, left to right in float32
                total = np.float32(total - np.float32(f))
            allzero = np.float32(total + np.float32(consts))
            if np.float32(pad_value) != allzero:
                raise PatternError(transforms[-1].node, f"pad value {pad_value} is neither 0 (zero padding) nor the "
                                                        f"bit value (the operand with every bit 0: {allzero})")
    if act.kind == "integer":
        lo, hi = integer_range(act)
        xmax = max(abs(lo), abs(hi))
        pads = tuple(attr(node, "pads", [0, 0, 0, 0])) if conv else ()
    else:  # bit-0 padding (an explicit Pad(-sum beta)) or zero padding (the conv's own pads or Pad(0))
        xmax = 1
        own = tuple(attr(node, "pads", [0, 0, 0, 0])) if conv else ()
        pads = (own if any(own) else tuple(act.pads)) if conv else ()
        act.zero_pad = bool(conv and any(pads) and (any(own) or act.zero_pad))
    if consts and any(pads):
        raise PatternError(node, "a constant activation base on a padded convolution")
    strides = tuple(attr(node, "strides", [1, 1])) if conv else ()
    return Product(node, conv, tuple(kernel), strides, pads, int(o), int(k), int(xmax), act, acts, consts,
                   weights, nodes, origin)


# -- affine forms ---------------------------------------------------------------------------------

@dataclass
class Form:
    """sum_{(w, a)} coef[(w, a)][o] * dot_{w,a}[o] + offset[o]; ``exact``: the export computes it
    exactly in float32 (every value an integer multiple of a power of two below 2**24 of them)."""

    coef: dict
    offset: np.ndarray
    exact: bool

    def scaled(self, c: np.ndarray, exact: bool) -> Form:
        return Form({k: v * c for k, v in self.coef.items()}, self.offset * c, exact)


def _dyadic64(v: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """v[..., o] == k * 2**e[o] exactly (float64 values), largest e per channel (last axis)."""
    v = np.asarray(v, np.float64)
    if not np.all(np.isfinite(v)):
        return None
    mant, ex = np.frexp(v)
    im = (mant * 2.0 ** 53).astype(np.int64)
    nz = im != 0
    low = np.where(nz, np.abs(im) & -np.abs(im), 1)
    tz = np.where(nz, np.round(np.log2(low.astype(np.float64))).astype(np.int64), 0)
    lowest = np.where(nz, ex.astype(np.int64) - 53 + tz, np.iinfo(np.int64).max)
    e = lowest.min(axis=0)
    e = np.where(e == np.iinfo(np.int64).max, 0, e)
    k = np.round(v / np.exp2(e.astype(np.float64)))
    if not np.all(k * np.exp2(e.astype(np.float64)) == v):
        return None
    return k, e


def _exact(form: Form, dmax: dict) -> bool:
    keys = list(form.coef)
    vals = np.stack([form.coef[k] for k in keys] + [form.offset])
    d = _dyadic64(vals)
    if d is None:
        return False
    k, _ = d
    bound = np.abs(k[-1]) + sum(np.abs(k[i]) * dmax[key] for i, key in enumerate(keys))
    return bool(np.all(bound < EXACT_LIMIT))


def _channel_vector(c: np.ndarray, rank: int, o: int, node: NodeProto) -> np.ndarray:
    shape = (1,) * (rank - c.ndim) + tuple(c.shape)
    if len(shape) != rank or any(d != 1 for i, d in enumerate(shape) if i != 1) or shape[1] not in (1, o):
        raise PatternError(node, f"constant of shape {tuple(c.shape)} is not a scalar or per-channel constant")
    return np.broadcast_to(np.asarray(c, np.float64).reshape(-1), (o,)).astype(np.float64)


def product_form(p: Product) -> tuple[Form, dict]:
    """The product's output as a form over (weight key, act key) dots and each dot's bound."""
    coef: dict = {}
    dmax: dict = {}
    offset = np.zeros(p.o, np.float64)
    for wk, (bits, alpha) in p.weights.items():
        for ak, f in p.acts.items():
            coef[(wk, ak)] = coef.get((wk, ak), 0.0) + alpha * f
            dmax[(wk, ak)] = p.k * p.xmax
        if p.consts:  # a constant +-1 activation: dot = sum_k (+-1)(2 b - 1) per output channel
            offset = offset + alpha * p.consts * (2.0 * bits.sum(axis=1) - p.k)
    form = Form(coef, offset, True)
    form.exact = _exact(form, dmax)
    return form, dmax


def evaluate_node(model: ModelWrapper, node: NodeProto, forms: dict, dmax: dict, rank: int, o: int) -> Form:
    """The form of ``node``'s output from its inputs' forms (raises PatternError if not linear)."""
    op = node.op_type
    ins = [forms.get(i) for i in node.input]
    cs = [const(model, i) for i in node.input]
    if op in ("Add", "Sub") and ins[0] is not None and ins[1] is not None:
        sgn = 1.0 if op == "Add" else -1.0
        coef = dict(ins[0].coef)
        for k, v in ins[1].coef.items():
            coef[k] = coef.get(k, 0.0) + sgn * v
        f = Form(coef, ins[0].offset + sgn * ins[1].offset, ins[0].exact and ins[1].exact)
    elif op in ("Add", "Sub"):
        i = 0 if ins[0] is not None else 1
        c = _channel_vector(np.asarray(cs[1 - i]), rank, o, node)
        if op == "Add":
            f = Form(dict(ins[i].coef), ins[i].offset + c, ins[i].exact)
        elif i == 0:  # form - c
            f = Form(dict(ins[0].coef), ins[0].offset - c, ins[0].exact)
        else:  # c - form
            neg = ins[1].scaled(np.full(o, -1.0), ins[1].exact)
            f = Form(neg.coef, neg.offset + c, neg.exact)
    elif op == "Mul":
        i = 0 if ins[0] is not None else 1
        if cs[1 - i] is None:
            raise PatternError(node, "product of two run-time tensors between a layer's products and its quantizers")
        f = ins[i].scaled(_channel_vector(np.asarray(cs[1 - i]), rank, o, node), ins[i].exact)
    elif op == "Div":
        if ins[0] is None or cs[1] is None:
            raise PatternError(node, "division by a run-time tensor is not linear")
        f = ins[0].scaled(1.0 / _channel_vector(np.asarray(cs[1]), rank, o, node), ins[0].exact)
    elif op == "Neg":
        f = ins[0].scaled(np.full(o, -1.0), ins[0].exact)
    elif op == "BatchNormalization":
        if any(c is None for c in cs[1:5]) or attr(node, "training_mode", 0):
            raise PatternError(node, "batch norm parameters are not constants")
        g, b, mean, var = (np.asarray(c, np.float64).reshape(-1) for c in cs[1:5])
        eps = float(attr(node, "epsilon", 1e-5))
        scale = g / np.sqrt(var + eps)
        f = Form({k: v * scale for k, v in ins[0].coef.items()}, (ins[0].offset - mean) * scale + b, False)
        return f
    else:
        raise PatternError(node, f"{op} before the join of a layer's branches is not linear "
                                 "(pool / reshape the joined sum, not each branch)")
    if f.exact:
        f.exact = _exact(f, dmax)
    return f


# -- layers ---------------------------------------------------------------------------------------

@dataclass
class Layer:
    products: list[Product]
    t_core: str  # tensor replaced by the accumulator (Cast, Mul(unit) [, Add(offset)])
    core: list[NodeProto]  # join nodes folded into the coefficients
    form: Form | None = None
    dmax: dict = field(default_factory=dict)

    @property
    def trivial(self) -> bool:
        return len(self.products) == 1 and not self.core


@dataclass
class Analysis:
    layers: list[Layer]
    covered: set  # node names that belong to a recognised operand or a folded join
    problems: list  # (node or None, reason, fallback node)


def _find(parent: dict, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def analyse(model: ModelWrapper) -> Analysis:
    """Products, their grouping into layers and each layer's core (no rewriting)."""
    graph = model.graph
    products: list[Product] = []
    problems: list = []
    partial: set[str] = set()
    for node in graph.node:
        if node.op_type not in ("Conv", "MatMul"):
            continue
        try:
            products.append(product_of(model, node))
        except PatternError as e:
            problems.append((e.node, e.reason, node))
            partial.update(getattr(e, "covered", []))
    covered = {n.name for p in products for n in p.nodes} | partial
    index = {p.node.name: i for i, p in enumerate(products)}
    parent = {i: i for i in range(len(products))}
    region_of: dict[str, int] = {}  # tensor -> product index (any member of its group)
    member: dict[str, int] = {}  # region node name -> product index
    for node in graph.node:
        if node.name in index:
            region_of[node.output[0]] = index[node.name]
            continue
        if node.name in covered or node.op_type not in REGION_OPS or node.domain not in ("", "ai.onnx"):
            continue
        runtime = [i for i in node.input if i and const(model, i) is None]
        if not runtime or any(i not in region_of for i in runtime):
            continue  # not reached from a product, or joined with a foreign tensor (residual)
        if node.op_type in ("Mul", "Div") and len(runtime) > 1:
            continue
        roots = {_find(parent, region_of[i]) for i in runtime}
        if len(roots) > 1:
            sigs = {products[r].signature for r in roots}
            if len(sigs) != 1:
                continue  # a join of two different layers (e.g. a residual add): kept in float
            r0 = min(roots)
            for r in roots:
                parent[r] = r0
        region_of[node.output[0]] = next(iter(roots))
        member[node.name] = next(iter(roots))
    outputs = {o.name for o in graph.output}
    groups: dict[int, list[int]] = {}
    for i in range(len(products)):
        groups.setdefault(_find(parent, i), []).append(i)
    layers: list[Layer] = []
    for root, idx in groups.items():
        prods = [products[i] for i in idx]
        names = {p.node.name for p in prods} | {n for n, r in member.items() if _find(parent, r) == root}
        rnodes = [n for n in graph.node if n.name in names]
        produced = {o for n in rnodes for o in n.output}
        sinks = [t for t in produced if t in outputs or any(c.name not in names for c in model.find_consumers(t) or [])]
        if len(sinks) != 1:  # partial sums read elsewhere: lowered one by one, the joins stay float
            for p in prods:
                single = Layer([p], p.node.output[0], [])
                try:
                    _evaluate(model, single, set(), single.t_core)
                except PatternError as e:
                    problems.append((e.node, e.reason, p.node))
                    continue
                layers.append(single)
            continue
        # tail: the single-input chain ending at the sink
        t = sinks[0]
        while True:
            p = model.find_producer(t)
            if p is None or p.name not in names or p.name in index:
                break
            runtime = [i for i in p.input if i and const(model, i) is None]
            if len(runtime) != 1 or len(model.find_consumers(runtime[0]) or []) != 1:
                break
            t = runtime[0]
        core_names = set()
        todo = [t]
        while todo:
            p = model.find_producer(todo.pop())
            if p is None or p.name not in names or p.name in index or p.name in core_names:
                continue
            core_names.add(p.name)
            todo.extend(i for i in p.input if i)
        core = [n for n in graph.node if n.name in core_names]
        layer = Layer(prods, t, core)
        try:
            _evaluate(model, layer, names, sinks[0])
        except PatternError as e:
            problems.append((e.node, e.reason, prods[0].node))
            continue
        covered |= {n.name for n in layer.core}
        layers.append(layer)
    layers.sort(key=lambda lay: min(list(graph.node).index(p.node) for p in lay.products))
    return Analysis(layers, covered, problems)


def _evaluate(model: ModelWrapper, layer: Layer, names: set, sink: str) -> None:
    forms: dict = {}
    dmax: dict = {}
    p0 = layer.products[0]
    rank = len(model.get_tensor_shape(layer.t_core) or []) or (4 if p0.conv else 2)
    for p in layer.products:
        forms[p.node.output[0]], d = product_form(p)
        dmax.update(d)
    for node in layer.core:
        forms[node.output[0]] = evaluate_node(model, node, forms, dmax, rank, p0.o)
    layer.form = forms[layer.t_core]
    # constant scales / shifts right after the join (alpha, beta or a bias applied to the sum) join
    # the core while the export still computes them exactly: where a scale sits does not change
    # the lowered layer, and the first rounding op stays in the tail, executed as exported
    while layer.form.exact and layer.t_core != sink:
        cons = model.find_consumers(layer.t_core) or []
        if len(cons) != 1 or cons[0].name not in names or cons[0].op_type not in ("Mul", "Div", "Neg", "Add", "Sub"):
            break
        node = cons[0]
        if sum(1 for i in node.input if i and const(model, i) is None) != 1:
            break
        try:
            form = evaluate_node(model, node, {layer.t_core: layer.form}, dmax, rank, p0.o)
        except PatternError:
            break
        if not form.exact:
            break
        layer.core.append(node)
        layer.t_core, layer.form = node.output[0], form
    layer.dmax = dmax


def bases(layer: Layer, position: dict | None = None) -> tuple[list, list]:
    """Weight keys and act keys in use (nonzero coefficient somewhere), ordered by the graph
    position of their first quantizer (``position``: node name -> index), so the order of the
    products and of the sums does not change the lowered layer."""
    wk, ak = [], []
    for p in layer.products:
        for w in p.weights:
            if w not in wk and any(np.any(layer.form.coef.get((w, a), 0.0) != 0) for a in p.acts):
                wk.append(w)
        for a in p.acts:
            if a not in ak and any(np.any(layer.form.coef.get((w, a), 0.0) != 0) for w in p.weights):
                ak.append(a)
    if position is not None:
        first: dict = {}
        for p in layer.products:
            for key, names in p.origin.items():
                first[key] = min([first.get(key, len(position))] + [position.get(nm, len(position)) for nm in names])
        wk.sort(key=lambda w: first.get(w, len(position)))
        ak.sort(key=lambda a: (first.get(a, len(position)), a[3] if a[0] == "kbit" else 0))
    return wk, ak


def coefficient_grid(layer: Layer, position: dict | None = None) -> tuple[np.ndarray, np.ndarray, list, list]:
    """(bits (M, O, K) uint8, coef (M, N, O) float64, weight keys, act keys)."""
    wk, ak = bases(layer, position)
    if not wk or not ak:
        raise PatternError(layer.products[0].node, "every coefficient of this layer's dot products is zero")
    wbits = {}
    for p in layer.products:
        for w, (b, _) in p.weights.items():
            wbits[w] = b
    coef = np.zeros((len(wk), len(ak), layer.products[0].o), np.float64)
    for i, w in enumerate(wk):
        for j, a in enumerate(ak):
            coef[i, j] = layer.form.coef.get((w, a), 0.0)
    return np.stack([wbits[w] for w in wk]), coef, wk, ak


__all__ = ["Analysis", "Form", "Layer", "Product", "analyse", "bit_of", "coefficient_grid", "product_of"]
