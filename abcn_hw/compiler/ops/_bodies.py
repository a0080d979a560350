"""Reusable pieces of the ONNX function bodies (standard ops only)."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto

from ._base import WORD_BITS, FunctionBuilder



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


def _combine_to_words(b: FunctionBuilder, parts: str, shifts: list[int]) -> str:
    """parts (..., W, P) small unsigned values -> (..., W) uint64 = OR_p parts[p] << shifts[p]
    (P a power of two; a pairwise BitwiseOr tree: ORT has no uint64 ReduceSum)."""
    sh = b.const(shifts, np.uint64)
    x = b.op("BitShift", b.op("Cast", parts, to=TensorProto.UINT64), sh, direction="LEFT")
    n = len(shifts)
    while n > 1:
        even = b.op("Slice", x, b.const([0]), b.const([n]), b.const([-1]), b.const([2]))
        odd = b.op("Slice", x, b.const([1]), b.const([n]), b.const([-1]), b.const([2]))
        x = b.op("BitwiseOr", even, odd)
        n //= 2
    return b.op("Squeeze", x, b.const([-1]))


def pack_words(b: FunctionBuilder, bits: str, lead: list[str], k: str) -> str:
    """{0,1} uint8 (*lead, K) -> uint64 words (*lead, W): zero-pad K to a multiple of 64; bit k of
    the row sits in word k // 64 at bit position 63 - k % 64 (first bit most significant)."""
    word = b.const([WORD_BITS])
    padn = b.op("Mod", b.op("Sub", word, b.op("Mod", k, word)), word)
    nlead = len(lead)
    padv = b.op("Concat", b.const([0] * (2 * nlead + 1)), padn, axis=0)
    padded = b.op("Pad", bits, padv, b.const(0, np.uint8), mode="constant")
    grouped = b.op("Reshape", padded, b.op("Concat", *lead, b.const([-1, WORD_BITS]), axis=0))
    return _combine_to_words(b, grouped, list(range(WORD_BITS - 1, -1, -1)))


def bytes_to_words(b: FunctionBuilder, packed: str) -> str:
    """Packed weight bytes (M, O, Kb) (Kb a multiple of 8, MSB first) -> uint64 words (M, O, Kb/8)."""
    shp = b.op("Shape", packed)
    grouped = b.op("Reshape", packed, b.op("Concat", b.op("Slice", shp, b.const([0]), b.const([2])),
                                           b.const([-1, 8]), axis=0))
    return _combine_to_words(b, grouped, [56, 48, 40, 32, 24, 16, 8, 0])


def popcount64(b: FunctionBuilder, x: str) -> str:
    """SWAR popcount of uint64 words -> int32."""
    def c(v: int) -> str:
        return b.const(v, np.uint64)

    def shr(v: str, n: int) -> str:
        return b.op("BitShift", v, c(n), direction="RIGHT")

    x = b.op("Sub", x, b.op("BitwiseAnd", shr(x, 1), c(0x5555555555555555)))
    x = b.op("Add", b.op("BitwiseAnd", x, c(0x3333333333333333)), b.op("BitwiseAnd", shr(x, 2), c(0x3333333333333333)))
    x = b.op("BitwiseAnd", b.op("Add", x, shr(x, 4)), c(0x0F0F0F0F0F0F0F0F))
    x = shr(b.op("Mul", x, c(0x0101010101010101)), 56)
    return b.op("Cast", x, to=TensorProto.INT32)


def xnor_popcount(b: FunctionBuilder, xwords: str, wpacked: str, k: str) -> str:
    """xwords (B, N, L, W) uint64, wpacked (M, O, Kb) bytes -> dots (B, M, N, O, L) int32
    = K - 2 popcount(XOR) (the zero padding bits agree and never count)."""
    ww = bytes_to_words(b, wpacked)
    xa = b.op("Unsqueeze", xwords, b.const([1, 3]))  # (B, 1, N, 1, L, W)
    wa = b.op("Unsqueeze", ww, b.const([0, 2, 4]))  # (1, M, 1, O, 1, W)
    pc = popcount64(b, b.op("BitwiseXor", xa, wa))
    mism = b.op("ReduceSum", pc, b.const([-1]), keepdims=0)
    k32 = b.op("Cast", k, to=TensorProto.INT32)
    return b.op("Sub", k32, b.op("Mul", mism, b.const(2, np.int32)))


def unpack_pm1(b: FunctionBuilder, wpacked: str, k: str) -> str:
    """wpacked (M, O, Kb) -> (M, O, K) int32 in {-1, +1} (bit 1 -> +1)."""
    shifts = b.const([7, 6, 5, 4, 3, 2, 1, 0], np.uint8)
    x = b.op("BitShift", b.op("Unsqueeze", wpacked, b.const([-1])), shifts, direction="RIGHT")
    x = b.op("BitwiseAnd", x, b.const(1, np.uint8))
    shp = b.op("Shape", wpacked)
    mo = b.op("Slice", shp, b.const([0]), b.const([2]))
    x = b.op("Reshape", x, b.op("Concat", mo, b.const([-1]), axis=0))
    x = b.op("Slice", x, b.const([0]), k, b.const([2]))
    x = b.op("Cast", x, to=TensorProto.INT32)
    return b.op("Sub", b.op("Mul", x, b.const(2, np.int32)), b.const(1, np.int32))
