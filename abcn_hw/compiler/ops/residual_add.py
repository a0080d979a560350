"""ResidualAdd: the exact integer join of a residual network (and the stem's fixed-point affine).

Inputs:  X_0 [, X_1] (B, C, *spatial) int32, same shape: MultiBaseAccumulate outputs (a block's
         second conv, the shortcut conv, the stem) or an earlier ResidualAdd's output (identity)
         S (k, C) int32, k = number of X inputs (1 or 2);  T (C,) int32
Output:  Y (B, C, *spatial) int32,  Y[b, c, ...] = sum_i S[i, c] * X_i[b, c, ...] + T[c]
The real value of Y is Y * 2**E[c] (the common dyadic grid of the join, chosen by the lowering,
which also proves |Y| < 2**31 from the input ranges, so the int32 arithmetic never wraps).
The node's ``overload`` attribute-free field selects the function body for k = 1 or k = 2
(``k1`` / ``k2``): ONNX functions have a fixed number of inputs.
"""
from __future__ import annotations

import numpy as np

from ._base import AbcnOp, FunctionBuilder

#: function overloads, one per number of integer inputs
OVERLOADS = {1: "k1", 2: "k2"}


def residual_add(xs: list[np.ndarray], s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Exact in int64, returned as int32 (the lowering bounds |Y| < 2**31)."""
    rank = xs[0].ndim
    view = (1, -1) + (1,) * (rank - 2)
    y = np.asarray(t, np.int64).reshape(view)
    for i, x in enumerate(xs):
        y = y + np.asarray(s[i], np.int64).reshape(view) * np.asarray(x, np.int64)
    return y.astype(np.int32)


class ResidualAdd(AbcnOp):
    ATTRS: dict = {}
    OUTPUT_DTYPE = np.int32

    def output_shape(self, in_shapes):
        return tuple(in_shapes[0])

    def reference(self, *inputs):
        *xs, s, t = inputs
        if len(xs) != s.shape[0]:
            raise ValueError(f"ResidualAdd: {len(xs)} integer inputs but S has {s.shape[0]} rows")
        return residual_add(xs, s, t)

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
        b.op("Identity", y, out="Y")
        fp = b.function(xs + ["S", "T"], ["Y"], [])
        fp.overload = OVERLOADS[k]
        return fp

    @classmethod
    def build_functions(cls):
        return [cls.build_function(k) for k in OVERLOADS]
