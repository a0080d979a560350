"""Shared machinery of the abcn_hw custom ops.

Every op is a qonnx :class:`CustomOp` (numpy reference in ``execute_node``, used by qonnx's
executor) and carries an ONNX model-local ``FunctionProto`` of the same domain and name whose
body uses only standard ONNX ops, so plain onnxruntime runs a lowered graph.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import onnx
from onnx import FunctionProto, NodeProto, helper, numpy_helper
from qonnx.core.datatype import DataType
from qonnx.custom_op.base import CustomOp

DOMAIN = "abcn_hw.compiler.ops"
#: standard-domain opset the function bodies are written against (BitwiseXor, Pad axes: >= 18)
FUNCTION_OPSET = 20
WORD_BITS = 64

_NP_TO_QONNX = {np.dtype(np.uint8): "BINARY", np.dtype(np.int32): "INT32", np.dtype(np.int64): "INT64",
                np.dtype(np.float32): "FLOAT32"}


class FunctionBuilder:
    """Tiny helper to write function bodies: ``b.op("Add", a, c)`` returns the output name."""

    def __init__(self, name: str):
        self.name = name
        self.nodes: list[NodeProto] = []
        self._n = 0

    def _fresh(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs: Any) -> str:
        o = out or self._fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [o], **attrs))
        return o

    def const(self, value: np.ndarray | int | float | Sequence, dtype=np.int64) -> str:
        arr = np.asarray(value, dtype=dtype)
        o = self._fresh("c")
        self.nodes.append(helper.make_node("Constant", [], [o], value=numpy_helper.from_array(arr, o)))
        return o

    def attr_ints(self, attr: str) -> str:
        """A 1-D int64 tensor holding the node attribute ``attr`` (a reference, resolved per node)."""
        o = self._fresh(attr)
        node = helper.make_node("Constant", [], [o])
        a = onnx.AttributeProto()
        a.name = "value_ints"
        a.ref_attr_name = attr
        a.type = onnx.AttributeProto.INTS
        node.attribute.append(a)
        self.nodes.append(node)
        return o

    def attr_floats(self, attr: str) -> str:
        return self._attr_ref(attr, "value_floats", onnx.AttributeProto.FLOATS)

    def attr_int(self, attr: str) -> str:
        """A scalar int64 tensor holding the int attribute ``attr``."""
        return self._attr_ref(attr, "value_int", onnx.AttributeProto.INT)

    def attr_float(self, attr: str) -> str:
        return self._attr_ref(attr, "value_float", onnx.AttributeProto.FLOAT)

    def _attr_ref(self, attr: str, field: str, kind: int) -> str:
        o = self._fresh(attr)
        node = helper.make_node("Constant", [], [o])
        a = onnx.AttributeProto()
        a.name, a.ref_attr_name, a.type = field, attr, kind
        node.attribute.append(a)
        self.nodes.append(node)
        return o

    def item(self, vec: str, i: int) -> str:
        """Element ``i`` of a 1-D int64 tensor, as a 1-element 1-D tensor."""
        return self.op("Slice", vec, self.const([i]), self.const([i + 1]))

    def function(self, inputs: list[str], outputs: list[str], attributes: list[str],
                 defaults: dict[str, Any] | None = None) -> FunctionProto:
        """``attributes`` without a default; ``defaults`` maps optional attributes to their value."""
        protos = [helper.make_attribute(k, v) for k, v in (defaults or {}).items()]
        required = [a for a in attributes if a not in (defaults or {})]
        return helper.make_function(DOMAIN, self.name, inputs, outputs, self.nodes,
                                    [helper.make_opsetid("", FUNCTION_OPSET)], attributes=required,
                                    attribute_protos=protos)


# -- shared numeric helpers (numpy reference) ----------------------------------------------------

def padded_bits(k: int) -> int:
    """K rounded up to a whole number of 64-bit words."""
    return -(-k // WORD_BITS) * WORD_BITS


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack a {0,1} array along its last axis: zero-pad to a multiple of 64 bits, then 8 bits per
    byte, first bit in the most significant position (``np.packbits`` order). Returns uint8."""
    bits = np.asarray(bits, dtype=np.uint8)
    k = bits.shape[-1]
    pad = padded_bits(k) - k
    if pad:
        bits = np.concatenate([bits, np.zeros(bits.shape[:-1] + (pad,), np.uint8)], axis=-1)
    return np.packbits(bits, axis=-1)


def unpack_bits(packed: np.ndarray, k: int) -> np.ndarray:
    return np.unpackbits(np.asarray(packed, np.uint8), axis=-1)[..., :k]


def as_words(packed: np.ndarray) -> np.ndarray:
    """View packed bytes as uint64 words (big-endian, so word bit 63 is the first bit)."""
    packed = np.ascontiguousarray(packed)
    return packed.view(">u8").astype(np.uint64)


def im2col(x: np.ndarray, kernel: Sequence[int], strides: Sequence[int], pads: Sequence[int],
           pad_value: int = 0) -> tuple[np.ndarray, int, int]:
    """x (..., C, H, W) -> patches (..., L, C*kh*kw) in (c, i, j) order, L = Ho*Wo row-major."""
    t, l, b, r = pads
    widths = [(0, 0)] * (x.ndim - 2) + [(t, b), (l, r)]
    xp = np.pad(x, widths, constant_values=pad_value)
    kh, kw = kernel
    sh, sw = strides
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(-2, -1))  # (..., C, Hv, Wv, kh, kw)
    win = win[..., ::sh, ::sw, :, :]
    ho, wo = win.shape[-4], win.shape[-3]
    c = x.shape[-3]
    win = np.moveaxis(win, -5, -3)  # (..., Ho, Wo, C, kh, kw)
    return win.reshape(x.shape[:-3] + (ho * wo, c * kh * kw)), ho, wo


