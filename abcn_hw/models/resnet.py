"""Residual ABC-Nets with exact integer residual streams: ``resnet8`` (CIFAR-10 or MNIST) and
``resnet18`` (the ABC-Net paper's ImageNet topology, any input size).

    resnet8:  stem conv3x3(C->16, p=1) [8-bit input] - FixedBN
              stage 1: BasicBlock(16 -> 16, stride 1)  identity shortcut
              stage 2: BasicBlock(16 -> 32, stride 2)  shortcut ABC conv1x1(16->32, s=2) - FixedBN
              stage 3: BasicBlock(32 -> 64, stride 2)  shortcut ABC conv1x1(32->64, s=2) - FixedBN
              global sum pool, FC(64 -> num_classes) - BN (logits)
    resnet18: stem conv7x7(C->64, s=2, p=3) [8-bit input] - FixedBN - maxpool 3x3/2 p=1
              4 stages of 2 BasicBlocks: 64, 128 (s=2), 256 (s=2), 512 (s=2)
              global sum pool, FC(512 -> num_classes) - BN (logits)

A BasicBlock computes, on the residual value r (a pre-activation, not binarized):

    a  = A(r)                                 one activation quantizer (N bases) per block input
    r' = BN2(conv2(A2(BN1(conv1(a))))) + r                 identity shortcut
    r' = BN2(conv2(A2(BN1(conv1(a))))) + BNs(convs(a))     downsampling shortcut (ABC 1x1, stride 2)

conv1 and the shortcut conv share the quantizer A (one bit stream, forked in hardware). BN1 feeds
a quantizer only, so it is an ordinary batch norm folded into integer thresholds; BN2, BNs and the
stem's BN feed joins, so they are :class:`~abcn_hw.nn.FixedPointBatchNorm` (dyadic scale and
shift): every residual value is an integer times a power of two per channel, and each join is an
integer add (docs/residual-networks.md). The global average pool is a sum; its 1/(H*W) is taken
into the classifier's activation shifts (``ABCActQuant.prescale``), so no float division rounds.
Padded binary convolutions pad with the bit 0 (value -sum beta), see :mod:`abcn_hw.nn.layers`.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..nn import GlobalSumPool2d
from .base import ABCModel, LayerFactory, conv_out

#: (stem channels, stem kernel, stem stride, stem max pool, stages: ((channels, stride), ...) per stage)
TOPOLOGIES = {
    "resnet8": (16, 3, 1, False, (((16, 1),), ((32, 2),), ((64, 2),))),
    "resnet18": (64, 7, 2, True, (((64, 1), (64, 1)), ((128, 2), (128, 1)), ((256, 2), (256, 1)),
                                  ((512, 2), (512, 1)))),
}


class BasicBlock(nn.Module):
    """conv3x3(stride) - BN - conv3x3 - FixedBN, plus the identity or an ABC conv1x1(stride) - FixedBN
    shortcut reading the same activation bits as conv1."""

    def __init__(self, f: LayerFactory, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = f.conv(in_channels, out_channels, 3, stride, 1)
        self.bn1 = f.bn(out_channels)
        self.conv2 = f.conv(out_channels, out_channels, 3, 1, 1)
        self.bn2 = f.fixed_bn(out_channels)
        if stride != 1 or in_channels != out_channels:
            conv = f.conv(in_channels, out_channels, 1, stride, 0)
            conv.input_quant = self.conv1.input_quant  # one quantizer per block input (shared)
            self.shortcut = nn.Sequential(conv, f.fixed_bn(out_channels))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv_bn(self.conv2, self.bn2, self.bn1(self.conv1(x))) + (
            x if isinstance(self.shortcut, nn.Identity) else conv_bn(self.shortcut[0], self.shortcut[1], x))


def conv_bn(conv: nn.Module, bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """bn(conv(x)) with the conv's output quantum handed to the (fixed-point) batch norm."""
    y = conv(x)
    return bn(y, unit=conv.output_quantum())


def _stem_out(name: str, h: int) -> int:
    _, k, s, pool, _ = TOPOLOGIES[name]
    h = conv_out(h, k, s, k // 2)
    return conv_out(h, 3, 2, 1) if pool else h


def resnet_feature_shape(input_shape, name: str = "resnet8") -> tuple[int, int, int]:
    """(C, H, W) before the global pool. Every positive H, W works (padded convs and pools)."""
    _, h, w = input_shape
    h, w = _stem_out(name, h), _stem_out(name, w)
    stages = TOPOLOGIES[name][4]
    for stage in stages:
        for _, stride in stage:
            h, w = conv_out(h, 3, stride, 1), conv_out(w, 3, stride, 1)
    return stages[-1][-1][0], h, w


class ResNet(ABCModel):
    """Residual ABC-Net (see module docstring); the topology is the config's name."""

    def __init__(self, config: Mapping):
        super().__init__(config)
        f = LayerFactory.from_config(config)
        stem_c, k, s, pool, stages = TOPOLOGIES[self.name]
        c_in = self.input_shape[0]
        fc, fh, fw = resnet_feature_shape(self.input_shape, self.name)
        stem = [f.conv(c_in, stem_c, k, s, k // 2, first=True), f.fixed_bn(stem_c)]
        if pool:
            stem.append(nn.MaxPool2d(3, 2, 1))
        self.stem = nn.Sequential(*stem)
        blocks = []
        c = stem_c
        for stage in stages:
            for out, stride in stage:
                blocks.append(BasicBlock(f, c, out, stride))
                c = out
        self.stages = nn.Sequential(*blocks)
        self.pool = GlobalSumPool2d(mean=f.is_float)
        self.classifier = nn.Sequential(f.linear(fc, self.num_classes), f.bn(self.num_classes))
        if not f.is_float:
            self.classifier[0].input_quant.prescale = fh * fw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = conv_bn(self.stem[0], self.stem[1], x)
        for m in self.stem[2:]:
            r = m(r)
        return self.classifier(self.pool(self.stages(r)))
