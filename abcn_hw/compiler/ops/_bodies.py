"""Reusable pieces of the ONNX function bodies (standard ops only)."""
from __future__ import annotations

import numpy as np
from onnx import AttributeProto, TensorProto

from ._base import FunctionBuilder


def shape_dims(b: FunctionBuilder, x: str, n: int) -> list[str]:
    shp = b.op("Shape", x)
    return [b.item(shp, i) for i in range(n)]


def im2col(b: FunctionBuilder, x: str, lead: list[str], c: str, hp: str, wp: str) -> tuple[str, str, str, str]:
    """Patches of an already padded ``x`` (*lead, C, Hp, Wp) using the node attributes
    ``kernel_shape`` and ``strides``: returns (patches (*lead, L, K), K, Ho, Wo) with K in (c, i, j)
    order and L = Ho*Wo row-major. Pure data movement (Gather with a computed index)."""
    ks = b.attr_ints("kernel_shape")
    st = b.attr_ints("strides")
    kh, kw = b.item(ks, 0), b.item(ks, 1)
    sh, sw = b.item(st, 0), b.item(st, 1)
    one = b.const([1])
    ho = b.op("Add", b.op("Div", b.op("Sub", hp, kh), sh), one)
    wo = b.op("Add", b.op("Div", b.op("Sub", wp, kw), sw), one)
    zero_s, one_s = b.const(0), b.const(1)

    def rng(n: str) -> str:
        return b.op("Range", zero_s, b.op("Squeeze", n, b.const([0])), one_s)

    rows = b.op("Mul", b.op("Mul", rng(ho), b.op("Squeeze", sh, b.const([0]))), b.op("Squeeze", wp, b.const([0])))
    cols = b.op("Mul", rng(wo), b.op("Squeeze", sw, b.const([0])))
    base = b.op("Add", b.op("Reshape", rows, b.const([-1, 1])), b.op("Reshape", cols, b.const([1, -1])))
    base = b.op("Reshape", base, b.const([-1, 1]))  # (L, 1)
    hw = b.op("Mul", hp, wp)
    coff = b.op("Reshape", b.op("Mul", rng(c), b.op("Squeeze", hw, b.const([0]))), b.const([-1, 1, 1]))
    ioff = b.op("Reshape", b.op("Mul", rng(kh), b.op("Squeeze", wp, b.const([0]))), b.const([1, -1, 1]))
    joff = b.op("Reshape", rng(kw), b.const([1, 1, -1]))
    off = b.op("Reshape", b.op("Add", b.op("Add", coff, ioff), joff), b.const([1, -1]))  # (1, K)
    idx = b.op("Add", base, off)  # (L, K)
    flat = b.op("Reshape", x, b.op("Concat", *lead, b.const([-1]), axis=0))
    patches = b.op("Gather", flat, idx, axis=len(lead))
    k = b.op("Mul", b.op("Mul", c, kh), kw)
    return patches, k, ho, wo


def pad_spatial(b: FunctionBuilder, x: str, n_lead: int, value: str) -> str:
    """Pad the last two axes of ``x`` with the node attribute ``pads`` = [top, left, bottom, right]."""
    pads = b.attr_ints("pads")
    z = b.const([0] * n_lead)
    full = b.op("Concat", z, b.op("Slice", pads, b.const([0]), b.const([2])), z,
                b.op("Slice", pads, b.const([2]), b.const([4])), axis=0)
    return b.op("Pad", x, full, value, mode="constant")


def with_attr_refs(b: FunctionBuilder, out: str, **refs: int) -> str:
    """Give the node that produced ``out`` attributes that refer to the function's own attributes
    of the same name (``refs``: name -> AttributeProto type), e.g. a ConvInteger's ``strides``."""
    node = next(n for n in reversed(b.nodes) if out in n.output)
    for name, kind in refs.items():
        a = AttributeProto()
        a.name, a.ref_attr_name, a.type = name, name, kind
        node.attribute.append(a)
    return out


def unpack_bits01(b: FunctionBuilder, wpacked: str, k: str) -> str:
    """wpacked (M, O, Kb) -> (M, O, K) uint8 in {0, 1} (first bit = most significant of byte 0)."""
    shifts = b.const([7, 6, 5, 4, 3, 2, 1, 0], np.uint8)
    x = b.op("BitShift", b.op("Unsqueeze", wpacked, b.const([-1])), shifts, direction="RIGHT")
    x = b.op("BitwiseAnd", x, b.const(1, np.uint8))
    shp = b.op("Shape", wpacked)
    mo = b.op("Slice", shp, b.const([0]), b.const([2]))
    x = b.op("Reshape", x, b.op("Concat", mo, b.const([-1]), axis=0))
    return b.op("Slice", x, b.const([0]), k, b.const([2]))


def signed_codes(b: FunctionBuilder, bits: str) -> str:
    """{0,1} uint8 bits -> uint8 codes {0, 2}: with zero point 1, code - 1 is the bit's value -1/+1
    (and code 1 is a 0, a zero-padded tap), the operand form of ConvInteger / MatMulInteger."""
    return b.op("BitShift", bits, b.const(1, np.uint8), direction="LEFT")


def unpack_pm1(b: FunctionBuilder, wpacked: str, k: str) -> str:
    """wpacked (M, O, Kb) -> (M, O, K) int32 in {-1, +1} (bit 1 -> +1)."""
    x = b.op("Cast", unpack_bits01(b, wpacked, k), to=TensorProto.INT32)
    return b.op("Sub", b.op("Mul", x, b.const(2, np.int32)), b.const(1, np.int32))
