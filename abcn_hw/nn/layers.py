"""Drop-in ABC-Net layers.

Each layer owns its input quantizer (like Brevitas' ``QuantConv2d(input_quant=...)``):

* ``act_bases=N``  -- N binary activation bases  A = sum_n beta_n H_{v_n}(x);
* ``input_bits=8`` -- the first layer: unsigned 8-bit input on the grid 2**-8 (not binarized);
* neither         -- float input clipped to [0, 1] (the full-precision reference of the same net).

and its weight quantizer (``weight_bases=M`` binary bases, or ``None`` for float weights).
Output = conv(A, W_q) with W_q = sum_m alpha_m B_m, which equals sum_m sum_n alpha_m beta_n
conv(H_n, B_m): the M*N binary convolutions the compiler later splits out again.

Padding semantics (shared by training, export, lowering and hardware): a binary activation is
padded with the bit 0 in every base, i.e. value -1 per base and -sum_n beta_n for A; an 8-bit or
float input is zero-padded as usual.

Exactness: in eval mode every constant the exported graph carries (pre-shifted weight bases,
alpha, beta, shift constants, batch-norm scale and offset) is computed once and cached, and the
eval forward runs exactly the operations the QONNX graph contains, in the same order. The
Brevitas export functions emit ``BipolarQuant`` / ``Quant`` when traced.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from brevitas.export.onnx.qonnx.function import (
    BrevitasBinaryQuantTorchScriptFn,
    BrevitasQuantTorchScriptFn,
)
from torch import nn

from ..errors import UsageError
from ..quant import ABCActParams, ABCWeightQuant, ActQuantConfig, WeightQuantConfig, abc_act_ste, sign_ste
from ..quant.grid import check_grid, round_ste, snap_to_grid

INPUT_SCALE = 2.0 ** -8  # 8-bit unsigned input grid: x_q = clip(round(x * 256), 0, 255) / 256


def _quantum(values: torch.Tensor, axis: int | None = None):
    """The largest power of two dividing every value (along ``axis``; all values when None), as
    float32 numpy (1.0 for all-zero groups)."""
    v = values.detach().cpu().numpy().astype(np.float64)
    mant, ex = np.frexp(v)
    m = np.round(mant * 2.0 ** 53).astype(np.int64)
    nz = m != 0
    low = np.where(nz, np.abs(m) & -np.abs(m), 1)
    tz = np.round(np.log2(low.astype(np.float64))).astype(np.int64)
    e = np.where(nz, ex.astype(np.int64) - 53 + tz, np.iinfo(np.int64).max)
    e = e.min() if axis is None else e.min(axis=axis)
    e = np.where(e == np.iinfo(np.int64).max, 0, e)
    return np.exp2(e.astype(np.float64)).astype(np.float32)


class _EvalCache:
    """Caches eval-mode constants; recomputed when any source tensor changed (in-place version or
    storage), so weights loaded or trained after ``eval()`` are never stale."""

    def __init__(self):
        self.key = None
        self.values = None

    def get(self, sources, compute):
        key = tuple((t._version, t.data_ptr(), t.device) for t in sources)
        if self.values is None or key != self.key:
            with torch.no_grad():
                self.values = tuple(v.detach().clone() for v in compute())
            self.key = key
        return self.values


def bipolar_quant(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """scale * bipolar(x); traced as QONNX ``BipolarQuant(x, scale)``."""
    return BrevitasBinaryQuantTorchScriptFn.apply(x, scale, None, None, None, None, None)


def int_quant(x: torch.Tensor, scale: float, bits: int, signed: bool) -> torch.Tensor:
    """Uniform integer quantization, traced as QONNX ``Quant`` (rounding ROUND = half to even)."""
    s = torch.tensor(scale, dtype=x.dtype)
    zp = torch.tensor(0.0, dtype=x.dtype)
    bw = torch.tensor(float(bits), dtype=x.dtype)
    return BrevitasQuantTorchScriptFn.apply(x, s, zp, bw, False, signed, "ROUND")


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, g):
        return g


class InputQuant(nn.Module):
    """Unsigned ``bits``-bit input quantizer on the grid 2**-bits (first layer)."""

    def __init__(self, bits: int = 8):
        super().__init__()
        if not 2 <= bits <= 8:
            raise UsageError(f"input bits must be 2..8, got {bits}")
        self.bits = bits
        self.scale = 2.0 ** -bits

    def forward(self, x):
        if self.training:
            q = torch.clamp(_RoundSTE.apply(x / self.scale), 0, 2 ** self.bits - 1)
            return q * self.scale
        return int_quant(x, self.scale, self.bits, signed=False)


class ABCActQuant(nn.Module):
    """A = sum_n beta_n H_{v_n}(x) (optionally padded with bit 0 per base)."""

    def __init__(self, cfg: ActQuantConfig):
        super().__init__()
        self.cfg = cfg
        self.params = ABCActParams(cfg)
        self._cache = _EvalCache()
        #: the input is ``prescale`` times the value the bases act on (a global sum pool feeding this
        #: quantizer: 1/(H*W) goes into the shifts, H_v(x/P) = bipolar(x + c*P); no rounding division)
        self.prescale = 1

    def constants(self):
        """(c, beta): shift constants c_n = v_n - 0.5 and on-grid beta_n, as used in eval/export."""
        p = self.params
        return self._cache.get((p.v, p.beta), lambda: p())

    def forward(self, x, pad: tuple[int, int, int, int] | None = None):
        if self.training:
            c, beta = self.params()
            a = abc_act_ste(x / self.prescale if self.prescale != 1 else x, c, beta)
        else:
            c, beta = self.constants()
            if self.prescale != 1:
                c = c * float(self.prescale)
            terms = [bipolar_quant(x + c[i], beta[i]) for i in range(self.cfg.bases)]
            a = terms[0]
            for t in terms[1:]:
                a = a + t
        if pad is not None and any(pad):
            a = F.pad(a, pad, value=-self.pad_magnitude(beta))
        return a

    @staticmethod
    def pad_magnitude(beta: torch.Tensor) -> float:
        """sum_n beta_n, accumulated left to right in float32 (as the compiler re-derives it)."""
        acc = beta[0].detach().float()
        for b in beta[1:]:
            acc = acc + b.detach().float()
        return float(acc)


class _ABCLayer(nn.Module):
    """Shared machinery of ABCConv2d and ABCLinear."""

    def _init_quant(self, weight_bases, act_bases, input_bits, scale_grid, scale_bits, learn_alpha,
                    per_channel, ternary, where):
        if act_bases is not None and input_bits is not None:
            raise UsageError("a layer takes either act_bases (binary input) or input_bits (first layer), not both", where)
        self.weight_bases = weight_bases
        self.act_bases = act_bases
        self.input_bits = input_bits
        if weight_bases is None:
            self.weight_quant = None
        else:
            wcfg = WeightQuantConfig(bases=weight_bases, per_channel=per_channel, learn_alpha=learn_alpha,
                                     scale_grid=scale_grid, scale_bits=scale_bits, ternary=ternary)
            wcfg.validate(where)
            self.weight_quant = ABCWeightQuant(wcfg)
        if act_bases is not None:
            acfg = ActQuantConfig(bases=act_bases, scale_grid=scale_grid, scale_bits=scale_bits)
            acfg.validate(where)
            self.input_quant = ABCActQuant(acfg)
        elif input_bits is not None:
            self.input_quant = InputQuant(input_bits)
        else:
            self.input_quant = None
        self._wcache = _EvalCache()

    def weight_constants(self):
        """(shifted (M, *W.shape), alpha (M, O)) exactly as exported; eval mode only."""
        sources = (self.weight,)
        if self.weight_quant.cfg.learn_alpha:
            sources += (self.weight_quant.alpha,)
        return self._wcache.get(sources, lambda: self.weight_quant(self.weight))

    def quantized_weight(self):
        if self.weight_quant is None:
            return self.weight
        m = self.weight_quant.cfg.bases
        view = (-1,) + (1,) * (self.weight.dim() - 1)
        if self.training:
            shifted, alpha = self.weight_quant(self.weight)
            terms = [sign_ste(shifted[i]) * alpha[i].view(view) for i in range(m)]
        else:
            shifted, alpha = self.weight_constants()
            terms = [bipolar_quant(shifted[i], alpha[i].view(view)) for i in range(m)]
        self._alpha_seen = alpha.detach()
        w = terms[0]
        for t in terms[1:]:
            w = w + t
        return w

    def output_quantum(self) -> torch.Tensor | None:
        """(O,) powers of two q[o] such that every output of the last forward is an integer multiple
        of q[o] (alpha's and beta's lowest set bits; the input grid 2**-bits of the first layer),
        or None for float weights or inputs. A FixedPointBatchNorm after the layer snaps s*q onto
        its grid, so the batch norm's output lands on that grid exactly."""
        alpha = getattr(self, "_alpha_seen", None)
        if self.weight_quant is None or alpha is None:
            return None
        if isinstance(self.input_quant, ABCActQuant):
            q_in = _quantum(self.input_quant.constants()[1] if not self.training else self.input_quant.params()[1])
        elif isinstance(self.input_quant, InputQuant):
            q_in = self.input_quant.scale
        else:
            return None
        return torch.from_numpy(_quantum(alpha, axis=0) * np.float32(q_in))

    def output_bound(self) -> np.ndarray | None:
        """(O,) float64: the worst-case |output| of the last forward in quanta of
        :meth:`output_quantum` (K * xmax * sum|b| * sum_m |a[m, o]|, abcn_hw.exactness), or None
        where :meth:`output_quantum` is None."""
        from ..exactness import dyadic_operands

        alpha = getattr(self, "_alpha_seen", None)
        if self.weight_quant is None or alpha is None:
            return None
        k = int(self.weight[0].numel())
        a = alpha.detach().cpu().numpy()
        if isinstance(self.input_quant, ABCActQuant):
            beta = self.input_quant.constants()[1] if not self.training else self.input_quant.params()[1]
            return dyadic_operands(a, beta.detach().cpu().numpy()).bound(k)
        if isinstance(self.input_quant, InputQuant):
            return dyadic_operands(a, None, self.input_quant.scale, 2 ** self.input_quant.bits - 1).bound(k)
        return None

    def quantize_input(self, x, pad=None):
        """Returns (input, explicit_pad_done)."""
        if isinstance(self.input_quant, ABCActQuant):
            return self.input_quant(x, pad), True
        if self.input_quant is not None:
            return self.input_quant(x), False
        return torch.clamp(x, 0.0, 1.0) if self.clip_float_input else x, False


