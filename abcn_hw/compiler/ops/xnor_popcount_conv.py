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
from onnx import TensorProto, numpy_helper

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
        b = FunctionBuilder("XnorPopcountConv")
        xp = _bodies.pad_spatial(b, "X", 3, b.const(0, np.uint8))
        bb, n, c, hp, wp = _bodies.shape_dims(b, xp, 5)
        patches, k, ho, wo = _bodies.im2col(b, xp, [bb, n], c, hp, wp)  # (B, N, L, K)
        packed = _bodies.pack_words(b, patches, [bb, n, b.op("Mul", ho, wo)], k)
        dots = _bodies.xnor_popcount(b, packed, "W", k)  # (B, M, N, O, L)
        wshape = b.op("Shape", "W")
        m, o = b.item(wshape, 0), b.item(wshape, 1)
        dots = b.op("Add", dots, _zero_pad_correction(b, c, k, m, o))
        b.op("Reshape", dots, b.op("Concat", bb, m, n, o, ho, wo, axis=0), out="Y")
        return b.function(["X", "W"], ["Y"], list(cls.ATTRS), cls.attr_defaults())


def _zero_pad_correction(b: FunctionBuilder, c: str, k: str, m: str, o: str) -> str:
    """(1, M, 1, O, L) int32: ``zero_pad_correction`` times the attribute zero_pad (0 or 1).
    The taps on the padding come from an all-ones image padded with 0; the per-tap weight sums
    (over channels) times those taps, an exact int32 MatMul."""
    hw = b.op("Slice", b.op("Shape", "X"), b.const([3]), b.const([5]))
    ones = b.op("ConstantOfShape", b.op("Concat", b.const([1, 1]), hw, axis=0),
                value=numpy_helper.from_array(np.ones(1, np.int32)))
    vp = _bodies.pad_spatial(b, ones, 2, b.const(0, np.int32))
    one = b.const([1])
    _, _, hp, wp = _bodies.shape_dims(b, vp, 4)
    taps, t, _, _ = _bodies.im2col(b, vp, [one], one, hp, wp)  # (1, L, kh*kw), 1 inside the image
    on_pad = b.op("Sub", b.const(1, np.int32), b.op("Reshape", taps, b.op("Concat", b.const([-1]), t, axis=0)))
    w = _bodies.unpack_pm1(b, "W", k)  # (M, O, K) in (c, i, j) order
    wsum = b.op("ReduceSum", b.op("Reshape", w, b.op("Concat", m, o, c, t, axis=0)), b.const([2]), keepdims=0)
    corr = b.op("MatMul", wsum, b.op("Transpose", on_pad, perm=[1, 0]))  # (M, O, L)
    corr = b.op("Mul", corr, b.op("Cast", b.attr_int("zero_pad"), to=TensorProto.INT32))
    return b.op("Unsqueeze", corr, b.const([0, 2]))
