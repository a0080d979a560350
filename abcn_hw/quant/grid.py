"""Scale grids: where ABC scale factors (alpha, beta) may live.

``float``  -- any float32 value (accurate, but hardware must round: see the compiler's contract).
``fixed``  -- ``k * 2**e`` with a signed integer ``k`` of ``bits`` magnitude bits and a power-of-two
              exponent ``e`` shared by a group (per output channel for alpha, per layer for beta).
              Sums of popcounts times such scales are exact integers times ``2**e``: the hardware
              accumulates ``sum k_m k_n popcount`` with small-integer shift-adds, no multipliers.
``pow2``   -- ``+-2**e`` per scale: each product is a shift.

Rounding goes through a straight-through estimator so learned scales keep their gradients.
"""
from __future__ import annotations

import torch
from brevitas.function.ops_ste import round_ste

from ..errors import UsageError

SCALE_GRIDS = ("float", "fixed", "pow2")


def check_grid(grid: str, bits: int) -> None:
    if grid not in SCALE_GRIDS:
        raise UsageError(f"unknown scale grid '{grid}'", fix=f"use one of {', '.join(SCALE_GRIDS)}")
    if not 1 <= int(bits) <= 16:
        raise UsageError(f"scale bits must be 1..16, got {bits}")


def _floor_log2(x: torch.Tensor) -> torch.Tensor:
    # exact for float32 (frexp is exact), unlike floor(log2(x)) near powers of two
    _, exp = torch.frexp(x)
    return (exp - 1).to(x.dtype)


def snap_to_grid(scale: torch.Tensor, grid: str, bits: int, group_dims: tuple[int, ...]) -> torch.Tensor:
    """Round ``scale`` onto ``grid``.

    ``group_dims`` are the dimensions over which one exponent is shared (for ``fixed``): e.g. for
    alpha of shape (M, O) and one exponent per output channel, ``group_dims=(0,)``. Zeros stay zero.
    """
    if grid == "float":
        return scale
    if grid == "pow2":
        mag = scale.abs().clamp_min(torch.finfo(scale.dtype).tiny)
        e = round_ste(torch.log2(mag.detach())).detach()
        # value = sign * 2**round(log2|s|); STE passes the gradient of |s| through
        snapped = torch.sign(scale.detach()) * torch.exp2(e)
        return scale + (snapped - scale).detach()
    # fixed: one exponent per group, chosen so the largest magnitude uses all `bits`
    mag = scale.detach().abs()
    gmax = mag.amax(dim=group_dims, keepdim=True) if group_dims else mag
    gmax = gmax.clamp_min(torch.finfo(scale.dtype).tiny)
    e = _floor_log2(gmax) - (bits - 1)
    q = torch.exp2(e)
    kmax = float(2 ** bits - 1)
    k = torch.clamp(round_ste(scale / q), -kmax, kmax)
    return k * q


def grid_integers(scale: torch.Tensor, grid: str, bits: int, group_dims: tuple[int, ...]):
    """Decompose an on-grid scale into (integer k, exponent e) with scale == k * 2**e exactly.

    Used by the compiler and tests; returns numpy-friendly tensors. For ``float`` returns None.
    """
    if grid == "float":
        return None
    mag = scale.detach().abs()
    if grid == "pow2":
        mant, exp = torch.frexp(mag)
        return torch.sign(scale).to(torch.int64), (exp - 1).to(torch.int64)
    gmax = mag.amax(dim=group_dims, keepdim=True) if group_dims else mag
    gmax = gmax.clamp_min(torch.finfo(scale.dtype).tiny)
    e = (_floor_log2(gmax) - (bits - 1))
    k = torch.round(scale / torch.exp2(e)).to(torch.int64)
    return k, e.to(torch.int64).expand_as(k)
