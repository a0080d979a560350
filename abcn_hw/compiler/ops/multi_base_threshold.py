"""MultiBaseThreshold: the fused multi-base threshold unit of one layer.

Inputs:  D  (B, M, N, O, *spatial) int32 dots;  C (M, N, O) int32 scale coefficients
         T  (N', O) thresholds, same dtype as C (int32; int64 for rounded layers)
         S  (O,) int32 direction: +1 -> bit = acc >= T,  -1 -> bit = acc <= T
Output:  bits (B, N', O, *spatial) uint8 in {0, 1}, with acc as in MultiBaseAccumulate.
Thresholds are derived by evaluating the exported model's own float32 ops (scales, batch norm,
base shifts) on integer accumulator values, so the bits equal the export's BipolarQuant signs.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto

from ._base import AbcnOp, FunctionBuilder
from .multi_base_accumulate import accumulate, accumulate_body


def threshold(acc: np.ndarray, t: np.ndarray, s: np.ndarray) -> np.ndarray:
    """acc (B, O, *sp), t (N', O), s (O,) -> (B, N', O, *sp) uint8."""
    extra = (1,) * (acc.ndim - 2)
    a = acc.astype(np.int64)[:, None]
    tt = t.astype(np.int64).reshape((1,) + t.shape + extra)
    ss = s.reshape((1, 1, -1) + extra)
    return np.where(ss > 0, a >= tt, a <= tt).astype(np.uint8)


class MultiBaseThreshold(AbcnOp):
    ATTRS: dict = {}
    OUTPUT_DTYPE = np.uint8

    def output_shape(self, in_shapes):
        s = in_shapes[0]
        return (s[0], in_shapes[2][0]) + tuple(s[3:])

    def reference(self, d, c, t, s):
        return threshold(accumulate(d, c), t, s)

    @classmethod
    def build_function(cls):
        b = FunctionBuilder("MultiBaseThreshold")
        acc, oshape = accumulate_body(b)  # (B, O, L)
        acc = b.op("Unsqueeze", acc, b.const([1]))  # (B, 1, O, L)
        t = b.op("Unsqueeze", b.op("CastLike", "T", acc), b.const([0, 3]))  # (1, N', O, 1)
        s = b.op("Reshape", "S", b.const([1, 1, -1, 1]))
        up = b.op("Greater", s, b.const(0, np.int32))
        ge = b.op("Cast", b.op("GreaterOrEqual", acc, t), to=TensorProto.UINT8)
        le = b.op("Cast", b.op("LessOrEqual", acc, t), to=TensorProto.UINT8)
        bits = b.op("Where", up, ge, le)  # (B, N', O, L)
        tshape = b.op("Shape", "T")
        full = b.op("Concat", b.op("Slice", oshape, b.const([0]), b.const([1])),
                    b.op("Slice", tshape, b.const([0]), b.const([1])),
                    b.op("Slice", oshape, b.const([1]), b.const([100])), axis=0)
        b.op("Reshape", bits, full, out="Y")
        return b.function(["D", "C", "T", "S"], ["Y"], [])
