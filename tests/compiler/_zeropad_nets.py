"""Zero-padded binary nets written the way a Brevitas user writes them: QuantConv2d with a binary
(or 2-bit) weight quantizer and ``padding=p``, binary QuantIdentity activations (one base, or N
shifted bases summed), nn.BatchNorm2d, an 8-bit input quantizer with a zero-padded first conv.
Scales are dyadic (constant binary scales, power-of-two fixed-point scales), so the lowered graph
must equal the executed export on every element."""
from __future__ import annotations

import contextlib
from functools import lru_cache
import io
import os
import tempfile
import warnings

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import nn


def _quantizers():
    from brevitas.quant import (Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint,
                                SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst,
                                Uint8ActPerTensorFixedPoint)

    class BinW(SignedBinaryWeightPerTensorConst):
        scaling_const = 0.25

    class TwoBitW(Int8WeightPerTensorFixedPoint):  # {-1, 0, 1} * 2^e: two thermometer weight bases
        bit_width = 2
        narrow_range = True

    class TwoBitA(Int8ActPerTensorFixedPoint):  # {-1, 0, 1} * 2^e: two thermometer activation bases
        bit_width = 2
        narrow_range = True

    def bin_act(beta: float):
        return type(f"BinA{beta}", (SignedBinaryActPerTensorConst,), {"scaling_const": beta})

    return BinW, TwoBitW, bin_act, Uint8ActPerTensorFixedPoint, TwoBitA


class ShiftedBinaryActs(nn.Module):
    """A = sum_n beta_n * sign(x + c_n): N binary QuantIdentity branches (an ABC activation)."""

    def __init__(self, betas, shifts):
        super().__init__()
        from brevitas.nn import QuantIdentity

        bin_act = _quantizers()[2]
        self.shifts = list(shifts)
        self.q = nn.ModuleList(QuantIdentity(act_quant=bin_act(b)) for b in betas)

    def forward(self, x):
        out = self.q[0](x + self.shifts[0]) if self.shifts[0] else self.q[0](x)
        for q, c in zip(self.q[1:], self.shifts[1:]):
            out = out + q(x + c)
        return out


