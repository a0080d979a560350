"""Binary nets written the way a Brevitas user writes them, with the layers' default ``bias=True``:
plain ``QuantConv2d`` / ``QuantLinear`` with ``weight_bit_width=1`` and BNN-PYNQ's
``CommonWeightQuant`` (bipolar weights of scale 1: brevitas_examples, not our code), binary
``QuantIdentity`` activations, ``nn.BatchNorm2d`` / ``BatchNorm1d``, an 8-bit input quantizer.

Biases are PyTorch's default initialisation (non-dyadic floats) unless noted: the products are
exact integers and the bias is one float32 add after them, executed as exported by the threshold
derivation (or the output affine), so the lowered graph must equal the executed export on every
element, on any CPU. ``dyadic_bias`` layers get biases k/8 instead, which join the layer's exact
core (the accumulator's offset).
"""
from __future__ import annotations

import numpy as np
import onnx
import torch
from torch import nn


def _layers(brevitas_scale: bool = False):
    """Layer makers; ``brevitas_scale``: Brevitas' own SignedBinaryWeightPerTensorConst (constant
    scale 0.1, not dyadic: the layers are rounded, under the prediction-agreement contract)."""
    from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
    from brevitas.quant import (Int8ActPerTensorFixedPoint, Int32Bias, SignedBinaryActPerTensorConst,
                                SignedBinaryWeightPerTensorConst)
    from brevitas_examples.bnn_pynq.models.common import CommonWeightQuant

    wq = dict(weight_quant=SignedBinaryWeightPerTensorConst) if brevitas_scale else \
        dict(weight_bit_width=1, weight_quant=CommonWeightQuant)

    def conv(cin, cout, k, **kw):
        return QuantConv2d(cin, cout, k, **wq, **kw)

    def linear(fin, fout, **kw):
        return QuantLinear(fin, fout, **wq, **kw)

    def act():
        return QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)

    def inq():
        return QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True)

    return conv, linear, act, inq, Int32Bias


class BiasConvNet(nn.Module):
    """8-bit input -> conv(bias) -> BN -> binary -> conv(bias, Int32Bias, no BN: the bias alone is
    the affine before the next quantizer) -> binary -> max pool -> flatten -> linear(bias) logits;
    ``final_conv``: the logits come from a full-size conv with a bias (a conv's output affine)."""

    def __init__(self, final_conv: bool = False, dyadic_bias: bool = False, c: int = 8, classes: int = 10,
                 brevitas_scale: bool = False):
        super().__init__()
        conv, linear, act, inq, int32_bias = _layers(brevitas_scale)
        self.inq = inq()
        self.c1, self.b1, self.a1 = conv(1, c, 3), nn.BatchNorm2d(c), act()
        # Int32Bias puts the bias on the products' lattice (multiples of the weight scale): with
        # Brevitas' 0.1 scale, pre-activations are then often exactly 0 in real arithmetic and their
        # sign is decided by the export's float32 summation noise, which no lowering reproduces
        self.c2, self.a2 = conv(c, c, 3, **({} if brevitas_scale else {"bias_quant": int32_bias})), act()
        self.final_conv = final_conv
        self.head = conv(c, classes, 5) if final_conv else linear(c * 5 * 5, classes)
        if dyadic_bias:
            rng = np.random.default_rng(3)
            for layer in (self.c1, self.c2, self.head):
                with torch.no_grad():
                    layer.bias.copy_(torch.from_numpy(rng.integers(-16, 17, layer.bias.shape).astype(np.float32) / 8))

    def forward(self, x):
        x = self.a1(self.b1(self.c1(self.inq(x))))
        x = nn.functional.max_pool2d(self.a2(self.c2(x)), 2)
        return self.head(x).flatten(1) if self.final_conv else self.head(x.flatten(1))


class FlatMLP(nn.Module):
    """8-bit input quantizer -> flatten -> linear(bias) -> BN -> binary -> linear(bias) -> BN ->
    binary -> linear(bias) logits: the first layer reads the quantized image's integer codes."""

    def __init__(self, side: int = 14, hidden: int = 32, classes: int = 10):
        super().__init__()
        _, linear, act, inq, _ = _layers()
        self.inq = inq()
        self.l1, self.b1, self.a1 = linear(side * side, hidden), nn.BatchNorm1d(hidden), act()
        self.l2, self.b2, self.a2 = linear(hidden, hidden), nn.BatchNorm1d(hidden), act()
        self.l3 = linear(hidden, classes)

    def forward(self, x):
        x = self.inq(x).flatten(1)
        x = self.a1(self.b1(self.l1(x)))
        x = self.a2(self.b2(self.l2(x)))
        return self.l3(x)


def images(n: int, offset: int = 0) -> np.ndarray:
    """Bundled MNIST test digits, centre 14 x 14."""
    from _builders import mnist

    x, _ = mnist("test")
    return np.ascontiguousarray(x[offset:offset + n, :, 7:21, 7:21])


def build(net: nn.Module, seed: int = 0) -> nn.Module:
    """Calibrated batch norm (some negative scales: both threshold directions occur), eval mode."""
    from _builders import calibrate_bn

    calibrate_bn(net, images(200, offset=5000))
    rng = np.random.default_rng(seed + 1)
    for mod in net.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                mod.weight[torch.from_numpy(rng.random(mod.num_features) < 0.25)] *= -1
    return net.eval()


def export(net: nn.Module, dynamo: bool, path: str | None = None) -> onnx.ModelProto:
    """Plain ``brevitas.export.export_qonnx`` (either torch exporter), nothing cleaned up; saved to
    ``path`` (weights inline) when given."""
    from _handwritten import quiet_export_qonnx

    model = quiet_export_qonnx(net, images(1), dynamo)
    if path is not None:
        onnx.save(model, path)
    return model


def user_net(kind: str, dynamo: bool, seed: int = 0, path: str | None = None) -> tuple[onnx.ModelProto, np.ndarray]:
    """(raw export, 200 test images) of ``kind``: 'bias_conv', 'bias_conv_final', 'bias_conv_dyadic',
    'bias_conv_rounded' (Brevitas' 0.1 weight scale), 'mlp'."""
    torch.manual_seed(seed)
    net = {"bias_conv": lambda: BiasConvNet(), "bias_conv_final": lambda: BiasConvNet(final_conv=True),
           "bias_conv_rounded": lambda: BiasConvNet(brevitas_scale=True),
           "bias_conv_dyadic": lambda: BiasConvNet(dyadic_bias=True), "mlp": lambda: FlatMLP()}[kind]()
    return export(build(net, seed), dynamo, path), images(200)
