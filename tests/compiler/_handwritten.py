"""ABC nets written by hand in Brevitas, the way the paper writes a layer (not with abcn_hw.nn):
N shifted ``QuantIdentity`` binary activation branches, M ``QuantConv2d`` / ``QuantLinear``
branches with per-channel scales, ``sum_n beta_n sum_m conv(A_n, B_m)``, then ``nn.BatchNorm2d``.

Every scale is dyadic (alpha = k/8, beta and the shifts multiples of 1/8) so the exported float
arithmetic of the joins is exact and the lowered graph equals the executed export on every
element, on any CPU (batch norm is float but is executed verbatim by the threshold derivation).
"""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from dataclasses import dataclass

import numpy as np
import onnx
import torch
import torch.nn as nn
from brevitas.core.function_wrapper import TensorClamp
from brevitas.core.scaling import ScalingImplType
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from brevitas.quant import Int8ActPerTensorFixedPoint, SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst

SHIFTS = [0.0, 0.5, -0.5, 1.0, -1.0, 0.25, -0.25]
BETAS = [1.0, 0.5, 0.25, 0.75, 0.125, 0.375, 0.625]


class BinaryWeightPerChannel(SignedBinaryWeightPerTensorConst):
    """Binary weights with a learned per-output-channel scale alpha (as a Brevitas user writes it)."""

    scaling_impl_type = ScalingImplType.PARAMETER
    scaling_per_output_channel = True
    scaling_const = None
    scaling_init = 0.5
    tensor_clamp_impl = TensorClamp


@dataclass(frozen=True)
class Spec:
    m: int = 2
    n: int = 2
    kind: str = "conv"  # conv | fc
    beta: str = "param"  # param | const | alpha (folded into the weight scale) | act (before the product)
    pool: bool = False
    first: str = "int8"  # int8 | binary (binarized input, re-quantized shifted bases)
    dynamo: bool = False
    channels: int = 4
    classes: int = 5
    bias: bool = False  # QuantLinear(bias=True): Gemm / MatMul + Add with a float bias


def _set_bias(op, rng) -> None:
    """A dyadic bias (k/8), so the joined sum stays exact in float32."""
    if getattr(op, "bias", None) is not None:
        with torch.no_grad():
            op.bias.copy_(torch.from_numpy(rng.integers(-8, 9, size=tuple(op.bias.shape)).astype(np.float32) / 8))


def _set_alpha(q, rng) -> None:
    """Dyadic per-channel scales k/8 on the weight quantizer's parameter."""
    for name, prm in q.named_parameters():
        if "scaling" in name or "value" in name:
            with torch.no_grad():
                prm.copy_(torch.from_numpy(rng.integers(1, 9, size=tuple(prm.shape)).astype(np.float32) / 8))


class ABCLayer(nn.Module):
    """One ABC layer: sum_n beta_n sum_m op_m(H(x + c_n)), N activation and M weight branches."""

    def __init__(self, make_op, m: int, n: int, beta: str, rng, shift_offset: int = 0, bn: nn.Module | None = None,
                 negate: tuple = ()):
        super().__init__()
        self.shifts = SHIFTS[shift_offset:shift_offset + n]
        self.negate = negate  # bases that read -x (a re-quantized inversion)
        self.acts = nn.ModuleList(QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)
                                  for _ in range(n))
        betas = BETAS[:n]
        self.beta_mode = beta
        if beta == "alpha":  # beta_n folded into the weight scale: one op per (n, m), shared weights
            ops = [[make_op() for _ in range(m)] for _ in range(n)]
            for i in range(n):
                for j in range(m):
                    ops[i][j].weight = ops[0][j].weight
            for j in range(m):
                _set_alpha(ops[0][j].weight_quant, rng)
                for i in range(1, n):
                    for (_, p0), (_, p) in zip(ops[0][j].weight_quant.named_parameters(),
                                               ops[i][j].weight_quant.named_parameters()):
                        with torch.no_grad():
                            p.copy_(p0 * betas[i] / betas[0])
            self.ops = nn.ModuleList(nn.ModuleList(r) for r in ops)
            for r in ops:
                for op in r:
                    _set_bias(op, rng)
        else:
            row = [make_op() for _ in range(m)]
            for op in row:
                _set_alpha(op.weight_quant, rng)
                _set_bias(op, rng)
            self.ops = nn.ModuleList([nn.ModuleList(row)])
        if beta == "param":
            self.beta = nn.Parameter(torch.tensor(betas))
        else:
            self.betas = betas
        self.bn = bn

    def forward(self, x):
        out = None
        for i, act in enumerate(self.acts):
            src = -x if i in self.negate else x
            h = act(src + self.shifts[i]) if self.shifts[i] else act(src)
            row = self.ops[i if self.beta_mode == "alpha" else 0]
            if self.beta_mode == "act":
                h = h * self.betas[i]
            s = None
            for op in row:
                y = op(h)
                s = y if s is None else s + y
            if self.beta_mode == "param":
                s = self.beta[i] * s
            elif self.beta_mode == "const":
                s = s * self.betas[i]
            out = s if out is None else out + s
        return self.bn(out) if self.bn is not None else out


