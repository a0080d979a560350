"""FloatQuantBits: float tensor -> the L-1 thermometer bits of a k-bit integer quantizer.

Input:   X (B, C, *spatial) float32
Attrs:   scale (float), zero_point (float), bitwidth (int), signed (0/1), narrow (0/1)
Output:  (B, L-1, C, *spatial) uint8, bit j (j = 1..L-1) = (q >= qmin + j) with
         q = round_half_even(clip(X / scale + zero_point, qmin, qmax)) -- qonnx Quant's arithmetic.
With bipolar h_j = 2 bit_j - 1:  q = (qmin + qmax) / 2 + sum_j h_j / 2, so a symmetric (narrow)
quantizer is exactly N = L - 1 activation bases of scale beta = scale / 2 (thermometer code).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto

from ._base import AbcnOp, FunctionBuilder


def quant_range(bitwidth: int, signed: bool, narrow: bool) -> tuple[int, int]:
    if signed:
        return -(2 ** (bitwidth - 1)) + int(narrow), 2 ** (bitwidth - 1) - 1
    return 0, 2 ** bitwidth - 1 - int(narrow)


def quant_int(x: np.ndarray, scale: float, zp: float, lo: int, hi: int) -> np.ndarray:
    """qonnx Quant's integer code, op by op in float32."""
    y = np.asarray(x, np.float32) / np.float32(scale)
    y = y + np.float32(zp)
    y = np.where(y > hi, np.float32(hi), y)
    y = np.where(y < lo, np.float32(lo), y)
    return np.round(y)


def thermometer(q: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """(B, C, ...) integer codes -> (B, L-1, C, ...) bool."""
    return np.stack([q >= lo + j for j in range(1, hi - lo + 1)], axis=1)


class FloatQuantBits(AbcnOp):
    ATTRS = {"scale": ("f", True, 1.0), "zero_point": ("f", False, 0.0), "bitwidth": ("i", True, 2),
             "signed": ("i", False, 1), "narrow": ("i", False, 0)}
    OUTPUT_DTYPE = np.uint8

    def _range(self):
        return quant_range(self.attr("bitwidth"), bool(self.attr("signed")), bool(self.attr("narrow")))

    def output_shape(self, in_shapes):
        lo, hi = self._range()
        s = in_shapes[0]
        return (s[0], hi - lo) + tuple(s[1:])

    def reference(self, x):
        lo, hi = self._range()
        q = quant_int(x, self.attr("scale"), self.attr("zero_point"), lo, hi)
        return thermometer(q, lo, hi).astype(np.uint8)

    @classmethod
    def build_function(cls):
        b = FunctionBuilder("FloatQuantBits")

        f = TensorProto.FLOAT
        bw = b.op("Cast", b.attr_int("bitwidth"), to=f)
        sg = b.op("Cast", b.attr_int("signed"), to=f)
        nw = b.op("Cast", b.attr_int("narrow"), to=f)
        one, two = b.const(1.0, np.float32), b.const(2.0, np.float32)
        p = b.op("Pow", two, bw)
        h = b.op("Pow", two, b.op("Sub", bw, one))
        ns = b.op("Sub", one, sg)
        hi = b.op("Add", b.op("Mul", sg, b.op("Sub", h, one)), b.op("Mul", ns, b.op("Sub", b.op("Sub", p, one), nw)))
        lo = b.op("Mul", sg, b.op("Add", b.op("Neg", h), nw))
        y = b.op("Add", b.op("Div", "X", b.attr_float("scale")), b.attr_float("zero_point"))
        y = b.op("Where", b.op("Greater", y, hi), hi, y)
        y = b.op("Where", b.op("Less", y, lo), lo, y)
        q = b.op("Round", y)
        # levels lo + 1 .. hi, shaped (1, L-1, 1, ..., 1)
        lv = b.op("Add", lo, b.op("Cast", b.op("Range", b.const(1, np.int64),
                                               b.op("Cast", b.op("Add", b.op("Sub", hi, lo), one), to=TensorProto.INT64),
                                               b.const(1, np.int64)), to=f))
        rank = b.op("Size", b.op("Shape", "X"))
        ones = b.op("ConstantOfShape", b.op("Reshape", b.op("Sub", rank, b.const(1)), b.const([1])),
                    value=onnx.numpy_helper.from_array(np.array([1], np.int64)))
        lv = b.op("Reshape", lv, b.op("Concat", b.const([1, -1]), ones, axis=0))
        bits = b.op("GreaterOrEqual", b.op("Unsqueeze", q, b.const([1])), lv)
        b.op("Cast", bits, to=TensorProto.UINT8, out="Y")
        return b.function(["X"], ["Y"], list(cls.ATTRS), cls.attr_defaults())
