"""Integer scale decomposition of one layer and its exactness classification.

The exported layer output is y[o] = sum_m sum_n alpha[m,o] beta[n] dot[m,n,o]. With
alpha[m,o] = a[m,o] 2**ea[o] and beta[n] = b[n] 2**eb (exact dyadic decomposition; ABC's
``fixed``/``pow2`` grids and BNN-PYNQ's unit scales are of this form) the lowered accumulator
acc[o] = sum a b dot is an integer and y[o] = acc[o] * 2**(ea[o] + eb) exactly, PROVIDED the
export's own float32 convolution is exact: every partial sum is an integer multiple of the
quantum below 2**24 quanta. A sufficient, order-independent bound is
K * sum_n |b[n]| * sum_m |a[m,o]| < 2**24 (for an integer input: K * max|x| * sum_m |a[m,o]|).
Layers meeting it are "exact" (bit-equal to the export); others are "rounded". Scales that are
not small dyadic numbers (``float`` grid) are handled by rounding each real coefficient
alpha[m,o] * beta[n] onto c[m,n,o] * 2**e[o] with |c| < 2**24 (the precision of the float32
scales) and an int64 accumulator (K * max|x| * sum_mn |c| < 2**62); such layers are "rounded" too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .patterns import dyadic, round_to_grid

EXACT_LIMIT = 2 ** 24
INT32_LIMIT = 2 ** 31 - 1
INT64_LIMIT = 2 ** 62
MAX_EXACT_COEF = 2 ** 15
MAX_GRID_BITS = 24  # float32 scales carry 24 significant bits


@dataclass
class LayerScales:
    c: np.ndarray  # (M, N, O) coefficients, int32 (exact layers) or int64 (rounded): acc = sum c dot
    unit: np.ndarray  # (O,) float32: layer output ~ acc * unit (exactly, for exact layers)
    amax: np.ndarray  # (O,) int64: |acc| <= amax
    exact: bool
    scales_rounded: bool
    bound: int
    grid_bits: int | None = None  # bits of the rounded coefficients (scales_rounded only)


def layer_scales(alpha: np.ndarray, beta: np.ndarray | None, k: int, input_scale: float | None = None,
                 input_max: int | None = None) -> LayerScales:
    """``alpha`` (M, O); ``beta`` (N,) for binary inputs, or ``input_scale``/``input_max`` for an
    integer input (then N = 1 and |x| <= input_max)."""
    ka, ea = dyadic(alpha, axis=0)
    if beta is not None:
        kb, eb = dyadic(beta)
        xmax = 1
    else:
        kb, eb = np.array([1], np.int64), np.int64(np.round(np.log2(input_scale)))
        xmax = int(input_max)

    def bound_of(c):  # (M, N, O) -> per-channel worst case |acc|
        return k * xmax * np.abs(c).sum(axis=(0, 1))

    c = ka[:, None, :] * kb[None, :, None]
    rounded = bool(np.abs(ka).max(initial=0) > MAX_EXACT_COEF or np.abs(kb).max(initial=0) > MAX_EXACT_COEF
                   or bound_of(c).max() > INT32_LIMIT)
    bits = None
    if rounded:
        # round the real coefficients alpha*beta onto k * 2**e[o], |k| < 2**bits (int64 accumulator)
        real = alpha.astype(np.float64)[:, None, :] * (beta.astype(np.float64)[None, :, None] if beta is not None
                                                       else np.float64(input_scale))
        for bits in range(MAX_GRID_BITS, 1, -1):
            flat = real.reshape(-1, real.shape[-1])
            kc, e = round_to_grid(flat, bits, axis=0)
            c = kc.reshape(real.shape)
            if bound_of(c).max() <= INT64_LIMIT:
                break
        unit = np.exp2(e.astype(np.float64)).astype(np.float32)
    else:
        unit = np.exp2((ea + eb).astype(np.float64)).astype(np.float32)
    amax = bound_of(c).astype(np.int64)
    bound = int(amax.max())
    return LayerScales(c.astype(np.int64 if rounded else np.int32), unit, amax, (not rounded) and bound < EXACT_LIMIT,
                       rounded, bound, bits)