class ABCConv2d(_ABCLayer):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, *, weight_bases: int | None = 1, act_bases: int | None = None,
                 input_bits: int | None = None, scale_grid: str = "fixed", scale_bits: int = 4,
                 learn_alpha: bool = False, per_channel: bool = True, ternary: bool = False,
                 bias: bool = False, clip_float_input: bool = True):
        super().__init__()
        where = f"ABCConv2d({in_channels}, {out_channels}, k={kernel_size})"
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels), ("kernel_size", kernel_size), ("stride", stride)):
            if not isinstance(v, int) or v < 1:
                raise UsageError(f"{name} must be a positive integer, got {v!r}", where)
        if not isinstance(padding, int) or padding < 0:
            raise UsageError(f"padding must be a non-negative integer, got {padding!r}", where)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.clip_float_input = clip_float_input
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self._init_quant(weight_bases, act_bases, input_bits, scale_grid, scale_bits, learn_alpha,
                         per_channel, ternary, where)

    def forward(self, x):
        p = self.padding
        x, padded = self.quantize_input(x, (p, p, p, p) if p else None)
        w = self.quantized_weight()
        return F.conv2d(x, w, self.bias, stride=self.stride, padding=0 if padded else p)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, k={self.kernel_size}, s={self.stride}, p={self.padding}, "
                f"M={self.weight_bases}, N={self.act_bases}, input_bits={self.input_bits}")


