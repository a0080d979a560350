"""XnorPopcountMatMul: binary matrix product of N activation bit-planes with M packed weight bases.

Inputs:  X (B, N, K) uint8 in {0, 1} (bit 1 = +1)
         W (M, O, Kb) uint8, packed weight bits (see ``pack_bits``)
Output:  dots (B, M, N, O) int32, dot = 2*popcount(XNOR(x, w)) - K
"""
from __future__ import annotations

import numpy as np

from ._base import AbcnOp, FunctionBuilder, xnor_popcount_dots
from . import _bodies


class XnorPopcountMatMul(AbcnOp):
    ATTRS: dict = {}
    OUTPUT_DTYPE = np.int32

    def output_shape(self, in_shapes):
        b, n, _ = in_shapes[0]
        m, o, _ = in_shapes[1]
        return (b, m, n, o)

    def reference(self, x, w):
        dots = xnor_popcount_dots(x[:, :, None, :], w, x.shape[-1])
        return dots[..., 0]

    @classmethod
    def build_function(cls):
        b = FunctionBuilder("XnorPopcountMatMul")
        bb, n, k = _bodies.shape_dims(b, "X", 3)
        x = b.op("Unsqueeze", "X", b.const([2]))  # (B, N, 1, K)
        packed = _bodies.pack_words(b, x, [bb, n, b.const([1])], k)
        dots = _bodies.xnor_popcount(b, packed, "W", k)  # (B, M, N, O, 1)
        b.op("Squeeze", dots, b.const([4]), out="Y")
        return b.function(["X", "W"], ["Y"], [])
