"""ABC activation bases: A ~ sum_n beta_n H_{v_n}(x),  H_v(x) = +1 if clip(x + v, 0, 1) >= 0.5 else -1.

Because clip is monotone and 0.5 lies inside [0, 1], H_v(x) = bipolar(x + v - 0.5) exactly; the
clip only shapes the straight-through gradient (1 inside 0 <= x + v <= 1, 0 outside). The shift
constant c_n = v_n - 0.5 is what the exported graph adds before each BipolarQuant.

Shifts v_n start evenly spaced so the N thresholds x = 0.5 - v_n sit at (n + 0.5) / N inside [0, 1];
v and beta are learned. beta may be restricted to a scale grid (one exponent per layer).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UsageError
from .grid import check_grid, snap_to_grid
from .weight import MAX_BASES


def initial_shifts(n: int) -> torch.Tensor:
    return torch.tensor([0.5 - (i + 0.5) / n for i in range(n)], dtype=torch.float32)


@dataclass(frozen=True)
class ActQuantConfig:
    bases: int = 1
    learn_shift: bool = True
    learn_beta: bool = True
    scale_grid: str = "fixed"
    scale_bits: int = 4

    def validate(self, where: str = "activation quantizer") -> None:
        if not isinstance(self.bases, int) or not 1 <= self.bases <= MAX_BASES:
            raise UsageError(f"activation bases N must be an integer in 1..{MAX_BASES}, got {self.bases!r}", where)
        check_grid(self.scale_grid, self.scale_bits)


class ABCActParams(nn.Module):
    """Holds v_n and beta_n; returns the shift constants c_n = v_n - 0.5 and the on-grid beta_n."""

    def __init__(self, cfg: ActQuantConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        v = initial_shifts(cfg.bases)
        beta = torch.full((cfg.bases,), 1.0 / cfg.bases)
        self.v = nn.Parameter(v, requires_grad=cfg.learn_shift)
        self.beta = nn.Parameter(beta, requires_grad=cfg.learn_beta)

    def forward(self):
        c = self.v - 0.5
        beta = snap_to_grid(self.beta, self.cfg.scale_grid, self.cfg.scale_bits, group_dims=(0,))
        return c, beta
