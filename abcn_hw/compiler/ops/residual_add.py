"""ResidualAdd: the exact integer join of a residual network (and the stem's fixed-point affine).

Inputs:  X_0 [, X_1] (B, C, *spatial) int32, same shape: MultiBaseAccumulate outputs (a block's
         second conv, the shortcut conv, the stem) or an earlier ResidualAdd's output (identity)
         S (k, C) int32, k = number of X inputs (1 or 2);  T (C,) int32
Attr:    shift (int >= 0, default 0)
Output:  Y (B, C, *spatial) int32,  Y[b, c, ...] = rshift(sum_i S[i, c] * X_i[b, c, ...] + T[c], shift)
         rshift(v, k) = round(v / 2**k), ties to even (k = 0: v): a join's requantisation onto a
         coarser power-of-two grid, the integer form of the export's exact float32
         ``Round(v * 2**-k)`` (docs/residual-networks.md)
The real value of Y is Y * 2**E[c] (the dyadic grid of the join, chosen by the lowering, which also
proves |sum| < 2**31 from the input ranges, so the int32 arithmetic never wraps).
The node's ``overload`` attribute-free field selects the function body for k = 1 or k = 2
(``k1`` / ``k2``): ONNX functions have a fixed number of inputs.
"""
from __future__ import annotations

import numpy as np

from ._base import AbcnOp, FunctionBuilder

#: function overloads, one per number of integer inputs
OVERLOADS = {1: "k1", 2: "k2"}


def shift_round_even(v: np.ndarray, k: int) -> np.ndarray:
    """round(v / 2**k) with ties to even, exactly on int64 (k = 0: v)."""
    v = np.asarray(v, np.int64)
    if k <= 0:
        return v
    q = v >> k  # floor
    rem = v - (q << k)  # 0 .. 2**k - 1
    half = np.int64(1) << (k - 1)
    return q + ((rem > half) | ((rem == half) & ((q & 1) == 1))).astype(np.int64)


def residual_add(xs: list[np.ndarray], s: np.ndarray, t: np.ndarray, shift: int = 0) -> np.ndarray:
    """Exact in int64, returned as int32 (the lowering bounds the sum below 2**31)."""
    rank = xs[0].ndim
    view = (1, -1) + (1,) * (rank - 2)
    y = np.asarray(t, np.int64).reshape(view)
    for i, x in enumerate(xs):
        y = y + np.asarray(s[i], np.int64).reshape(view) * np.asarray(x, np.int64)
    return shift_round_even(y, shift).astype(np.int32)


class ResidualAdd(AbcnOp):
    ATTRS = {"shift": ("i", False, 0)}
    OUTPUT_DTYPE = np.int32

    def output_shape(self, in_shapes):
        return tuple(in_shapes[0])

    def reference(self, *inputs):
        *xs, s, t = inputs
        if len(xs) != s.shape[0]:
            raise ValueError(f"ResidualAdd: {len(xs)} integer inputs but S has {s.shape[0]} rows")
        return residual_add(xs, s, t, int(self.attr("shift")))

    @classmethod
    def build_function(cls, k: int = 2):
        b = FunctionBuilder("ResidualAdd")
        xs = [f"X{i}" for i in range(k)]
        rank = b.op("Size", b.op("Shape", "X0"))
        tail = b.op("Sub", b.op("Reshape", rank, b.const([1])), b.const([2]))
        ones = b.op("Expand", b.const([1]), tail)  # rank - 2 ones: per-channel constants broadcast
        view = b.op("Concat", b.const([1, -1]), ones, axis=0)
        y = b.op("Reshape", "T", view)
        for i, x in enumerate(xs):
            si = b.op("Reshape", b.op("Gather", "S", b.const(i), axis=0), view)
            y = b.op("Add", y, b.op("Mul", si, x))
        # rshift with ties to even, exact in float64 (|y| < 2**31): y / 2**shift, Round, back to int32
        div = b.op("Cast", b.op("BitShift", b.const(1, np.uint64), b.op("Cast", b.attr_int("shift"), to=13),
                                direction="LEFT"), to=11)
        q = b.op("Round", b.op("Div", b.op("Cast", y, to=11), div))
        b.op("Cast", q, out="Y", to=6)
        fp = b.function(xs + ["S", "T"], ["Y"], list(cls.ATTRS), cls.attr_defaults())
        fp.overload = OVERLOADS[k]
        return fp

    @classmethod
    def build_functions(cls):
        return [cls.build_function(k) for k in OVERLOADS]
