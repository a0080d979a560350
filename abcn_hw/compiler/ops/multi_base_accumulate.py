"""MultiBaseAccumulate: combine the M*N popcount dots of a layer into one integer per channel.

Inputs:  D (B, M, N, O, *spatial) int32 dots;  C (M, N, O) int32 integer scale coefficients
Output:  acc (B, O, *spatial) int32, acc = sum_m sum_n C[m, n, o] * D[:, m, n, o]
On a dyadic scale grid C[m, n, o] = a[m, o] * b[n] with alpha = a 2**ea[o], beta = b 2**eb, and the
real-valued layer output is acc * 2**(ea[o] + eb); the lowered graph multiplies by that power of
two in float32 only for the final layer's logits.
"""
from __future__ import annotations

import numpy as np

from ._base import AbcnOp, FunctionBuilder


def accumulate(d: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Exact in int64; returned in C's dtype (int32 for exact layers, int64 for rounded ones)."""
    d = d.astype(np.int64)
    coef = c.astype(np.int64).reshape((1,) + c.shape + (1,) * (d.ndim - 4))
    return (d * coef).sum(axis=(1, 2)).astype(c.dtype)


def accumulate_body(b: FunctionBuilder) -> tuple[str, str]:
    """Returns (acc (B, O, L) in C's dtype, output shape (B, O, *spatial)). The M*N sum is a
    MatMul (exact for int32 and int64 in onnxruntime, unlike int64 ReduceSum)."""
    shp = b.op("Shape", "D")
    bdim = b.op("Slice", shp, b.const([0]), b.const([1]))
    o = b.op("Slice", shp, b.const([3]), b.const([4]))
    rest = b.op("Slice", shp, b.const([3]), b.const([100]))  # (O, *spatial)
    mn = b.op("Mul", b.op("Slice", shp, b.const([1]), b.const([2])), b.op("Slice", shp, b.const([2]), b.const([3])))
    d = b.op("Reshape", b.op("CastLike", "D", "C"), b.op("Concat", bdim, mn, o, b.const([-1]), axis=0))
    d = b.op("Transpose", d, perm=[0, 2, 3, 1])  # (B, O, L, M*N)
    c = b.op("Transpose", b.op("Reshape", "C", b.op("Concat", b.const([-1]), o, axis=0)), perm=[1, 0])  # (O, M*N)
    acc = b.op("MatMul", d, b.op("Unsqueeze", c, b.const([2])))  # (B, O, L, 1)
    return b.op("Squeeze", acc, b.const([3])), b.op("Concat", bdim, rest, axis=0)


class MultiBaseAccumulate(AbcnOp):
    ATTRS: dict = {}
    OUTPUT_DTYPE = np.int32  # int64 when C is int64 (rounded layers)

    def output_np_dtype(self, model) -> np.dtype:
        c = model.get_initializer(self.onnx_node.input[1])
        return np.dtype(c.dtype) if c is not None else np.dtype(self.OUTPUT_DTYPE)

    def output_shape(self, in_shapes):
        s = in_shapes[0]
        return (s[0],) + tuple(s[3:])

    def reference(self, d, c):
        return accumulate(d, c)

    @classmethod
    def build_function(cls):
        b = FunctionBuilder("MultiBaseAccumulate")
        acc, oshape = accumulate_body(b)
        b.op("Reshape", acc, oshape, out="Y")
        return b.function(["D", "C"], ["Y"], [])


__all__ = ["MultiBaseAccumulate", "accumulate", "accumulate_body"]
