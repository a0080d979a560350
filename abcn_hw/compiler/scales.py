"""Integer scale decomposition of one layer and its exactness classification.

The exported layer output is y[o] = sum_m sum_n alpha[m,o] beta[n] dot[m,n,o]. With
alpha[m,o] = a[m,o] 2**ea[o] and beta[n] = b[n] 2**eb (exact dyadic decomposition; ABC's
``fixed``/``pow2`` grids and BNN-PYNQ's unit scales are of this form) the lowered accumulator
acc[o] = sum a b dot is an integer and y[o] = acc[o] * 2**(ea[o] + eb) exactly, PROVIDED the
export's own float32 convolution is exact: every partial sum is an integer multiple of the
quantum below 2**24 quanta. A sufficient, order-independent bound is
K * sum_n |b[n]| * sum_m |a[m,o]| < 2**24 (for an integer input: K * max|x| * sum_m |a[m,o]|);
see abcn_hw.exactness, which the export check of trained models shares.
Layers meeting it are "exact" (bit-equal to the export); others are "rounded". Scales that are
not small dyadic numbers (``float`` grid) are handled by rounding each real coefficient
alpha[m,o] * beta[n] onto c[m,n,o] * 2**e[o] with |c| < 2**24 (the precision of the float32
scales) and an int64 accumulator (K * max|x| * sum_mn |c| < 2**62); such layers are "rounded" too.

The rounding contract (docs/lowering.md): how many bits a rounded layer's grid gets is chosen by
abcn_hw.compiler.contract on calibration inputs (the smallest grid that keeps the lowered graph's
prediction agreement with the executed export at the contract, within the accumulator width the
hardware allows, :func:`hw_acc_bits`); :meth:`LayerScales.regrid` rounds the real coefficients
onto that grid. Without a choice, a rounded layer gets the finest grid the limit allows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..exactness import EXACT_LIMIT, dyadic_operands
from .patterns import round_to_grid

INT32_LIMIT = 2 ** 31 - 1
INT64_LIMIT = 2 ** 62
MAX_EXACT_COEF = 2 ** 15
MAX_GRID_BITS = 24  # float32 scales carry 24 significant bits


#: widest accumulator (and threshold) the HLS kernels instantiate (backend/frontend.py refuses wider)
MAX_ACC_BITS = 64
#: coarsest coefficient grid a rounded layer may get
MIN_GRID_BITS = 2


def hw_acc_bits(c: np.ndarray, k: int, xmax: int) -> int:
    """Width of the accumulator (and of the thresholds compared with it) the HLS kernels
    instantiate for the general coefficients ``c`` (M, N, O) -- the backend's bound
    M * N * K * max|x| * 2**(width(c) - 1), as abcn_hw/backend/frontend.py sizes ACC_W."""
    lo, hi = int(c.min(initial=0)), int(c.max(initial=0))
    w = 2
    while not (-(1 << (w - 1)) <= lo and hi <= (1 << (w - 1)) - 1):
        w += 1
    m, n = c.shape[0], c.shape[1]
    mx = m * n * k * xmax * (1 << (w - 1))
    return int(mx + 1).bit_length() + 1  # signed width holding -(mx + 1)..mx + 1


@dataclass
class LayerScales:
    c: np.ndarray  # (M, N, O) coefficients, int32 (exact layers) or int64 (rounded): acc = sum c dot
    unit: np.ndarray  # (O,) float32: layer output ~ acc * unit (exactly, for exact layers)
    amax: np.ndarray  # (O,) int64: |acc| <= amax
    exact: bool
    scales_rounded: bool
    bound: int
    grid_bits: int | None = None  # bits of the rounded coefficients (scales_rounded only)
    real: np.ndarray | None = None  # (M, N, O) float64 alpha*beta (scales_rounded only)
    k: int = 0
    xmax: int = 1

    def regrid(self, bits: int) -> "LayerScales":
        """The same rounded layer on a grid of ``bits`` bits (scales_rounded only)."""
        if not self.scales_rounded or self.real is None:
            raise ValueError("only a rounded layer has a coefficient grid")
        c, unit = _round_coefficients(self.real, bits)
        amax = (self.k * self.xmax * np.abs(c).sum(axis=(0, 1))).astype(np.int64)
        return LayerScales(c.astype(np.int64), unit, amax, False, True, int(amax.max()), bits, self.real, self.k,
                           self.xmax)

    def max_grid_bits(self, max_acc_bits: int = MAX_ACC_BITS) -> int | None:
        """The finest grid (<= MAX_GRID_BITS bits) whose accumulator fits ``max_acc_bits`` bits and
        the int64 accumulator of the lowered graph; None when not even MIN_GRID_BITS fits."""
        for bits in range(MAX_GRID_BITS, MIN_GRID_BITS - 1, -1):
            c, _ = _round_coefficients(self.real, bits)
            if hw_acc_bits(c, self.k, self.xmax) <= max_acc_bits \
                    and (self.k * self.xmax * np.abs(c).sum(axis=(0, 1))).max(initial=0) <= INT64_LIMIT:
                return bits
        return None

    @property
    def acc_hw_bits(self) -> int:
        """Accumulator / threshold width of this layer in the HLS kernels."""
        return hw_acc_bits(np.asarray(self.c, np.int64), self.k, self.xmax)


def _round_coefficients(real: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """real (M, N, O) -> (c int64 (M, N, O), unit float32 (O,)): real ~ c * unit, |c| <= 2**bits,
    one power-of-two unit per output channel."""
    kc, e = round_to_grid(real.reshape(-1, real.shape[-1]), bits, axis=0)
    return kc.reshape(real.shape), np.exp2(e.astype(np.float64)).astype(np.float32)


def layer_scales(alpha: np.ndarray, beta: np.ndarray | None, k: int, input_scale: float | None = None,
                 input_max: int | None = None) -> LayerScales:
    """``alpha`` (M, O); ``beta`` (N,) for binary inputs, or ``input_scale``/``input_max`` for an
    integer input (then N = 1 and |x| <= input_max)."""
    d = dyadic_operands(alpha, beta, input_scale, input_max)
    ka, ea, kb, eb, xmax = d.ka, d.ea, d.kb, d.eb, d.xmax

    def bound_of(c):  # (M, N, O) -> per-channel worst case |acc|
        return k * xmax * np.abs(c).sum(axis=(0, 1))

    c = ka[:, None, :] * kb[None, :, None]
    rounded = bool(np.abs(ka).max(initial=0) > MAX_EXACT_COEF or np.abs(kb).max(initial=0) > MAX_EXACT_COEF
                   or bound_of(c).max() > INT32_LIMIT)
    if rounded:
        # the real coefficients alpha*beta, rounded onto c * 2**e[o] on the finest grid the
        # accumulator allows (the contract search may pick a coarser one: LayerScales.regrid)
        real = alpha.astype(np.float64)[:, None, :] * (beta.astype(np.float64)[None, :, None] if beta is not None
                                                       else np.float64(input_scale))
        sc = LayerScales(c, np.ones(c.shape[-1], np.float32), bound_of(c), False, True, 0, None, real, k, xmax)
        bits = sc.max_grid_bits()
        return sc.regrid(bits if bits is not None else MIN_GRID_BITS)
    unit = np.exp2((ea + eb).astype(np.float64)).astype(np.float32)
    amax = bound_of(c).astype(np.int64)
    bound = int(amax.max())
    return LayerScales(c.astype(np.int32), unit, amax, bound < EXACT_LIMIT, False, bound, None, None, k, xmax)


def region_scales(coef: np.ndarray, offset: np.ndarray, k: int, xmax: int, exact_core: bool) -> tuple[LayerScales, np.ndarray]:
    """Scales of a fused layer (general coefficients, see ``regions``): ``coef`` (M, N, O) real
    coefficients of the dots, ``offset`` (O,) the constant part, ``exact_core``: the export computes
    the joined sum exactly. Returns the LayerScales (acc = sum c dot, output ~ acc * unit; rounded
    layers carry ``real`` so the contract search can regrid them) and the float32 offset to add
    after ``acc * unit`` (exactly D * unit for exact layers)."""
    coef = np.asarray(coef, np.float64)
    o = coef.shape[-1]
    flat = coef.reshape(-1, o)

    def bound_of(c):
        return k * xmax * np.abs(c).sum(axis=(0, 1))

    mant, ex = np.frexp(flat)
    im = (mant * 2.0 ** 53).astype(np.int64)
    nz = im != 0
    low = np.where(nz, np.abs(im) & -np.abs(im), 1)
    tz = np.where(nz, np.round(np.log2(low.astype(np.float64))).astype(np.int64), 0)
    e = np.where(nz, ex.astype(np.int64) - 53 + tz, np.iinfo(np.int64).max).min(axis=0)
    e = np.where(e == np.iinfo(np.int64).max, 0, e)
    c = (flat / np.exp2(e.astype(np.float64))).reshape(coef.shape)
    off = np.asarray(offset, np.float64).astype(np.float32)
    rounded = not bool(np.all(np.abs(c) <= 2 ** 30)) or bool(bound_of(c).max() > INT32_LIMIT)
    if rounded:
        sc = LayerScales(np.round(c).astype(np.int64), np.ones(o, np.float32), bound_of(np.round(c)).astype(np.int64),
                         False, True, 0, None, coef, k, xmax)
        bits = sc.max_grid_bits()
        return sc.regrid(bits if bits is not None else MIN_GRID_BITS), off
    c = np.round(c).astype(np.int64)
    unit = np.exp2(e.astype(np.float64)).astype(np.float32)
    amax = bound_of(c).astype(np.int64)
    bound = int(amax.max())
    exact = exact_core and bound < EXACT_LIMIT and bool(np.all(off == np.asarray(offset)))
    return LayerScales(c.astype(np.int32), unit, amax, exact, False, bound, None, None, k, xmax), off