class ABCLinear(_ABCLayer):
    def __init__(self, in_features: int, out_features: int, *, weight_bases: int | None = 1,
                 act_bases: int | None = None, input_bits: int | None = None, scale_grid: str = "fixed",
                 scale_bits: int = 4, learn_alpha: bool = False, per_channel: bool = True,
                 ternary: bool = False, bias: bool = False, clip_float_input: bool = True):
        super().__init__()
        where = f"ABCLinear({in_features}, {out_features})"
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, int) or v < 1:
                raise UsageError(f"{name} must be a positive integer, got {v!r}", where)
        self.in_features, self.out_features = in_features, out_features
        self.clip_float_input = clip_float_input
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self._init_quant(weight_bases, act_bases, input_bits, scale_grid, scale_bits, learn_alpha,
                         per_channel, ternary, where)

    def forward(self, x):
        x, _ = self.quantize_input(x)
        return F.linear(x, self.quantized_weight(), self.bias)

    def extra_repr(self):
        return (f"{self.in_features}, {self.out_features}, M={self.weight_bases}, N={self.act_bases}, "
                f"input_bits={self.input_bits}")


class ABCBatchNorm(nn.Module):
    """Batch norm whose eval forward is exactly ``x * s + t`` (two rounded float32 operations, in
    that order, exported as Mul and Add), with s = gamma / sqrt(var + eps), t = beta - mean * s
    computed once. The compiler folds the same two operations into integer thresholds exactly;
    a fused BatchNormalization kernel would round differently."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self._cache = _EvalCache()

    def affine(self):
        """(s, t) with eval output x * s + t."""

        def compute():
            s = self.weight / torch.sqrt(self.running_var + self.eps)
            return s, self.bias - self.running_mean * s

        return self._cache.get((self.weight, self.bias, self.running_mean, self.running_var), compute)

    def forward(self, x, unit=None):
        """``unit``: the input's quantum (ignored here; see FixedPointBatchNorm)."""
        if x.dim() not in (2, 4) or x.shape[1] != self.num_features:
            raise UsageError(f"ABCBatchNorm({self.num_features}) got input of shape {tuple(x.shape)}")
        if self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                training=True, momentum=self.momentum, eps=self.eps)
        s, t = self.affine()
        view = (1, -1, 1, 1) if x.dim() == 4 else (1, -1)
        return x * s.view(view) + t.view(view)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}"


