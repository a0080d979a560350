"""ABC weight bases: W ~ sum_m alpha_m B_m,  B_m = sign(W - mean(W) + u_m std(W)).

Statistics and alpha are per output channel (dimension 0) by default, per tensor as an option.
alpha is the least-squares solution of min ||W - sum_m alpha_m B_m||^2 recomputed at every forward
(no gradient through it, as in the paper) unless ``learn_alpha`` is set, in which case it is a
parameter initialised by least squares on the first forward. ``ternary`` mode gives weights in
{-a, 0, +a} as two fixed bases: a/2 (sign(W - D) + sign(W + D)), D = 0.7 mean|W| (TWN).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UsageError
from .grid import check_grid, snap_to_grid
from .ste import bipolar

MAX_BASES = 8


def base_shifts(m: int) -> torch.Tensor:
    """u_m evenly spread over [-1, 1]; u = 0 for a single base."""
    if m == 1:
        return torch.zeros(1)
    return torch.linspace(-1.0, 1.0, m)


def least_squares_alpha(w2: torch.Tensor, bases: torch.Tensor) -> torch.Tensor:
    """Per-row least squares. ``w2``: (O, K); ``bases``: (M, O, K) of +-1. Returns alpha (M, O).

    Solves the M x M normal equations per row with a pseudo-inverse, so identical bases (a
    rank-deficient system) get the minimum-norm solution instead of NaN.
    """
    b = bases.permute(1, 0, 2).to(torch.float64)  # (O, M, K)
    gram = b @ b.transpose(1, 2)  # (O, M, M)
    rhs = b @ w2.to(torch.float64).unsqueeze(-1)  # (O, M, 1)
    alpha = torch.linalg.pinv(gram, hermitian=True) @ rhs
    return alpha.squeeze(-1).t().to(w2.dtype)


@dataclass(frozen=True)
class WeightQuantConfig:
    bases: int = 1
    per_channel: bool = True
    learn_alpha: bool = False
    scale_grid: str = "fixed"
    scale_bits: int = 4
    ternary: bool = False

    def validate(self, where: str = "weight quantizer") -> None:
        if not isinstance(self.bases, int) or not 1 <= self.bases <= MAX_BASES:
            raise UsageError(f"weight bases M must be an integer in 1..{MAX_BASES}, got {self.bases!r}", where)
        if self.ternary and self.bases != 2:
            raise UsageError("ternary weights are two fixed binary bases: use bases=2", where)
        check_grid(self.scale_grid, self.scale_bits)


class ABCWeightQuant(nn.Module):
    """Quantizes a weight tensor (O, ...) into M binary bases and per-channel scales."""

    def __init__(self, cfg: WeightQuantConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.register_buffer("u", base_shifts(cfg.bases), persistent=False)
        if cfg.learn_alpha:
            self.alpha = nn.Parameter(torch.zeros(0))  # sized on first forward
            self.register_buffer("alpha_initialised", torch.zeros((), dtype=torch.bool))

    # -- decomposition -------------------------------------------------------------------------
    def shifted(self, w: torch.Tensor) -> torch.Tensor:
        """The M pre-shifted tensors W'_m (M, *w.shape) whose bipolar sign is B_m."""
        o = w.shape[0]
        w2 = w.reshape(o, -1)
        if self.cfg.ternary:
            delta = 0.7 * (w2.abs().mean(dim=1, keepdim=True) if self.cfg.per_channel else w2.abs().mean())
            delta = delta.expand(o, 1) if delta.dim() == 0 else delta
            shifts = torch.stack([-delta, delta])  # (2, O, 1)
            return (w2.unsqueeze(0) + shifts).reshape(2, *w.shape)
        if self.cfg.per_channel:
            mean = w2.mean(dim=1, keepdim=True)
            std = w2.std(dim=1, unbiased=False, keepdim=True)
        else:
            mean = w2.mean().expand(o, 1)
            std = w2.std(unbiased=False).expand(o, 1)
        u = self.u.to(w.dtype).view(-1, 1, 1)
        return ((w2 - mean).unsqueeze(0) + u * std.unsqueeze(0)).reshape(self.cfg.bases, *w.shape)

    def _alpha_from_data(self, w: torch.Tensor, bases: torch.Tensor) -> torch.Tensor:
        o = w.shape[0]
        w2 = w.detach().reshape(o, -1)
        b2 = bases.detach().reshape(self.cfg.bases, o, -1)
        if self.cfg.ternary:
            # tied scale a/2 on both bases; a = mean |W| over the non-zero ternary positions
            t = (b2[0] + b2[1]) / 2
            nz = (t != 0).to(w.dtype)
            a = (w2.abs() * nz).sum(1) / nz.sum(1).clamp_min(1)
            if not self.cfg.per_channel:
                a = ((w2.abs() * nz).sum() / nz.sum().clamp_min(1)).expand(o)
            return torch.stack([a / 2, a / 2])
        if self.cfg.per_channel:
            return least_squares_alpha(w2, b2)
        a = least_squares_alpha(w2.reshape(1, -1), b2.reshape(self.cfg.bases, 1, -1))
        return a.expand(self.cfg.bases, o)

    def forward(self, w: torch.Tensor):
        """Returns (shifted, alpha): the M pre-shifted tensors W'_m (B_m = bipolar(W'_m)) and the
        on-grid scales alpha (M, O). The layer combines them as sum_m alpha_m * B_m."""
        shifted = self.shifted(w)
        if self.cfg.learn_alpha:
            if not bool(self.alpha_initialised):
                with torch.no_grad():
                    self.alpha.data = self._alpha_from_data(w, bipolar(shifted.detach()))
                    self.alpha_initialised.fill_(True)
            alpha = self.alpha
        else:
            alpha = self._alpha_from_data(w, bipolar(shifted.detach()))
        alpha = snap_to_grid(alpha, self.cfg.scale_grid, self.cfg.scale_bits, group_dims=(0,))
        return shifted, alpha

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "alpha"
        if self.cfg.learn_alpha and key in state_dict:
            self.alpha.data = torch.empty_like(state_dict[key])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
