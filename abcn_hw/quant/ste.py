"""Straight-through estimators and the bipolar sign used everywhere (sign(0) = +1)."""
from __future__ import annotations

import torch


def bipolar(x: torch.Tensor) -> torch.Tensor:
    """+1 where x >= 0, -1 elsewhere (the QONNX BipolarQuant convention; ONNX Sign(0) is 0)."""
    return (x >= 0).to(x.dtype) * 2 - 1


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


class _ABCActSTE(torch.autograd.Function):
    """Forward: A = sum_n beta_n bipolar(x + c_n), summed over n in order. Backward: the same
    gradients as sum_n beta_n hv_ste(x + c_n) (straight-through window |x + c_n| <= 0.5), computed
    for all N bases in one pass instead of N autograd branches (training speed; see
    scripts/bench_train.py)."""

    @staticmethod
    def forward(ctx, x, c, beta):
        shape = (-1,) + (1,) * x.dim()
        t = x.unsqueeze(0) + c.view(shape)  # (N, *x.shape)
        s = bipolar(t)
        a = s[0] * beta[0]
        for i in range(1, s.shape[0]):
            a = a + s[i] * beta[i]
        ctx.save_for_backward(t.abs() <= 0.5, s.to(torch.int8), beta)
        return a

    @staticmethod
    def backward(ctx, g):
        window, s, beta = ctx.saved_tensors
        n = beta.shape[0]
        dims = tuple(range(1, window.dim()))
        gw = g.unsqueeze(0) * window  # (N, *x.shape): g inside each base's window, 0 outside
        grad_x = grad_c = grad_beta = None
        if ctx.needs_input_grad[0]:
            grad_x = gw[0] * beta[0]
            for i in range(1, n):
                grad_x = grad_x + gw[i] * beta[i]
        if ctx.needs_input_grad[1]:
            grad_c = gw.sum(dim=dims) * beta
        if ctx.needs_input_grad[2]:
            grad_beta = (g.unsqueeze(0) * s).sum(dim=dims)
        return grad_x, grad_c, grad_beta


def abc_act_ste(x: torch.Tensor, c: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """sum_n beta_n H_{v_n}(x) with c_n = v_n - 0.5 (training forward of the ABC activation)."""
    return _ABCActSTE.apply(x, c, beta)


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    return _SignSTE.apply(x)


def hv_ste(t: torch.Tensor) -> torch.Tensor:
    return _HvSTE.apply(t)
