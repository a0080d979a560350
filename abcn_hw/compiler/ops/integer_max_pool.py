"""IntegerMaxPool: max pooling of an integer tensor (resnet18's stem pool on the residual value).

Input:   X (B, C, H, W) int32;  Attrs: kernel_shape, strides, pads [top, left, bottom, right]
Output:  (B, C, Ho, Wo) int32, Ho = (H + top + bottom - kh) // sh + 1 (as ONNX MaxPool, floor);
         padding never wins (it acts as -infinity: the smallest int32).
Exact for the max pool of the float value Y * 2**E[c] (a positive scale commutes with max).
"""
from __future__ import annotations

import numpy as np

from ._base import AbcnOp, FunctionBuilder, im2col
from . import _bodies

PAD = np.iinfo(np.int32).min


class IntegerMaxPool(AbcnOp):
    ATTRS = {"kernel_shape": ("ints", True, []), "strides": ("ints", False, [1, 1]),
             "pads": ("ints", False, [0, 0, 0, 0])}
    OUTPUT_DTYPE = np.int32

    def output_shape(self, in_shapes):
        b, c, h, w = in_shapes[0]
        kh, kw = self.attr("kernel_shape")
        sh, sw = self.attr("strides")
        t, l, bo, r = self.attr("pads")
        return (b, c, (h + t + bo - kh) // sh + 1, (w + l + r - kw) // sw + 1)

    def reference(self, x):
        b, c = x.shape[:2]
        kh, kw = self.attr("kernel_shape")
        patches, ho, wo = im2col(np.asarray(x, np.int32).reshape((b * c, 1) + x.shape[2:]), (kh, kw),
                                 self.attr("strides"), self.attr("pads"), PAD)
        return patches.max(axis=-1).reshape(b, c, ho, wo)

    @classmethod
    def build_function(cls):
        b = FunctionBuilder("IntegerMaxPool")
        xp = _bodies.pad_spatial(b, "X", 2, b.const(PAD, np.int32))
        bb, c, hp, wp = _bodies.shape_dims(b, xp, 4)
        patches, _, ho, wo = _bodies.im2col(b, xp, [bb, c], b.const([1]), hp, wp)  # (B, C, L, kh*kw)
        pooled = b.op("ReduceMax", patches, b.const([-1]), keepdims=0)
        b.op("Reshape", pooled, b.op("Concat", bb, c, ho, wo, axis=0), out="Y")
        return b.function(["X"], ["Y"], list(cls.ATTRS), cls.attr_defaults())
