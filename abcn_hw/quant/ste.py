"""Straight-through estimators and the bipolar sign used everywhere (sign(0) = +1)."""
from __future__ import annotations

import torch


def bipolar(x: torch.Tensor) -> torch.Tensor:
    """+1 where x >= 0, -1 elsewhere (the QONNX BipolarQuant convention; ONNX Sign(0) is 0)."""
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


class _SignSTE(torch.autograd.Function):
    """Forward: bipolar(x). Backward: identity (weights)."""

    @staticmethod
    def forward(ctx, x):
        return bipolar(x)

    @staticmethod
    def backward(ctx, g):
        return g


class _HvSTE(torch.autograd.Function):
    """Forward: bipolar(t) with t = x + v - 0.5. Backward: 1 where 0 <= x + v <= 1, i.e. |t| <= 0.5.

    This is the derivative of clip(x + v, 0, 1), the function H_v thresholds at 0.5.
    """

    @staticmethod
    def forward(ctx, t):
        ctx.save_for_backward(t)
        return bipolar(t)

    @staticmethod
    def backward(ctx, g):
        (t,) = ctx.saved_tensors
        return g * (t.abs() <= 0.5).to(g.dtype)


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    return _SignSTE.apply(x)


def hv_ste(t: torch.Tensor) -> torch.Tensor:
    return _HvSTE.apply(t)
