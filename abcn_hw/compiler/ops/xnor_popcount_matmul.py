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
        """Exact integer matrix product (MatMulInteger, int32) of the bits as codes {0, 2} with
        zero point 1 (= -1/+1) and the unpacked weights in the same form; no popcount."""
        b = FunctionBuilder("XnorPopcountMatMul")
        one = b.const(1, np.uint8)
        bb, n, k = _bodies.shape_dims(b, "X", 3)
        x = b.op("Reshape", _bodies.signed_codes(b, "X"), b.op("Concat", b.const([-1]), k, axis=0))  # (B*N, K)
        wshape = b.op("Shape", "W")
        m, o = b.item(wshape, 0), b.item(wshape, 1)
        w = _bodies.signed_codes(b, _bodies.unpack_bits01(b, "W", k))  # (M, O, K)
        w = b.op("Transpose", b.op("Reshape", w, b.op("Concat", b.op("Mul", m, o), k, axis=0)), perm=[1, 0])
        y = b.op("MatMulInteger", x, w, one, one)  # (B*N, M*O)
        y = b.op("Reshape", y, b.op("Concat", bb, n, m, o, axis=0))
        b.op("Transpose", y, perm=[0, 2, 1, 3], out="Y")
        return b.function(["X", "W"], ["Y"], [])