class ZeroPadNet(nn.Module):
    """uint8 input -> QuantConv2d(3x3, padding 1) -> BN -> binary act (N bases) -> QuantConv2d(k,
    stride s, padding p; binary or 2-bit weights) -> BN -> binary or 2-bit act -> [QuantConv2d(3x3, pad 1) ->
    BN -> binary act] -> QuantLinear, or a final QuantConv2d(3x3, padding 1) whose output (flattened) is
    the model output."""

    def __init__(self, k=3, s=1, p=1, n_bases=1, w_bits=1, hw=(10, 12), final="fc", c=(6, 5, 4), classes=4,
                 a2_bits=1):
        super().__init__()
        from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear

        BinW, TwoBitW, bin_act, U8, TwoBitA = _quantizers()
        wq = BinW if w_bits == 1 else TwoBitW
        self.inp = QuantIdentity(act_quant=U8, return_quant_tensor=True)
        self.c1 = QuantConv2d(1, c[0], 3, padding=1, weight_quant=BinW, bias=False)
        self.bn1 = nn.BatchNorm2d(c[0])
        betas = [0.5, 0.25, 0.125, 0.5, 1.0][:n_bases]
        shifts = [0.0, -0.5, 0.5, -1.0, 1.0][:n_bases]
        self.a1 = ShiftedBinaryActs(betas, shifts)
        self.c2 = QuantConv2d(c[0], c[1], k, stride=s, padding=p, weight_quant=wq, bias=False)
        self.bn2 = nn.BatchNorm2d(c[1])
        self.a2 = QuantIdentity(act_quant=bin_act(1.0) if a2_bits == 1 else TwoBitA)
        h, w = ((d + 2 * p - k) // s + 1 for d in hw)
        self.final = final
        if final == "fc":
            self.c3 = QuantConv2d(c[1], c[2], 3, padding=1, weight_quant=BinW, bias=False)
            self.bn3 = nn.BatchNorm2d(c[2])
            self.a3 = QuantIdentity(act_quant=bin_act(0.5))
            self.fc = QuantLinear(c[2] * h * w, classes, weight_quant=BinW, bias=False)
        else:
            self.c3 = QuantConv2d(c[1], c[2], 3, padding=1, weight_quant=BinW, bias=False)

    def forward(self, x):
        x = self.a1(self.bn1(self.c1(self.inp(x))))
        x = self.a2(self.bn2(self.c2(x)))
        if self.final == "fc":
            x = self.a3(self.bn3(self.c3(x)))
            return self.fc(torch.flatten(x, 1))
        return torch.flatten(self.c3(x), 1)


def zero_pad_net(seed: int = 0, n_images: int = 64, **kw) -> tuple[ZeroPadNet, np.ndarray]:
    """A ZeroPadNet with random weights and batch norm calibrated on random images (some BN scales
    negative), and test images."""
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = ZeroPadNet(**kw)
    rng = np.random.default_rng(seed)
    hw = kw.get("hw", (10, 12))
    for mod in net.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.reset_running_stats()
            mod.momentum = None
            with torch.no_grad():
                mod.weight[torch.from_numpy(rng.random(mod.num_features) < 0.3)] *= -1
    x = rng.random((n_images + 128, 1) + tuple(hw)).astype(np.float32)
    net.train()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net(torch.from_numpy(x[n_images:]))
    net.eval()
    return net, x[:n_images]


def export_brevitas_file(net: nn.Module, shape: tuple[int, ...], path: str, dynamo: bool) -> str:
    """Brevitas' export_qonnx as a user calls it (dynamo exporter by default, or dynamo=False)."""
    from brevitas.export import export_qonnx

    net.eval()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        export_qonnx(net, torch.rand((1,) + tuple(shape)), export_path=path, dynamo=dynamo)
    return path


def export_brevitas(net: nn.Module, shape: tuple[int, ...], dynamo: bool) -> onnx.ModelProto:
    with tempfile.TemporaryDirectory() as tmp:
        return onnx.load(export_brevitas_file(net, shape, os.path.join(tmp, "m.onnx"), dynamo))


def set_pads(node, pads) -> None:
    """Replace a Conv node's pads attribute."""
    for a in [a for a in node.attribute if a.name == "pads"]:
        node.attribute.remove(a)
    node.attribute.append(helper.make_attribute("pads", pads))


@lru_cache(maxsize=1)
def _abc_export() -> tuple[bytes, np.ndarray]:
    spec = dict(convs=[(3, 3, 1, 1), (4, 3, 1, 2), (4, 5, 2, 2)], m=[2, 3, 2, 2], n=[None, 2, 3, 2], hw=11, pool=None,
                classes=4)
    from _builders import abc_net, export_abc

    net, x = abc_net(spec, 9)
    return export_abc(net, (1, 11, 11)).SerializeToString(), x[:200]


def abc_export_zero_padded(value: str):
    """Our ABC net (M, N = 3, 2 / 2, 3 bases, padding 1 / 2) whose export pads with -sum(beta), turned
    into a zero-padded one: ``explicit`` keeps the Pad with the value 0, ``conv`` moves the padding
    into the Conv's pads (as a PyTorch conv exports)."""
    raw, x = _abc_export()
    exp = onnx.ModelProto.FromString(raw)
    g = exp.graph
    inits = {t.name: t for t in g.initializer}
    pads = [n for n in g.node if n.op_type == "Pad"]
    assert len(pads) == 2
    for pad in pads:
        if value == "explicit":
            zero = numpy_helper.from_array(np.zeros((), np.float32), pad.input[2] + "_zero")
            g.initializer.append(zero)
            pad.input[2] = zero.name
        else:
            conv = next(n for n in g.node if pad.output[0] in n.input)
            conv.input[0] = pad.input[0]
            p = numpy_helper.to_array(inits[pad.input[1]])
            set_pads(conv, [int(p[2]), int(p[3]), int(p[6]), int(p[7])])
            g.node.remove(pad)
    return exp, x