class HandNet(nn.Module):
    def __init__(self, spec: Spec, seed: int = 0):
        super().__init__()
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        c, m, n = spec.channels, spec.m, spec.n
        self.spec = spec
        conv = spec.kind == "conv"

        def conv_op(cin, cout):
            return lambda: QuantConv2d(cin, cout, 3, bias=False, weight_quant=BinaryWeightPerChannel)

        def fc_op(fin, fout):
            return lambda: QuantLinear(fin, fout, bias=spec.bias, weight_quant=BinaryWeightPerChannel)

        side = 14
        if spec.first == "int8":
            self.inq = QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True)
            if conv:
                self.l0 = ABCLayer(conv_op(1, c), m, 1, "const", rng, bn=nn.BatchNorm2d(c))
            else:
                self.l0 = ABCLayer(fc_op(side * side, 8 * c), m, 1, "const", rng, bn=nn.BatchNorm1d(8 * c))
            self.l0.acts = nn.ModuleList([nn.Identity()])  # the int8 input quantizer is the only act
        else:  # binarized input; the first ABC layer re-quantizes shifted (and one inverted) copies of it
            self.inq = QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=False)
            negate = (1,) if n > 1 else ()
            if conv:
                self.l0 = ABCLayer(conv_op(1, c), m, n, spec.beta, rng, bn=nn.BatchNorm2d(c), negate=negate)
            else:
                self.l0 = ABCLayer(fc_op(side * side, 8 * c), m, n, spec.beta, rng, bn=nn.BatchNorm1d(8 * c),
                                   negate=negate)
            self.l0.shifts = [0.0, 0.5, -0.25, 0.75, -0.5][:n]
        if conv:
            self.l1 = ABCLayer(conv_op(c, c), m, n, spec.beta, rng, bn=nn.BatchNorm2d(c))
            out_side = (side - 4) // (2 if spec.pool else 1)
            feat = c * out_side * out_side
        else:
            self.l1 = ABCLayer(fc_op(8 * c, 8 * c), m, n, spec.beta, rng, bn=nn.BatchNorm1d(8 * c))
            feat = 8 * c
        self.l2 = ABCLayer(fc_op(feat, spec.classes), m, n, spec.beta, rng, shift_offset=1,
                           bn=nn.BatchNorm1d(spec.classes))

    def forward(self, x):
        if self.spec.kind == "fc":
            x = x.flatten(1)
        if self.spec.first == "int8":
            y = self.l0(self.inq(x))
        else:
            y = self.l0(self.inq(x - 0.5))
        y = self.l1(y)
        if self.spec.pool:
            y = nn.functional.max_pool2d(y, 2)
        return self.l2(y.flatten(1))


def inputs(n: int, offset: int = 0) -> np.ndarray:
    """Bundled MNIST test digits, centre 14 x 14."""
    from _builders import mnist

    x, _ = mnist("test")
    return np.ascontiguousarray(x[offset:offset + n, :, 7:21, 7:21])


def build(spec: Spec, seed: int = 0, calib: int = 200) -> HandNet:
    from _builders import calibrate_bn

    net = HandNet(spec, seed)
    calibrate_bn(net, inputs(calib, offset=5000))
    rng = np.random.default_rng(seed + 1)
    for mod in net.modules():  # some negative batch-norm scales: thresholds flip direction
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                mod.weight[torch.from_numpy(rng.random(mod.num_features) < 0.25)] *= -1
    return net.eval()


def quiet_export_qonnx(net, example: np.ndarray, dynamo: bool) -> onnx.ModelProto:
    """Plain brevitas export_qonnx (dynamo or TorchScript exporter) of ``net`` on ``example``, its
    warnings and prints silenced, nothing cleaned up."""
    from brevitas.export import export_qonnx

    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.onnx")
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            export_qonnx(net, torch.from_numpy(example), export_path=raw, dynamo=dynamo)
        return onnx.load(raw)


def export(net: HandNet, dynamo: bool) -> onnx.ModelProto:
    """Plain brevitas export_qonnx (dynamo or TorchScript exporter), nothing cleaned up."""
    return quiet_export_qonnx(net, inputs(1), dynamo)


def hand_net(spec: Spec, seed: int = 0) -> tuple[onnx.ModelProto, np.ndarray]:
    return export(build(spec, seed), spec.dynamo), inputs(200)
