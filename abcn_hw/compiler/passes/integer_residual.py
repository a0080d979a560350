"""Integer residual streams: the float ops a residual network keeps between its layers become
integer ops (docs/residual-networks.md).

After LowerBinaryLayers and AbsorbThresholds a residual join is still float32:
``acc -> Cast -> Mul(2**u) -> Mul(s) -> Add(t) -> Add(join) -> FloatBaseQuant / ReduceSum / ...``.
Every tensor of such a region is an affine form ``sum_i coef_i[c] * X_i + off[c]`` in integer
tensors X_i (accumulators, earlier joins), with dyadic float32 constants. When every op of the
region is exact in float32 (all values on the form's per-channel grid 2**E[c], fewer than 2**24
quanta: the export computes the real value with no rounding) the region is an integer op:

* ``MaterializeResidualJoins``: a form read by a pool, a quantizer or two consumers (a join that
  also feeds the next block's identity) -> ``ResidualAdd`` (k = 1: the stem's affine);
* ``LowerRoundingShifts``: a join's requantisation ``Round(v * 2**-g)`` -> ``ResidualAdd`` with
  a rounding ``shift`` (ties to even);
* ``LowerIntegerMaxPools``: ``MaxPool`` of an integer value -> ``IntegerMaxPool``;
* ``LowerGlobalSumPools``: ``ReduceSum`` over H, W of an integer value -> ``GlobalSumPool``;
* ``ThresholdIntegerTensors``: the next layer's ``FloatBaseQuant`` / ``FloatQuantBits`` of an
  integer value -> ``IntegerThreshold`` (thresholds derived by evaluating the quantizer on the
  exact float value of every candidate integer, as for MultiBaseThreshold).

Each rewrite keeps the graph equivalent: the integer op is followed by ``Cast -> Mul(2**E)``
producing the original float tensor (read by whatever is not lowered yet; dead at the end). A
region that is not provably exact (a float batch norm whose scale has a 24-bit mantissa, a sum
of 2**24 quanta or more, a division that rounds) is left in float32 and listed in ``skipped``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from onnx import NodeProto, TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from ..bitspec import from_node
from ..graphutil import add_init, attr, const, fresh_name, propagate_shapes
from ..ops import DOMAIN
from ..ops.residual_add import OVERLOADS
from ..support import double_sum_pool, is_spatial_sum
from ..thresholds import check_thresholds, derive_thresholds

EXACT_LIMIT = 2 ** 24  # float32 significand: a value of fewer quanta is computed exactly
INT32_LIMIT = 2 ** 31
#: consumers that need an integer value (not a linear op that extends the form)
INTEGER_CONSUMERS = ("FloatBaseQuant", "FloatQuantBits", "ReduceSum", "MaxPool", "Cast")


@dataclass
class IntView:
    """Float tensor z == fl32(Y * 2**exp[c]) with |Y| <= amax[c] (exact while amax < 2**24)."""

    tensor: str
    exp: np.ndarray  # (C,) int64
    amax: np.ndarray  # (C,) int64


@dataclass
class Form:
    """sum_i coef[X_i][c] * X_i + off[c] (float64, exact dyadic values)."""

    coef: dict
    off: np.ndarray
    exact: bool = True
    reason: str = ""


@dataclass
class IntegerRanges:
    """Integer tensors with a known range, shared by the passes: tensor -> amax (C,) int64."""

    amax: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)  # node name -> reason: regions left in float32
    probes: dict = field(default_factory=dict)  # lowered bits -> (export z, BitSpec)

    def skip(self, node: str, reason: str) -> None:
        self.skipped.setdefault(node, reason)


def _channels(model: ModelWrapper, tensor: str) -> int:
    return int(model.get_tensor_shape(tensor)[1])


def _per_channel(c: np.ndarray, rank: int, channels: int) -> np.ndarray | None:
    """A constant broadcasting per channel (axis 1) against rank ``rank``, as (C,) float64."""
    c = np.asarray(c)
    shape = (1,) * (rank - c.ndim) + tuple(c.shape)
    if len(shape) != rank or any(d != 1 for i, d in enumerate(shape) if i != 1):
        return None
    return np.broadcast_to(c.astype(np.float64).reshape(-1), (channels,)).copy()


def _pow2_exponents(v: np.ndarray) -> np.ndarray | None:
    """(C,) int64 e with v == 2**e, or None unless every entry is a positive power of two."""
    if np.any(v <= 0):
        return None
    mant, ex = np.frexp(v)
    return (ex - 1).astype(np.int64) if np.all(mant == 0.5) else None


def int_view(model: ModelWrapper, z: str, ranges: IntegerRanges) -> IntView | None:
    """``z = Mul(Cast<float>(Y), 2**e)`` with Y an integer tensor of known range."""
    mul = model.find_producer(z)
    if mul is None or mul.op_type != "Mul" or mul.domain not in ("", "ai.onnx"):
        return None
    cs = [const(model, i) for i in mul.input]
    if (cs[0] is None) == (cs[1] is None):
        return None
    x = mul.input[0] if cs[1] is not None else mul.input[1]
    cast = model.find_producer(x)
    if cast is None or cast.op_type != "Cast" or attr(cast, "to") != TensorProto.FLOAT:
        return None
    y = cast.input[0]
    if y not in ranges.amax:
        return None
    rank = len(model.get_tensor_shape(z))
    unit = _per_channel(cs[1] if cs[1] is not None else cs[0], rank, _channels(model, z))
    e = None if unit is None else _pow2_exponents(unit)
    return None if e is None else IntView(y, e, ranges.amax[y])


def _grid(form: Form, ranges: IntegerRanges) -> tuple[np.ndarray, np.ndarray]:
    """(E (C,) int64, bound (C,) float64): the form's finest per-channel exponent and the largest
    |value| in quanta 2**E (float64: exact below 2**53, compared with 2**24 and 2**31 only)."""
    vals = list(form.coef.values()) + [form.off]
    lowest = []
    for v in vals:
        mant, ex = np.frexp(v)
        m = np.round(mant * 2.0 ** 53).astype(np.int64)
        nz = m != 0
        low = np.where(nz, np.abs(m) & -np.abs(m), 1)
        tz = np.where(nz, np.round(np.log2(low.astype(np.float64))).astype(np.int64), 0)
        lowest.append(np.where(nz, ex.astype(np.int64) - 53 + tz, np.iinfo(np.int64).max))
    e = np.min(np.stack(lowest), axis=0)
    e = np.where(e == np.iinfo(np.int64).max, 0, e)
    q = np.exp2(-e.astype(np.float64))
    bound = np.abs(form.off) * q
    for x, c in form.coef.items():
        bound = bound + np.abs(c) * q * ranges.amax[x].astype(np.float64)
    return e, bound


def _significant_bits(v: np.ndarray) -> int:
    """Most significant bits of any entry of a float64 array (mantissa without trailing zeros)."""
    mant, _ = np.frexp(np.asarray(v, np.float64))
    m = np.abs(np.round(mant * 2.0 ** 53).astype(np.int64))
    nz = m != 0
    low = np.where(nz, m & -m, 1)
    tz = np.round(np.log2(low.astype(np.float64))).astype(np.int64)
    return int(np.where(nz, 53 - tz, 0).max(initial=0))


def _scaled(f: Form, c: np.ndarray, node: NodeProto) -> Form:
    """f * c with the float64 coefficients checked exact (a product of two mantissas within 53 bits)."""
    out = Form({k: v * c for k, v in f.coef.items()}, f.off * c, f.exact, f.reason)
    widest = max([_significant_bits(v) for v in f.coef.values()] + [_significant_bits(f.off)])
    if out.exact and widest + _significant_bits(c) > 53:
        out.exact = False
        out.reason = f"{node.op_type} '{node.name}': a chain of constant scales too long to track exactly"
    return out


def _check(form: Form, ranges: IntegerRanges, node: NodeProto) -> Form:
    if form.exact:
        e, bound = _grid(form, ranges)
        if int(e.min(initial=0)) < -126:  # below float32's normal range: subnormal values round
            form.exact = False
            form.reason = f"{node.op_type} '{node.name}': values below float32's normal range"
        elif float(bound.max(initial=0.0)) >= EXACT_LIMIT:
            form.exact = False
            form.reason = (f"{node.op_type} '{node.name}' is not exact in float32: up to {bound.max():.4g} quanta "
                           f">= 2^24 on the join's dyadic grid")
    return form


def affine_form(model: ModelWrapper, z: str, ranges: IntegerRanges, memo: dict) -> Form | None:
    """The form of float tensor ``z`` in integer tensors, or None (not linear in integer tensors)."""
    if z in memo:
        return memo[z]
    memo[z] = None
    view = int_view(model, z, ranges)
    channels = _channels(model, z) if model.get_tensor_shape(z) else 0
    if view is not None:
        memo[z] = Form({view.tensor: np.exp2(view.exp.astype(np.float64))}, np.zeros(channels))
        return memo[z]
    p = model.find_producer(z)
    shape = model.get_tensor_shape(z)
    if p is None or p.domain not in ("", "ai.onnx") or shape is None:
        return None
    if p.op_type == "BatchNormalization" and all(const(model, i) is not None for i in p.input[1:]):
        f = affine_form(model, p.input[0], ranges, memo)
        if f is None:
            return None
        memo[z] = Form(f.coef, f.off, False, f.reason or f"BatchNormalization '{p.name}' is a float batch norm, "
                                                           "not exact in float32 on an integer grid (its kernel rounds)")
        return memo[z]
    if p.op_type not in ("Mul", "Div", "Add", "Sub", "Neg"):
        return None
    rank = len(shape)
    cs = [const(model, i) for i in p.input]
    run = [i for i, c in zip(p.input, cs) if c is None]
    if p.op_type == "Neg":
        f = affine_form(model, p.input[0], ranges, memo)
        out = None if f is None else Form({k: -v for k, v in f.coef.items()}, -f.off, f.exact, f.reason)
    elif len(run) == 2 and p.op_type in ("Add", "Sub"):
        a, b = (affine_form(model, i, ranges, memo) for i in p.input)
        if a is None or b is None:
            return None
        sg = 1.0 if p.op_type == "Add" else -1.0
        coef = dict(a.coef)
        for k, v in b.coef.items():
            coef[k] = coef.get(k, 0.0) + sg * v
        out = Form(coef, a.off + sg * b.off, a.exact and b.exact, a.reason or b.reason)
    elif len(run) == 1:
        ci = 1 if cs[1] is not None else 0
        c = _per_channel(cs[ci], rank, channels)
        f = affine_form(model, run[0], ranges, memo)
        if c is None or f is None:
            return None
        if p.op_type == "Mul":
            out = _scaled(f, c, p)
        elif p.op_type == "Div":
            if ci != 1 or _pow2_exponents(np.abs(c)) is None:
                return None  # c / x is not affine; x / c rounds unless c is a power of two
            out = _scaled(f, 1.0 / c, p)
        elif p.op_type == "Add":
            out = Form(dict(f.coef), f.off + c, f.exact, f.reason)
        else:  # Sub
            out = (Form(dict(f.coef), f.off - c, f.exact, f.reason) if ci == 1
                   else Form({k: -v for k, v in f.coef.items()}, c - f.off, f.exact, f.reason))
    else:
        return None
    memo[z] = _check(out, ranges, p)
    return memo[z]


def _replace_producer(model: ModelWrapper, z: str, new: list[NodeProto]) -> None:
    """Insert ``new`` (the last one producing ``z``) where the producer of ``z`` was."""
    graph = model.graph
    old = model.find_producer(z)
    pos = list(graph.node).index(old)
    graph.node.remove(old)
    for i, nd in enumerate(new):
        graph.node.insert(pos + i, nd)
    propagate_shapes(model, new[:-1])


def _as_float(model: ModelWrapper, y: str, exp: np.ndarray, z: str, rank: int, base: str) -> list[NodeProto]:
    """``Cast -> Mul(2**exp)`` rebuilding the float tensor ``z`` from the integer ``y``."""
    f = fresh_name(model, base + "_float")
    unit = add_init(model, base + "_unit", np.exp2(exp.astype(np.float64)).astype(np.float32).reshape(
        (1, -1) + (1,) * (rank - 2)))
    return [helper.make_node("Cast", [y], [f], to=TensorProto.FLOAT, name=f),
            helper.make_node("Mul", [f, unit], [z], name=base + "_scale")]


class _IntegerPass(Transformation):
    """A pass over the integer values recorded in a shared :class:`IntegerRanges`."""

    def __init__(self, ranges: IntegerRanges):
        super().__init__()
        self.ranges = ranges


class MaterializeResidualJoins(_IntegerPass):
    """A float form in integer tensors, read by an integer consumer or by two consumers, becomes
    ``ResidualAdd(X_0 [, X_1], S, T)`` on its per-channel grid 2**E (exact regions only)."""

    def apply(self, model: ModelWrapper):
        changed = False
        outputs = {o.name for o in model.graph.output}
        for node in list(model.graph.node):
            if node.domain not in ("", "ai.onnx") or node.op_type not in ("Mul", "Add", "Sub", "Neg", "Div"):
                continue
            z = node.output[0]
            cons = model.find_consumers(z) or []
            if z in outputs or not (len(cons) > 1 or any(c.op_type in INTEGER_CONSUMERS for c in cons)):
                continue
            if int_view(model, z, self.ranges) is not None:
                continue
            form = affine_form(model, z, self.ranges, {})
            if form is None or not form.coef:
                continue
            if not form.exact:
                self.ranges.skip(node.name, form.reason)
                continue
            changed |= self._materialize(model, node, z, form)
        return model, changed

    def _materialize(self, model: ModelWrapper, node: NodeProto, z: str, form: Form) -> bool:
        e, bound = _grid(form, self.ranges)
        return _materialize_form(model, self.ranges, node, z, form, e, bound, 0)


def _materialize_form(model: ModelWrapper, ranges: IntegerRanges, node: NodeProto, out: str, form: Form,
                      e: np.ndarray, bound: np.ndarray, shift: int) -> bool:
    """Replace the producer of ``out`` (``node``) by ``ResidualAdd(X.., S, T, shift)`` computing
    the form on the per-channel grid 2**e (|form| <= bound quanta), shifted right by ``shift``
    with ties to even, then ``Cast -> Mul(2**(e + shift))`` back to the float tensor."""
    q = np.exp2(-e.astype(np.float64))
    xs = list(form.coef)
    s = np.stack([form.coef[x] * q for x in xs])
    t = form.off * q
    if len(xs) not in OVERLOADS or not (np.all(s == np.round(s)) and np.all(t == np.round(t))):
        ranges.skip(node.name, f"join of {len(xs)} integer tensors (ResidualAdd takes 1 or 2)")
        return False
    if float(bound.max(initial=0.0)) >= INT32_LIMIT:
        if not shift:  # implied by the float32 check; kept as the guard
            raise ValueError(f"ResidualAdd at '{node.name}': |Y| up to {bound.max():.4g} >= 2^31")
        ranges.skip(node.name, f"{node.op_type} '{node.name}': the integer it rounds reaches {bound.max():.4g} >= 2^31")
        return False
    base = node.name + "_residual"
    y = fresh_name(model, base)
    s_t = add_init(model, base + "_S", s.astype(np.int32))
    t_t = add_init(model, base + "_T", t.astype(np.int32))
    attrs = {"shift": int(shift)} if shift else {}
    add = helper.make_node("ResidualAdd", xs + [s_t, t_t], [y], domain=DOMAIN, name=base, **attrs)
    add.overload = OVERLOADS[len(xs)]
    rank = len(model.get_tensor_shape(out))
    _replace_producer(model, out, [add] + _as_float(model, y, e + shift, out, rank, base))
    # rounding is monotone: max |round(v / 2**shift)| = round(bound / 2**shift)
    ranges.amax[y] = np.ceil(np.round(bound / 2.0 ** shift)).astype(np.int64)
    return True


class LowerRoundingShifts(_IntegerPass):
    """``Round`` of an exact float form of integers -> ``ResidualAdd`` with a ``shift``: a residual
    join's requantisation ``Round(v * 2**-g) * 2**g`` (abcn_hw.nn.joins), exact in float32 for
    every v, is an integer rounding shift (ties to even, as ``Round``). The form is put on one grid
    2**E for all channels (E its finest exponent); with E < 0 the op shifts right by -E and the
    result is an integer on the grid 1, else the Round changes nothing (shift 0)."""

    def apply(self, model: ModelWrapper):
        changed = False
        for node in list(model.graph.node):
            if node.op_type != "Round" or node.domain not in ("", "ai.onnx"):
                continue
            form = affine_form(model, node.input[0], self.ranges, {})
            if form is None or not form.coef:
                continue
            if not form.exact:
                self.ranges.skip(node.name, form.reason)
                continue
            e, bound = _grid(form, self.ranges)
            lo = int(e.min(initial=0))
            if lo >= 0:
                changed |= _materialize_form(model, self.ranges, node, node.output[0], form, e, bound, 0)
                continue
            uniform = np.full_like(e, lo)
            changed |= _materialize_form(model, self.ranges, node, node.output[0], form, uniform,
                                         bound * np.exp2((e - lo).astype(np.float64)), -lo)
        return model, changed


class LowerIntegerMaxPools(_IntegerPass):
    """``MaxPool`` of an integer value -> ``IntegerMaxPool`` (padding never wins)."""

    def apply(self, model: ModelWrapper):
        changed = False
        for node in list(model.graph.node):
            if node.op_type != "MaxPool" or node.domain not in ("", "ai.onnx") or len(node.output) != 1:
                continue
            view = int_view(model, node.input[0], self.ranges)
            if view is None or attr(node, "ceil_mode", 0) or any(d != 1 for d in attr(node, "dilations", [1, 1])):
                continue
            ks = list(attr(node, "kernel_shape"))
            base = node.name + "_int"
            y = fresh_name(model, base)
            pool = helper.make_node("IntegerMaxPool", [view.tensor], [y], domain=DOMAIN, name=base, kernel_shape=ks,
                                    strides=list(attr(node, "strides", [1, 1])),
                                    pads=list(attr(node, "pads", [0, 0, 0, 0])))
            _replace_producer(model, node.output[0], [pool] + _as_float(model, y, view.exp, node.output[0], 4, base))
            self.ranges.amax[y] = view.amax
            changed = True
        return model, changed


class LowerGlobalSumPools(_IntegerPass):
    """``ReduceSum`` over H, W of an integer value -> ``GlobalSumPool``, when the export's sum is
    exact in every order: a float32 sum below 2**24 quanta, or the float64 sum of
    ``Cast<double> -> ReduceSum -> Cast<float>`` (exact below 2**53, then rounded once; the integer
    sum must fit int32). The float value read downstream is ``fl32(sum * 2**E)`` either way."""

    def apply(self, model: ModelWrapper):
        changed = False
        for node in list(model.graph.node):
            if node.op_type != "ReduceSum" or not is_spatial_sum(model, node):
                continue
            casts = double_sum_pool(model, node)
            src = casts[0].input[0] if casts is not None else node.input[0]
            out = casts[1].output[0] if casts is not None else node.output[0]
            view = int_view(model, src, self.ranges)
            if view is None:
                continue
            _, _, h, w = model.get_tensor_shape(src)
            amax = view.amax * (h * w)
            limit = INT32_LIMIT - 1 if casts is not None else EXACT_LIMIT
            if int(amax.max(initial=0)) >= limit:
                self.ranges.skip(node.name, f"sum pool of up to {int(amax.max())} quanta >= 2^"
                                            f"{31 if casts is not None else 24} is not exact")
                continue
            base = node.name + "_int"
            y = fresh_name(model, base)
            new = [helper.make_node("GlobalSumPool", [view.tensor], [y], domain=DOMAIN, name=base)]
            if attr(node, "keepdims", 1):
                flat = fresh_name(model, base + "_float2d")
                new += _as_float(model, y, view.exp, flat, 2, base)
                new.append(helper.make_node("Unsqueeze", [flat, add_init(model, base + "_axes", np.array([2, 3]))],
                                            [out], name=base + "_keepdims"))
            else:
                new += _as_float(model, y, view.exp, out, 2, base)
            _replace_producer(model, out, new)
            self.ranges.amax[y] = amax
            changed = True
        return model, changed


class ThresholdIntegerTensors(_IntegerPass):
    """The next layer's ``FloatBaseQuant`` / ``FloatQuantBits`` of an integer value ->
    ``IntegerThreshold(Y, T, S)`` (S = +1: the value grows with Y)."""

    def apply(self, model: ModelWrapper):
        changed = False
        for node in list(model.graph.node):
            spec = from_node(node)
            if spec is None:
                continue
            view = int_view(model, node.input[0], self.ranges)
            if view is None:
                continue
            unit = np.exp2(view.exp.astype(np.float64))[None, :]

            def evaluate(a: np.ndarray, unit=unit) -> np.ndarray:  # exact: |a| < 2**24, unit a power of two
                return (a.astype(np.float64) * unit).astype(np.float32)

            t, s = derive_thresholds(evaluate, spec, view.amax)
            bad = check_thresholds(evaluate, spec, view.amax, t, s)
            if bad:
                raise RuntimeError(f"threshold derivation failed at {node.name}: {bad} mismatches")
            base = node.name.replace("FloatBaseQuant", "").replace("FloatQuantBits", "").rstrip("_") + "_IntegerThreshold"
            t_t = add_init(model, base + "_T", t.astype(np.int32))
            s_t = add_init(model, base + "_S", s.astype(np.int32))
            new = helper.make_node("IntegerThreshold", [view.tensor, t_t, s_t], [node.output[0]], domain=DOMAIN,
                                   name=base)
            self.ranges.probes[node.output[0]] = (node.input[0], spec)
            _replace_producer(model, node.output[0], [new])
            changed = True
        return model, changed


def lower_integer_residuals(model: ModelWrapper, ranges: IntegerRanges) -> None:
    """The passes above to a fixed point (a pool's output feeds the next join, and so on)."""
    passes = (MaterializeResidualJoins(ranges), LowerRoundingShifts(ranges), LowerIntegerMaxPools(ranges),
              LowerGlobalSumPools(ranges))
    while True:
        changed = False
        for p in passes:
            _, c = p.apply(model)
            changed |= c
        if not changed:
            break
    ThresholdIntegerTensors(ranges).apply(model)


__all__ = ["IntegerRanges", "IntView", "LowerGlobalSumPools", "LowerIntegerMaxPools", "LowerRoundingShifts",
           "MaterializeResidualJoins",
           "ThresholdIntegerTensors", "affine_form", "int_view", "lower_integer_residuals"]
