"""XnorPopcountConv: binary convolution of N activation bit-planes with M packed weight bases.

Inputs:  X (B, N, C, H, W) uint8 in {0, 1}  (bit 1 = +1, bit 0 = -1; N activation bases)
         W (M, O, Kb) uint8, packed weight bits (see ``pack_bits``), K = C*kh*kw in (c, i, j) order
Attrs:   kernel_shape [kh, kw], strides [sh, sw], pads [top, left, bottom, right],
         zero_pad 0: padded taps are bit 0 (= -1, the ABC padding -sum(beta));
                  1: padded taps are 0 (PyTorch / Brevitas zero padding)
Output:  dots (B, M, N, O, Ho, Wo) int32, dot = 2*popcount(XNOR(x, w)) - K  (= sum of +-1 products)
         with zero_pad = 1: the sum over the window taps inside the image only, computed as the
         bit-0-padded dot plus the weight-only correction ``zero_pad_correction`` (M, O, Ho, Wo)
"""
from __future__ import annotations

import numpy as np
from onnx import AttributeProto, TensorProto

from ._base import AbcnOp, FunctionBuilder, im2col, unpack_bits, xnor_popcount_dots, zero_pad_correction
from . import _bodies


class XnorPopcountConv(AbcnOp):
    ATTRS = {"kernel_shape": ("ints", True, []), "strides": ("ints", False, [1, 1]),
             "pads": ("ints", False, [0, 0, 0, 0]), "zero_pad": ("i", False, 0)}
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
        dots = dots.reshape(dots.shape[:4] + (ho, wo))
        if self.attr("zero_pad"):
            corr = zero_pad_correction(unpack_bits(w, k), self.attr("kernel_shape"), self.attr("strides"),
                                       self.attr("pads"), x.shape[-2], x.shape[-1])
            dots = dots + corr[None, :, None]
        return dots

    @classmethod
    def build_function(cls):
        """An independent route to the same numbers: the bits as int8-range codes (bit 1 -> +1,
        bit 0 -> -1, each padded tap written explicitly as -1 or, with zero_pad, as 0) in an exact
        integer convolution (ConvInteger, int32 sums of |values| <= K) of the N planes with the M*O
        unpacked +-1 filters; no packing, no popcount, no border correction."""
        b = FunctionBuilder("XnorPopcountConv")
        one = b.const(1, np.uint8)
        # uint8 codes with zero point 1: bit 0 -> 0 (-1), bit 1 -> 2 (+1), pad -> zero_pad (-1 or 0)
        pad_code = b.op("Cast", b.attr_int("zero_pad"), to=TensorProto.UINT8)
        xp = _bodies.pad_spatial(b, _bodies.signed_codes(b, "X"), 3, pad_code)
        bb, n, c, hp, wp = _bodies.shape_dims(b, xp, 5)
        planes = b.op("Reshape", xp, b.op("Concat", b.const([-1]), c, hp, wp, axis=0))  # (B*N, C, Hp, Wp)
        ks = b.attr_ints("kernel_shape")
        k = b.op("Mul", c, b.op("ReduceProd", ks, keepdims=1))
        wshape = b.op("Shape", "W")
        m, o = b.item(wshape, 0), b.item(wshape, 1)
        w = _bodies.signed_codes(b, _bodies.unpack_bits01(b, "W", k))  # (M, O, K), K in (c, i, j) order
        w = b.op("Reshape", w, b.op("Concat", b.op("Mul", m, o), c, ks, axis=0))  # (M*O, C, kh, kw)
        y = _bodies.with_attr_refs(b, b.op("ConvInteger", planes, w, one, one), strides=AttributeProto.INTS)
        ho_wo = b.op("Slice", b.op("Shape", y), b.const([2]), b.const([4]))
        y = b.op("Reshape", y, b.op("Concat", bb, n, m, o, ho_wo, axis=0))  # (B, N, M, O, Ho, Wo)
        b.op("Transpose", y, perm=[0, 2, 1, 3, 4, 5], out="Y")
        return b.function(["X", "W"], ["Y"], list(cls.ATTRS), cls.attr_defaults())