def zero_pad_correction(w_bits: np.ndarray, kernel: Sequence[int], strides: Sequence[int],
                        pads: Sequence[int], h: int, w: int) -> np.ndarray:
    """Correction that turns a conv with bit-0 (-1) padding into a zero-padded one.

    ``w_bits`` (M, O, K) {0,1} with K = C*kh*kw in (c, i, j) order; input (H, W) = (h, w); pads
    [top, left, bottom, right]. A window tap on the padding contributes -w (the pad bit 0 is -1) to
    the bit-padded dot, and 0 to the zero-padded one, so
        dot_zero[m, n, o, y, x] = dot_bit0[m, n, o, y, x] + corr[m, o, y, x],
        corr[m, o, y, x] = sum over the taps (c, i, j) of window (y, x) on the padding of w[m, o, k] (+-1).
    Independent of the activation (every base n gets the same corr). Returns (M, O, Ho, Wo) int32,
    zero where the window lies inside the image."""
    w_bits = np.asarray(w_bits, np.uint8)
    m, o, k = w_bits.shape
    kh, kw = kernel
    c = k // (kh * kw)
    valid = np.ones((1, h, w), np.int64)
    taps, ho, wo = im2col(valid, kernel, strides, pads, 0)  # (L, kh*kw): 1 inside the image
    on_pad = 1 - taps  # (L, kh*kw)
    wsum = (2 * w_bits.astype(np.int64) - 1).reshape(m, o, c, kh * kw).sum(axis=2)  # (M, O, kh*kw)
    corr = np.einsum("mot,lt->mol", wsum, on_pad)
    return corr.reshape(m, o, ho, wo).astype(np.int32)


def xnor_popcount_dots(x_bits: np.ndarray, w_packed: np.ndarray, k: int) -> np.ndarray:
    """x_bits (B, N, L, K) uint8 {0,1}; w_packed (M, O, Kb) -> dots (B, M, N, O, L) int32 with
    dot = 2 * popcount(XNOR) - K = K - 2 * popcount(XOR) over the K valid bits."""
    xw = as_words(pack_bits(x_bits))  # (B, N, L, W)
    ww = as_words(w_packed)  # (M, O, W)
    b, n, l_, _ = xw.shape
    m, o, _ = ww.shape
    out = np.empty((b, m, n, o, l_), np.int32)
    for mi in range(m):
        for ni in range(n):
            x = xw[:, ni][:, None, :, :]  # (B, 1, L, W)
            w = ww[mi][None, :, None, :]  # (1, O, 1, W)
            mism = np.bitwise_count(np.bitwise_xor(x, w)).sum(axis=-1, dtype=np.int64)
            out[:, mi, ni] = (k - 2 * mism).astype(np.int32)
    return out


class AbcnOp(CustomOp):
    """Base class: subclasses define ``ATTRS``, ``output_shape``, ``output_dtype``, ``reference``
    and ``build_function``."""

    ATTRS: dict[str, tuple] = {}
    OUTPUT_DTYPE = np.int32

    def get_nodeattr_types(self):
        return dict(self.ATTRS)

    # -- to implement --------------------------------------------------------------------------
    def output_shape(self, in_shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        raise NotImplementedError

    def reference(self, *inputs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @classmethod
    def build_function(cls) -> FunctionProto:
        raise NotImplementedError

    @classmethod
    def build_functions(cls) -> list[FunctionProto]:
        """Every function body of the op (one; several for an op with overloads)."""
        return [cls.build_function()]

    @classmethod
    def attr_defaults(cls) -> dict[str, Any]:
        return {k: v[2] for k, v in cls.ATTRS.items() if not v[1]}

    def output_np_dtype(self, model) -> np.dtype:
        return np.dtype(self.OUTPUT_DTYPE)

    # -- qonnx contract ------------------------------------------------------------------------
    def make_shape_compatible_op(self, model):
        node = self.onnx_node
        shapes = [tuple(model.get_tensor_shape(i)) for i in node.input]
        shape = self.output_shape(shapes)
        zeros = np.zeros(shape, dtype=self.output_np_dtype(model))
        return helper.make_node("Constant", [], [node.output[0]],
                                value=numpy_helper.from_array(zeros, node.output[0]))

    def infer_node_datatype(self, model):
        model.set_tensor_datatype(self.onnx_node.output[0], DataType[_NP_TO_QONNX[self.output_np_dtype(model)]])

    def execute_node(self, context, graph):
        node = self.onnx_node
        ins = [context[i] for i in node.input]
        out = np.asarray(self.reference(*ins))
        context[node.output[0]] = out if out.dtype == np.int64 else out.astype(self.OUTPUT_DTYPE)

    def verify_node(self):
        return [f"{self.onnx_node.op_type}: ok"]

    def attr(self, name: str):
        return self.get_nodeattr(name)


def onnx_dtype(np_dtype) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(np_dtype))


__all__ = ["DOMAIN", "FUNCTION_OPSET", "WORD_BITS", "FunctionBuilder", "AbcnOp", "pack_bits", "unpack_bits",
           "as_words", "im2col", "xnor_popcount_dots", "zero_pad_correction", "padded_bits", "onnx_dtype"]
