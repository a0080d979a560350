"""XnorPopcountConv: binary convolution of N activation bit-planes with M packed weight bases.

Inputs:  X (B, N, C, H, W) uint8 in {0, 1}  (bit 1 = +1, bit 0 = -1; N activation bases)
         W (M, O, Kb) uint8, packed weight bits (see ``pack_bits``), K = C*kh*kw in (c, i, j) order
Attrs:   kernel_shape [kh, kw], strides [sh, sw], pads [top, left, bottom, right] (bit 0 = -1)
Output:  dots (B, M, N, O, Ho, Wo) int32, dot = 2*popcount(XNOR(x, w)) - K  (= sum of +-1 products)
"""
from __future__ import annotations

import numpy as np

from ._base import AbcnOp, FunctionBuilder, im2col, xnor_popcount_dots
from . import _bodies


class XnorPopcountConv(AbcnOp):
    ATTRS = {"kernel_shape": ("ints", True, []), "strides": ("ints", False, [1, 1]),
             "pads": ("ints", False, [0, 0, 0, 0])}
    OUTPUT_DTYPE = np.int32

    def output_shape(self, in_shapes):
        b, n, c, h, w = in_shapes[0]
        m, o, _ = in_shapes[1]
        kh, kw = self.attr("kernel_shape")
        sh, sw = self.attr("strides")
        t, l, bo, r = self.attr("pads")
        return (b, m, n, o, (h + t + bo - kh) // sh + 1, (w + l + r - kw) // sw + 1)

    def reference(self, x, w):
        patches, ho, wo = im2col(x, self.attr("kernel_shape"), self.attr("strides"), self.attr("pads"), 0)
        k = patches.shape[-1]
        dots = xnor_popcount_dots(patches, w, k)  # (B, M, N, O, L)
        return dots.reshape(dots.shape[:4] + (ho, wo))

    @classmethod
    def build_function(cls):
        b = FunctionBuilder("XnorPopcountConv")
        xp = _bodies.pad_spatial(b, "X", 3, b.const(0, np.uint8))
        bb, n, c, hp, wp = _bodies.shape_dims(b, xp, 5)
        patches, k, ho, wo = _bodies.im2col(b, xp, [bb, n], c, hp, wp)  # (B, N, L, K)
        packed = _bodies.pack_words(b, patches, [bb, n, b.op("Mul", ho, wo)], k)
        dots = _bodies.xnor_popcount(b, packed, "W", k)  # (B, M, N, O, L)
        wshape = b.op("Shape", "W")
        m, o = b.item(wshape, 0), b.item(wshape, 1)
        b.op("Reshape", dots, b.op("Concat", bb, m, n, o, ho, wo, axis=0), out="Y")
        return b.function(["X", "W"], ["Y"], list(cls.ATTRS), cls.attr_defaults())
