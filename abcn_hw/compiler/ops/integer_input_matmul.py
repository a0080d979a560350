"""IntegerInputMatMul: first fully connected layer, integer input x binary weights.

Inputs:  X (B, K) int32;  W (M, O, Kb) uint8 packed weight bits
Output:  dots (B, M, 1, O) int32, dot = sum_k x_k * (+1 if bit else -1)
"""
from __future__ import annotations

import numpy as np

from ._base import AbcnOp, FunctionBuilder
from . import _bodies
from .integer_input_conv import integer_dots


class IntegerInputMatMul(AbcnOp):
    ATTRS: dict = {}
    OUTPUT_DTYPE = np.int32

    def output_shape(self, in_shapes):
        m, o, _ = in_shapes[1]
        return (in_shapes[0][0], m, 1, o)

    def reference(self, x, w):
        return integer_dots(x[:, None, :], w)[:, :, None, :, 0]

    @classmethod
    def build_function(cls):
        b = FunctionBuilder("IntegerInputMatMul")
        bb, k = _bodies.shape_dims(b, "X", 2)
        w = _bodies.unpack_pm1(b, "W", k)
        wshape = b.op("Shape", "W")
        m, o = b.item(wshape, 0), b.item(wshape, 1)
        wt = b.op("Transpose", b.op("Reshape", w, b.op("Concat", b.op("Mul", m, o), k, axis=0)), perm=[1, 0])
        y = b.op("MatMul", "X", wt)  # (B, M*O)
        b.op("Reshape", y, b.op("Concat", bb, m, b.const([1]), o, axis=0), out="Y")
        return b.function(["X", "W"], ["Y"], [])
