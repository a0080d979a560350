"""Exact residual joins: which values a join rounds, and onto which power-of-two grid.

A join of a residual network adds batch-norm branches ``x * s + t`` (x = an ABC conv's output, an
integer times 2**u[c]; s, t on a fixed-point grid, see :class:`~abcn_hw.nn.FixedPointBatchNorm`)
and possibly the identity r (an earlier join's output, an integer times 2**E[c]). Each float32 op
of the join is exact while its values stay below 2**24 quanta of their dyadic grid. With many
bases (K * M * N large) or a long identity chain they do not, so the join rounds, exactly and
only where the static worst-case bound says it must:

* a branch's conv output onto 2**(u[c] + h) before its batch norm (``FixedPointBatchNorm``'s
  ``shift`` h, which also snaps s on the coarser unit, so the output grid moves up by 2**h);
* the identity onto 2**G;

where G (one power of two per join) is the finest grid on which every float32 op of the join,
the rounded operands and the sum stay below 2**24 quanta (the last join: the global sum pool
below 2**31 as well), and h = max(0, G - e_b) for a branch of natural grid 2**e_b. A rounding is
``round(v * 2**-g) * 2**g`` (round half to even): a power-of-two scaling and a float round, exact in
float32 for every value; the lowering computes it as an integer shift with the same rounding
(``ResidualAdd``'s ``shift``). With no rounding needed G is the finest operand grid and nothing is
rounded (the exact joins of before). Training plans the same way from the batch statistics and
rounds through a straight-through estimator. numpy bounds, float64 counts (exact below 2**53).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

EXACT_LIMIT = 2 ** 24  # float32 significand
INT32_LIMIT = 2 ** 31
#: how far above the finest operand grid a join's grid may move (a bound halves per step)
MAX_GRID_STEPS = 64


def dyadic_parts(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(k, e) per element of a float32 vector, v == k * 2**e with k odd (zeros: k = 0, e huge)."""
    x = np.asarray(v, np.float32).astype(np.float64).reshape(-1)
    mant, ex = np.frexp(x)
    im = np.round(mant * 2.0 ** 24).astype(np.int64)
    nz = im != 0
    low = np.where(nz, np.abs(im) & -np.abs(im), 1)
    tz = np.where(nz, np.round(np.log2(low.astype(np.float64))).astype(np.int64), 0)
    e = np.where(nz, ex.astype(np.int64) - 24 + tz, np.iinfo(np.int32).max)
    k = np.where(nz, np.round(x / np.exp2(np.where(nz, e, 0).astype(np.float64))), 0).astype(np.int64)
    return k, e


@dataclass(frozen=True)
class Dyadic:
    """A per-channel dyadic value: integer * 2**exp[c] with |integer| <= bound[c] (counts, float64)."""

    exp: np.ndarray  # (C,) int64
    bound: np.ndarray  # (C,) float64

    def on(self, e) -> np.ndarray:
        """The bound in quanta of 2**e (e <= exp)."""
        return self.bound * np.exp2((self.exp - np.asarray(e, np.int64)).astype(np.float64))

    @property
    def peak(self) -> float:
        return float(self.bound.max(initial=0.0))

    @property
    def uniform_peak(self) -> float:
        """The bound on one grid for all channels (the finest): the integer a rounding shifts."""
        return float(self.on(self.exp.min(initial=0)).max(initial=0.0))

    def __add__(self, other: "Dyadic") -> "Dyadic":
        e = np.minimum(self.exp, other.exp)
        return Dyadic(e, self.on(e) + other.on(e))

    def rounded(self, g: int) -> "Dyadic":
        """Rounded (half to even) onto multiples of 2**g; channels already on a coarser grid keep
        theirs. Rounding is monotone, so max |round(a / 2**d)| = round(bound / 2**d)."""
        fine = self.exp < g
        scaled = np.round(self.bound * np.exp2(np.minimum(self.exp - g, 0).astype(np.float64)))
        return Dyadic(np.where(fine, g, self.exp).astype(np.int64), np.where(fine, scaled, self.bound))


def affine_bound(x: Dyadic, s: np.ndarray, t: np.ndarray) -> tuple[Dyadic, float]:
    """``x * s + t`` (float32 constants, per channel): its output and the largest count either
    float32 op (the Mul, then the Add) reaches on its grid."""
    ks, es = dyadic_parts(s)
    prod = Dyadic(np.where(ks == 0, x.exp, x.exp + es), x.bound * np.abs(ks))
    kt, et = dyadic_parts(t)
    e = np.minimum(prod.exp, et)
    out = Dyadic(e, prod.on(e) + np.abs(kt) * np.exp2(np.where(kt == 0, 0, et - e).astype(np.float64)))
    return out, max(prod.peak, out.peak)


#: a join branch: shift h -> (its output after rounding its input by 2**h, the peak of its ops)
Branch = Callable[[int], tuple[Dyadic, float]]


@dataclass(frozen=True)
class JoinPlan:
    """Where a join rounds: ``shifts[b]`` for branch b (0: not rounded), the identity onto 2**grid
    (None: not rounded); ``out`` the join's value, ``peak`` the largest count of any of its float32
    ops, ``limit`` the bound ``out`` must stay below (2**24, lower before a sum pool)."""

    shifts: tuple[int, ...]
    grid: int | None
    out: Dyadic
    peak: float
    limit: float
    identity_shifted: float = 0.0  # the identity's integer before its rounding shift (int32)

    @property
    def exact(self) -> bool:
        return (self.peak < EXACT_LIMIT and self.out.peak < self.limit
                and self.identity_shifted < INT32_LIMIT)

    @property
    def rounds(self) -> bool:
        return any(self.shifts) or self.grid is not None


def plan_join(branches: list[Branch], identity: Dyadic | None = None, limit: float = EXACT_LIMIT) -> JoinPlan:
    """The finest exact plan (see the module docstring); if none is found within MAX_GRID_STEPS
    the coarsest one tried (``exact`` False)."""
    cache: dict = {}

    def branch(b: int, h: int) -> tuple[Dyadic, float]:
        if (b, h) not in cache:
            cache[b, h] = branches[b](h)
        return cache[b, h]

    def at(shifts: tuple[int, ...], g: int | None) -> JoinPlan:
        outs = [branch(b, h) for b, h in enumerate(shifts)]
        parts = [o for o, _ in outs]
        pre = 0.0
        if identity is not None:
            if g is not None:
                pre = identity.uniform_peak
                parts.append(identity.rounded(g))
            else:
                parts.append(identity)
        total = parts[0]
        for p in parts[1:]:
            total = total + p
        peak = max([p for _, p in outs] + [total.peak])
        return JoinPlan(shifts, g, total, peak, float(min(limit, EXACT_LIMIT)), pre)

    plan = at((0,) * len(branches), None)
    if plan.exact:
        return plan
    natural = [int(branch(b, 0)[0].exp.min(initial=0)) for b in range(len(branches))]
    finest = min(natural + ([int(identity.exp.min(initial=0))] if identity is not None else []))
    for g in range(finest + 1, finest + 1 + MAX_GRID_STEPS):
        shifts = tuple(max(0, g - e) for e in natural)
        needs = identity is not None and int(identity.exp.min(initial=0)) < g
        plan = at(shifts, g if needs else None)
        if plan.exact:
            return plan
    return plan


__all__ = ["Branch", "Dyadic", "EXACT_LIMIT", "INT32_LIMIT", "JoinPlan", "affine_bound", "dyadic_parts", "plan_join"]