class FixedPointBatchNorm(ABCBatchNorm):
    """Batch norm whose affine lives on a dyadic grid (the joins of a residual network).

    Eval output ``x * s + t`` (Mul then Add, as :class:`ABCBatchNorm`). Given the input's quantum
    ``unit`` (every input is an integer multiple of unit[c], a power of two: the preceding ABC
    layer's :meth:`~_ABCLayer.output_quantum`), ``s * unit`` is snapped onto the ``fixed`` grid
    with ``scale_bits`` magnitude bits and ONE exponent e for the layer, and ``t`` onto multiples of
    2**e: every output channel is then an integer times the same 2**e, and branches with similar
    grids add exactly (the lowering's ResidualAdd, with small integer factors). Without ``unit``,
    s gets one exponent per channel and t the grid 2**-shift_bits. The output is exact in float32
    while the bounds the lowering checks hold. Training uses batch statistics with the same
    snapping through a straight-through estimator.
    """

    def __init__(self, num_features: int, scale_bits: int = 4, shift_bits: int = 8, eps: float = 1e-5,
                 momentum: float = 0.1):
        super().__init__(num_features, eps, momentum)
        check_grid("fixed", scale_bits)
        if not isinstance(shift_bits, int) or not 0 <= shift_bits <= 24:
            raise UsageError(f"batch-norm shift bits must be an integer 0..24, got {shift_bits!r}")
        self.scale_bits, self.shift_bits = scale_bits, shift_bits

    def snap(self, s: torch.Tensor, t: torch.Tensor, unit: torch.Tensor | None = None):
        """(s, t) onto their grids (straight-through gradients)."""
        if unit is None:
            q = 2.0 ** self.shift_bits
            return snap_to_grid(s, "fixed", self.scale_bits, group_dims=()), round_ste(t * q) / q
        unit = unit.to(s.dtype)
        v = snap_to_grid(s * unit, "fixed", self.scale_bits, group_dims=(0,))
        mag = (s.detach() * unit).abs().amax().clamp_min(torch.finfo(s.dtype).tiny)
        grid = torch.exp2(torch.floor(torch.log2(mag)) - (self.scale_bits - 1))
        return v / unit, round_ste(t / grid) * grid

    def affine(self, unit: torch.Tensor | None = None):
        def compute():
            s = self.weight / torch.sqrt(self.running_var + self.eps)
            return self.snap(s, self.bias - self.running_mean * s, unit)

        sources = (self.weight, self.bias, self.running_mean, self.running_var)
        if unit is None:
            return self._cache.get(sources, compute)
        # cached per input quantum as well (every quantum a join plan tried), so a traced export
        # sees constants computed by PyTorch
        version = tuple((t._version, t.data_ptr()) for t in sources)
        cache = getattr(self, "_unit_cache", None)
        if cache is None or cache[0] != version:
            cache = self._unit_cache = (version, {})
        key = unit.detach().cpu().numpy().tobytes()
        if key not in cache[1]:
            with torch.no_grad():
                cache[1][key] = tuple(v.detach().clone() for v in compute())
        return cache[1][key]

    def batch_affine(self, x: torch.Tensor):
        """Training: (s, t) from the batch statistics of ``x`` (before snapping; differentiable),
        updating the running statistics once."""
        dims = (0, 2, 3) if x.dim() == 4 else (0,)
        mean = x.mean(dim=dims)
        var = x.var(dim=dims, unbiased=False)
        with torch.no_grad():
            n = x.numel() // x.shape[1]
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean.detach())
            unbiased = var.detach() * (n / max(n - 1, 1))
            self.running_var.mul_(1 - self.momentum).add_(self.momentum * unbiased)
        s = self.weight / torch.sqrt(var + self.eps)
        return s, self.bias - mean * s

    def snapped(self, raw, unit: torch.Tensor | None):
        """(s, t) as the forward applies them: the eval constants (``raw`` None) or ``raw`` (from
        :meth:`batch_affine`) snapped for the input quantum ``unit``."""
        if raw is None:
            with torch.no_grad():
                return self.affine(unit)
        return self.snap(raw[0], raw[1], unit)

    def join_branch(self, unit: torch.Tensor, acc_bound: np.ndarray, raw=None):
        """The :data:`abcn_hw.nn.joins.Branch` of this batch norm on an input of quantum ``unit``
        (powers of two) and worst-case counts ``acc_bound``: shift h -> (output, peak)."""
        from .joins import Dyadic, affine_bound

        u = np.round(np.log2(unit.detach().cpu().numpy().astype(np.float64))).astype(np.int64)
        acc = np.asarray(acc_bound, np.float64)

        def branch(h: int):
            s, t = self.snapped(raw, unit * 2.0 ** h)
            x = Dyadic(u + h, np.round(acc * 2.0 ** -h))  # round half to even: monotone
            return affine_bound(x, s.detach().cpu().numpy(), t.detach().cpu().numpy())

        return branch

    def forward(self, x, unit=None, shift: int = 0, raw=None):
        """``unit``: the input's quantum (see the class docstring); ``shift`` h > 0 first rounds
        the input onto unit * 2**h (half to even, exact in float32) and snaps s on that unit (a
        residual join's requantisation, :mod:`abcn_hw.nn.joins`); ``raw``: training statistics
        already taken by :meth:`batch_affine`."""
        if x.dim() not in (2, 4) or x.shape[1] != self.num_features:
            raise UsageError(f"FixedPointBatchNorm({self.num_features}) got input of shape {tuple(x.shape)}")
        view = (1, -1, 1, 1) if x.dim() == 4 else (1, -1)
        if self.training and raw is None:
            raw = self.batch_affine(x)
        if shift:
            if unit is None:
                raise UsageError("FixedPointBatchNorm: a rounding shift needs the input's quantum (unit)")
            unit = unit * 2.0 ** shift
            grid = unit.to(x.dtype).view(view)
            x = (round_ste(x * (1.0 / grid)) if self.training else torch.round(x * (1.0 / grid))) * grid
        s, t = self.snapped(raw if self.training else None, unit)
        return x * s.view(view) + t.view(view)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, scale_bits={self.scale_bits}, shift_bits={self.shift_bits}"


class GlobalSumPool2d(nn.Module):
    """Sum over H, W: (B, C, H, W) -> (B, C). A global average pool whose 1/(H*W) the next ABC
    layer's activation quantizer takes into its shifts (``ABCActQuant.prescale``), so no rounding
    division happens anywhere; ``mean=True`` (the float reference) divides.

    The sum is taken in float64 and rounded once to float32 (exported as Cast - ReduceSum - Cast):
    the inputs are integers times a power of two per channel, so the float64 sum is exact in every
    order (below 2**53 quanta) and the result is the correctly rounded float32 of the exact sum,
    the same on every machine -- a float32 sum of H*W such values would round in the kernel's
    order once it passes 2**24 quanta. The lowering computes the exact integer sum and derives the
    classifier's thresholds on that rounded value (docs/residual-networks.md)."""

    def __init__(self, mean: bool = False):
        super().__init__()
        self.mean = mean

    def forward(self, x):
        if self.mean:
            return x.mean(dim=(2, 3))
        return x.double().sum(dim=(2, 3)).to(x.dtype)

    def extra_repr(self):
        return "mean" if self.mean else "sum"
