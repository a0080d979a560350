"""IntegerInputConv: first layer, integer input x binary weights (adds and subtracts only).

Inputs:  X (B, C, H, W) int32 (the integer code of the quantized input, e.g. 0..255)
         W (M, O, Kb) uint8, packed weight bits, K = C*kh*kw in (c, i, j) order
Attrs:   kernel_shape, strides, pads [top, left, bottom, right] (zero padding of the integer input)
Output:  dots (B, M, 1, O, Ho, Wo) int32, dot = sum_k x_k * (+1 if bit else -1)
         (a single activation "base" axis of size 1 so MultiBaseThreshold treats all layers alike)
"""
from __future__ import annotations

import numpy as np

from ._base import AbcnOp, FunctionBuilder, im2col, unpack_bits
from . import _bodies


def integer_dots(patches: np.ndarray, w_packed: np.ndarray) -> np.ndarray:
    """patches (B, L, K) int -> (B, M, O, L) int32 = 2 * sum_{bit=1} x - sum x (no multiplies)."""
    k = patches.shape[-1]
    bits = unpack_bits(w_packed, k).astype(np.int64)  # (M, O, K)
    p = patches.astype(np.int64)
    total = p.sum(-1)  # (B, L)
    ones = np.einsum("blk,mok->bmol", p, bits)  # sum of inputs where the weight bit is 1
    return (2 * ones - total[:, None, None, :]).astype(np.int32)


class IntegerInputConv(AbcnOp):
    ATTRS = {"kernel_shape": ("ints", True, []), "strides": ("ints", False, [1, 1]),
             "pads": ("ints", False, [0, 0, 0, 0])}
    OUTPUT_DTYPE = np.int32

    def output_shape(self, in_shapes):
        b, c, h, w = in_shapes[0]
        m, o, _ = in_shapes[1]
        kh, kw = self.attr("kernel_shape")
        sh, sw = self.attr("strides")
        t, l, bo, r = self.attr("pads")
        return (b, m, 1, o, (h + t + bo - kh) // sh + 1, (w + l + r - kw) // sw + 1)

    def reference(self, x, w):
        patches, ho, wo = im2col(x, self.attr("kernel_shape"), self.attr("strides"), self.attr("pads"), 0)
        d = integer_dots(patches, w)  # (B, M, O, L)
        return d.reshape(d.shape[:3] + (ho, wo))[:, :, None]

    @classmethod
    def build_function(cls):
        b = FunctionBuilder("IntegerInputConv")
        xp = _bodies.pad_spatial(b, "X", 2, b.const(0, np.int32))
        bb, c, hp, wp = _bodies.shape_dims(b, xp, 4)
        patches, k, ho, wo = _bodies.im2col(b, xp, [bb], c, hp, wp)  # (B, L, K)
        w = _bodies.unpack_pm1(b, "W", k)  # (M, O, K)
        wshape = b.op("Shape", "W")
        m, o = b.item(wshape, 0), b.item(wshape, 1)
        wt = b.op("Transpose", b.op("Reshape", w, b.op("Concat", b.op("Mul", m, o), k, axis=0)), perm=[1, 0])
        y = b.op("MatMul", patches, wt)  # (B, L, M*O)
        y = b.op("Reshape", y, b.op("Concat", bb, b.const([-1]), m, o, axis=0))
        y = b.op("Transpose", y, perm=[0, 2, 3, 1])  # (B, M, O, L)
        b.op("Reshape", y, b.op("Concat", bb, m, b.const([1]), o, ho, wo, axis=0), out="Y")
        return b.function(["X", "W"], ["Y"], list(cls.ATTRS), cls.attr_defaults())
