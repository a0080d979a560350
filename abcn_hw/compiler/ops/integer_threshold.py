"""IntegerThreshold: the next layer's activation bits of an integer tensor (a residual value).

Inputs:  X (B, C, *spatial) int32 (a ResidualAdd or GlobalSumPool output)
         T (N', C) int32 (int64 for layers under the rounding contract)
         S (C,) int32 direction: +1 -> bit = X >= T,  -1 -> bit = X <= T
Output:  bits (B, N', C, *spatial) uint8 in {0, 1}: the MultiBaseThreshold rule applied to an
         integer tensor instead of an accumulator of dots.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto

from ._base import AbcnOp, FunctionBuilder
from .multi_base_threshold import threshold


class IntegerThreshold(AbcnOp):
    ATTRS: dict = {}
    OUTPUT_DTYPE = np.uint8

    def output_shape(self, in_shapes):
        s = in_shapes[0]
        return (s[0], in_shapes[1][0]) + tuple(s[1:])

    def reference(self, x, t, s):
        return threshold(x, t, s)

    @classmethod
    def build_function(cls):
        b = FunctionBuilder("IntegerThreshold")
        shp = b.op("Shape", "X")
        bdim = b.op("Slice", shp, b.const([0]), b.const([1]))
        rest = b.op("Slice", shp, b.const([1]), b.const([100]))  # (C, *spatial)
        c = b.op("Slice", shp, b.const([1]), b.const([2]))
        x = b.op("Reshape", b.op("Cast", "X", to=TensorProto.INT64), b.op("Concat", bdim, c, b.const([-1]), axis=0))
        x = b.op("Unsqueeze", x, b.const([1]))  # (B, 1, C, L)
        t = b.op("Unsqueeze", b.op("Cast", "T", to=TensorProto.INT64), b.const([0, 3]))  # (1, N', C, 1)
        s = b.op("Reshape", "S", b.const([1, 1, -1, 1]))
        up = b.op("Greater", s, b.const(0, np.int32))
        ge = b.op("Cast", b.op("GreaterOrEqual", x, t), to=TensorProto.UINT8)
        le = b.op("Cast", b.op("LessOrEqual", x, t), to=TensorProto.UINT8)
        bits = b.op("Where", up, ge, le)  # (B, N', C, L)
        n = b.op("Slice", b.op("Shape", "T"), b.const([0]), b.const([1]))
        b.op("Reshape", bits, b.op("Concat", bdim, n, rest, axis=0), out="Y")
        return b.function(["X", "T", "S"], ["Y"], [])
