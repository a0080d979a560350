"""``resnet8``: a small residual ABC-Net with padded 3x3 convolutions (CIFAR-10 or MNIST).

    stem:    conv3x3(C->16, p=1) [8-bit input] - BN
    stage 1: BasicBlock(16 -> 16, stride 1)  identity shortcut
    stage 2: BasicBlock(16 -> 32, stride 2)  shortcut conv1x1(16->32, s=2) - BN
    stage 3: BasicBlock(32 -> 64, stride 2)  shortcut conv1x1(32->64, s=2) - BN
    AvgPool2d(final H x W)  (a fixed kernel computed from the input shape: static and exportable)
    FC(64 -> num_classes) - BN   (logits)

A BasicBlock is ``conv3x3(s) - BN - conv3x3 - BN`` plus the shortcut; the residual add is of
pre-activations (BN outputs) and the next ABC layer binarizes the sum with its N activation bases.
Padded binary convolutions pad with the bit 0 (value -sum beta), see :mod:`abcn_hw.nn.layers`.
Eight weight layers on the main path: stem + 2 x 3 block convs + FC. 32x32 -> 32, 16, 8;
28x28 -> 28, 14, 7.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .base import ABCModel, LayerFactory, conv_out

STEM_CHANNELS = 16
STAGES = ((16, 1), (32, 2), (64, 2))  # (channels, stride of the first conv)


class BasicBlock(nn.Module):
    """conv3x3(stride) - BN - conv3x3 - BN, plus an identity or conv1x1 - BN shortcut."""

    def __init__(self, f: LayerFactory, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = f.conv(in_channels, out_channels, 3, stride, 1)
        self.bn1 = f.bn(out_channels)
        self.conv2 = f.conv(out_channels, out_channels, 3, 1, 1)
        self.bn2 = f.bn(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(f.conv(in_channels, out_channels, 1, stride, 0), f.bn(out_channels))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(self.bn1(self.conv1(x)))) + self.shortcut(x)


def resnet_feature_shape(input_shape) -> tuple[int, int, int]:
    """(C, H, W) before the average pool. Every positive H, W works (padded convs)."""
    _, h, w = input_shape
    for _, stride in STAGES:
        h, w = conv_out(h, 3, stride, 1), conv_out(w, 3, stride, 1)
    return STAGES[-1][0], h, w


class ResNet8(ABCModel):
    """Small residual ABC-Net (see module docstring)."""

    def __init__(self, config: Mapping):
        super().__init__(config)
        f = LayerFactory.from_config(config)
        c_in = self.input_shape[0]
        fc, fh, fw = resnet_feature_shape(self.input_shape)
        self.stem = nn.Sequential(f.conv(c_in, STEM_CHANNELS, 3, 1, 1, first=True), f.bn(STEM_CHANNELS))
        blocks = []
        c = STEM_CHANNELS
        for out, stride in STAGES:
            blocks.append(BasicBlock(f, c, out, stride))
            c = out
        self.stages = nn.Sequential(*blocks)
        self.pool = nn.AvgPool2d((fh, fw))
        self.classifier = nn.Sequential(f.linear(fc, self.num_classes), f.bn(self.num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.stages(self.stem(x)))
        return self.classifier(torch.flatten(x, 1))
