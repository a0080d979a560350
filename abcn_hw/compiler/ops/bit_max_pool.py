"""BitMaxPool: max pooling on activation bits = logical OR over each window.

Input:   X (B, N, C, H, W) uint8 {0,1};  Attrs: kernel_shape, strides, pads (padding bit 0)
Output:  (B, N, C, Ho, Wo) uint8.  Exact because every activation H is a non-decreasing step, so
H(max y) = max H(y); a negative batch-norm scale is already inside the threshold direction.
"""
from __future__ import annotations

import numpy as np

from ._base import AbcnOp, FunctionBuilder, im2col
from . import _bodies


class BitMaxPool(AbcnOp):
    ATTRS = {"kernel_shape": ("ints", True, []), "strides": ("ints", False, [1, 1]),
             "pads": ("ints", False, [0, 0, 0, 0])}
    OUTPUT_DTYPE = np.uint8

    def output_shape(self, in_shapes):
        b, n, c, h, w = in_shapes[0]
        kh, kw = self.attr("kernel_shape")
        sh, sw = self.attr("strides")
        t, l, bo, r = self.attr("pads")
        return (b, n, c, (h + t + bo - kh) // sh + 1, (w + l + r - kw) // sw + 1)

    def reference(self, x):
        b, n, c = x.shape[:3]
        kh, kw = self.attr("kernel_shape")
        patches, ho, wo = im2col(x.reshape((b * n * c, 1) + x.shape[3:]), (kh, kw), self.attr("strides"),
                                 self.attr("pads"), 0)
        return patches.max(axis=-1).reshape(b, n, c, ho, wo)

    @classmethod
    def build_function(cls):
        b = FunctionBuilder("BitMaxPool")
        xp = _bodies.pad_spatial(b, "X", 3, b.const(0, np.uint8))
        bb, n, c, hp, wp = _bodies.shape_dims(b, xp, 5)
        patches, k, ho, wo = _bodies.im2col(b, xp, [bb, n, c], b.const([1]), hp, wp)  # (B,N,C,L,kh*kw)
        pooled = b.op("ReduceMax", patches, b.const([-1]), keepdims=0)
        b.op("Reshape", pooled, b.op("Concat", bb, n, c, ho, wo, axis=0), out="Y")
        return b.function(["X"], ["Y"], list(cls.ATTRS), cls.attr_defaults())
