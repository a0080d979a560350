"""When is a float32 convolution or matrix product exact in every summation order?

PyTorch (oneDNN / MKL), onnxruntime (MLAS) and a C++ loop add the K products of a dot product in
orders of their own, and the order depends on the CPU's instruction set. Their float32 results are
bit-equal on every machine only when every partial sum is exact. For a binary layer

    y[o] = sum_k A[k] W[o, k],  A[k] = sum_n +-beta[n]  (or x[k] * input_scale, |x| <= input_max),
                                W[o, k] = sum_m +-alpha[m, o]

write the exact dyadic decompositions alpha[m, o] = a[m, o] 2**ea[o] and beta[n] = b[n] 2**eb
(every float32 is k * 2**e; the largest shared exponent is taken). Every product, and so every
partial sum in any order, is an integer multiple of 2**(ea[o] + eb) of magnitude at most

    bound[o] = K * xmax * sum_n |b[n]| * sum_m |a[m, o]|     (xmax = 1 for binary inputs)

quanta. When bound[o] < 2**24 each of them is representable in float32, every addition is exact,
and the layer output is the same in every order: the layer is *provably exact*. Otherwise the
result may depend on the kernel (e.g. scales such as Brevitas' constant 0.1, ``float`` scale
grids, ``fixed`` grids with many bases or bits, ``pow2`` scales with spread exponents).

Used by the compiler (``abcn_hw.compiler.scales``: exact layers lower to integers) and by the
export check of trained models (``abcn_hw.models.exactness``). numpy only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EXACT_LIMIT = 2 ** 24  # float32 carries 24 significant bits


def dyadic(values: np.ndarray, axis: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """values == k * 2**e exactly, with integer k and the largest e shared along ``axis``
    (None: one e for all). Returns (k int64 same shape, e int64 with ``axis`` reduced)."""
    v = np.asarray(values, np.float32).astype(np.float64)
    mant, ex = np.frexp(v)
    im = np.round(mant * 2.0 ** 24).astype(np.int64)
    nz = im != 0
    x = np.abs(im)
    low = np.where(nz, x & -x, 1)
    tz = np.where(nz, np.log2(low).astype(np.int64), 0)
    lowest = np.where(nz, ex - 24 + tz, np.iinfo(np.int64).max)
    e = lowest.min() if axis is None else lowest.min(axis=axis)
    e = np.where(e == np.iinfo(np.int64).max, 0, e)
    eb = e if axis is None else np.expand_dims(e, axis)
    k = np.round(v / np.exp2(eb.astype(np.float64))).astype(np.int64)
    return k, np.asarray(e, np.int64)


@dataclass(frozen=True)
class DyadicOperands:
    """A layer's scales as integers: alpha = ka * 2**ea (per output channel), beta = kb * 2**eb,
    inputs |x| <= xmax (1 for binary inputs, whose values are the +-beta)."""

    ka: np.ndarray  # (M, O) int64
    ea: np.ndarray  # (O,) int64
    kb: np.ndarray  # (N,) int64 ([1] for an integer input)
    eb: np.int64
    xmax: int

    def bound(self, k: int) -> np.ndarray:
        """(O,) float64: the largest |partial sum| of a K-term dot product, in quanta 2**(ea+eb)
        (float64: exact below 2**53, and only compared with 2**24)."""
        return (float(k) * self.xmax * np.abs(self.kb).sum(dtype=np.float64)
                * np.abs(self.ka).sum(axis=0, dtype=np.float64))


def dyadic_operands(alpha: np.ndarray, beta: np.ndarray | None, input_scale: float | None = None,
                    input_max: int | None = None) -> DyadicOperands:
    """``alpha`` (M, O); ``beta`` (N,) for binary inputs, or ``input_scale`` / ``input_max`` for
    an integer input (a power-of-two ``input_scale``; then N = 1 and |x| <= input_max)."""
    ka, ea = dyadic(alpha, axis=0)
    if beta is not None:
        kb, eb = dyadic(beta)
        return DyadicOperands(ka, ea, kb, eb, 1)
    return DyadicOperands(ka, ea, np.array([1], np.int64), np.int64(np.round(np.log2(input_scale))), int(input_max))


# -- per-layer verdicts ------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerExactness:
    """One layer (or float operation) of a model: is its float32 result order-independent?"""

    layer: str
    exact: bool
    bound: float | None = None  # max over channels of the bound above; None for non-product ops
    reason: str = ""

    def to_json(self) -> dict:
        return {"layer": self.layer, "exact": self.exact,
                "bound": None if self.bound is None else int(self.bound) if self.bound < 2 ** 53 else self.bound,
                "reason": self.reason}


def product_exactness(layer: str, k: int, alpha: np.ndarray, beta: np.ndarray | None,
                      input_scale: float | None = None, input_max: int | None = None) -> LayerExactness:
    """The verdict for a binary conv / matmul with K-term dot products (see the module docstring)."""
    if input_scale is not None and not float(np.log2(input_scale)).is_integer():
        return LayerExactness(layer, False, None, f"input scale {input_scale:g} is not a power of two")
    bound = float(dyadic_operands(alpha, beta, input_scale, input_max).bound(k).max(initial=0.0))
    if bound < EXACT_LIMIT:
        return LayerExactness(layer, True, bound, f"K*xmax*sum|b|*sum|a| = {bound:.0f} < 2^24")
    return LayerExactness(layer, False, bound, f"K*xmax*sum|b|*sum|a| = {bound:.4g} >= 2^24")


def worst_case_exactness(layer: str, k: int, weight_bases: int, act_bases: int | None, grid: str, bits: int,
                         input_max: int | None = None) -> LayerExactness:
    """The verdict before training, from the configuration alone: with a ``fixed`` grid every
    |a|, |b| <= 2**bits - 1 (one exponent per group), so bound <= K * xmax * N (2**bits - 1) * M
    (2**bits - 1). ``pow2`` scales are bounded only for one base (the spread of learned exponents
    decides otherwise); ``float`` scales never are. An undecided layer has ``bound`` None."""
    n = 1 if act_bases is None else act_bases
    xmax = 1 if input_max is None else input_max
    if grid == "fixed":
        kmax = 2 ** bits - 1
    elif grid == "pow2" and weight_bases == 1 and n == 1:
        kmax = 1
    else:
        return LayerExactness(layer, False, None, f"{grid} scales: decided by the trained values")
    sum_b = n * kmax if act_bases is not None else 1
    bound = float(k) * xmax * sum_b * weight_bases * kmax
    if bound < EXACT_LIMIT:
        return LayerExactness(layer, True, bound, f"worst case K*xmax*sum|b|*sum|a| = {bound:.0f} < 2^24")
    return LayerExactness(layer, False, bound,
                          f"worst case K*xmax*sum|b|*sum|a| = {bound:.4g} >= 2^24 (K={k}, M={weight_bases}, "
                          + (f"N={act_bases}" if act_bases is not None else f"inputs up to {xmax}")
                          + f", {bits}-bit {grid} scales)")


@dataclass
class ExactnessReport:
    """Per-layer verdicts for a whole model; the model's float32 outputs are order-independent
    (bit-equal in every implementation) when every entry is exact."""

    layers: list[LayerExactness] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return all(layer.exact for layer in self.layers)

    @property
    def first_failure(self) -> LayerExactness | None:
        return next((layer for layer in self.layers if not layer.exact), None)

    def to_json(self) -> dict:
        f = self.first_failure
        return {"provably_exact": self.exact, "first_failing_layer": None if f is None else f.layer,
                "reason": None if f is None else f.reason, "layers": [layer.to_json() for layer in self.layers]}

    def summary(self) -> str:
        f = self.first_failure
        if f is None:
            return f"provably bit-exact (partial sums below 2^24 in all {len(self.layers)} layers)"
        bad = sum(not layer.exact for layer in self.layers)
        return f"not provably bit-exact: layer {f.layer} ({f.reason})" + (f" and {bad - 1} more" if bad > 1 else "")
