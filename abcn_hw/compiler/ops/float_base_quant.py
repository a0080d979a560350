"""FloatBaseQuant: float tensor -> N activation bit-planes (the input binarizer).

Input:   X (B, C, *spatial) float32;  Attr: shifts [c_0 .. c_{N-1}] (float32)
Output:  (B, N, C, *spatial) uint8, bit n = (X + c_n >= 0)  (float32 add, as the export's Add)
Used for a binarized graph input (e.g. BNN-PYNQ's bipolar input) and as the intermediate form
that AbsorbThresholds later folds into MultiBaseThreshold; a layer whose float chain cannot be
folded (e.g. a residual join) keeps it, so the graph stays exact.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, numpy_helper

from ._base import AbcnOp, FunctionBuilder


class FloatBaseQuant(AbcnOp):
    ATTRS = {"shifts": ("floats", True, [])}
    OUTPUT_DTYPE = np.uint8

    def output_shape(self, in_shapes):
        s = in_shapes[0]
        return (s[0], len(self.attr("shifts"))) + tuple(s[1:])

    def reference(self, x):
        c = np.asarray(self.attr("shifts"), np.float32)
        x = np.asarray(x, np.float32)
        return np.stack([(x + ci) >= 0 for ci in c], axis=1).astype(np.uint8)

    @classmethod
    def build_function(cls):
        b = FunctionBuilder("FloatBaseQuant")
        c = b.attr_floats("shifts")
        rank = b.op("Size", b.op("Shape", "X"))
        ones = b.op("ConstantOfShape", b.op("Reshape", b.op("Sub", rank, b.const(1)), b.const([1])),
                    value=numpy_helper.from_array(np.array([1], np.int64)))
        cshape = b.op("Concat", b.const([1, -1]), ones, axis=0)
        c = b.op("Reshape", c, cshape)
        x = b.op("Unsqueeze", "X", b.const([1]))
        bits = b.op("GreaterOrEqual", b.op("Add", x, c), b.const(0.0, np.float32))
        b.op("Cast", bits, to=TensorProto.UINT8, out="Y")
        return b.function(["X"], ["Y"], list(cls.ATTRS), cls.attr_defaults())
