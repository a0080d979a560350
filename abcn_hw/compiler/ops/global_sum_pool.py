"""GlobalSumPool: the integer sum of a residual value over its spatial positions.

Input:   X (B, C, H, W) int32
Output:  Y (B, C) int32 = sum over H, W (exact: the lowering proves |Y| < 2**31).
A global average pool is this sum; its 1/(H*W) is folded into the next layer's thresholds.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto

from ._base import AbcnOp, FunctionBuilder


class GlobalSumPool(AbcnOp):
    ATTRS: dict = {}
    OUTPUT_DTYPE = np.int32

    def output_shape(self, in_shapes):
        s = in_shapes[0]
        return (s[0], s[1])

    def reference(self, x):
        return np.asarray(x, np.int64).sum(axis=(2, 3)).astype(np.int32)

    @classmethod
    def build_function(cls):
        # onnxruntime's ReduceSum on int32 is exact (wrapping only past 2**31, which the lowering
        # excludes); int64 ReduceSum is not (docs/lowering.md), so the sum stays in int32
        b = FunctionBuilder("GlobalSumPool")
        y = b.op("ReduceSum", b.op("Cast", "X", to=TensorProto.INT32), b.const([2, 3]), keepdims=0)
        b.op("Identity", y, out="Y")
        return b.function(["X"], ["Y"], [])
