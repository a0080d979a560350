"""``lenet``: a small LeNet-style ABC convolutional net for MNIST (28x28x1).

    conv5x5(C->16)  [8-bit input]  - BN - maxpool2      28 -> 24 -> 12
    conv5x5(16->32) [N act bases]  - BN - maxpool2      12 ->  8 ->  4
    FC(32*4*4 -> 100)              - BN
    FC(100 -> num_classes)         - BN                 (logits)

Convolutions are unpadded; any input with H, W >= 16 works (the first FC grows with the input).
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .base import ABCModel, LayerFactory, conv_out, pool_out, shape_error

HIDDEN = 100
CHANNELS = (16, 32)
KERNEL = 5


def lenet_feature_shape(input_shape, name: str = "lenet") -> tuple[int, int, int]:
    """(C, H, W) after the two conv-pool stages; UsageError if the input is too small."""
    _, h, w = input_shape
    for _ in CHANNELS:
        h, w = pool_out(conv_out(h, KERNEL)), pool_out(conv_out(w, KERNEL))
    if h < 1 or w < 1:
        raise shape_error(name, input_shape, "H, W >= 16 (two unpadded 5x5 convs, each followed by a 2x2 max-pool)")
    return CHANNELS[-1], h, w


class LeNet(ABCModel):
    """LeNet-style ABC-Net (see module docstring)."""

    def __init__(self, config: Mapping):
        super().__init__(config)
        c_in = self.input_shape[0]
        fc, fh, fw = lenet_feature_shape(self.input_shape)
        f = LayerFactory.from_config(config)
        self.features = nn.Sequential(
            f.conv(c_in, CHANNELS[0], KERNEL, first=True), f.bn(CHANNELS[0]), nn.MaxPool2d(2),
            f.conv(CHANNELS[0], CHANNELS[1], KERNEL), f.bn(CHANNELS[1]), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            f.linear(fc * fh * fw, HIDDEN), f.bn(HIDDEN),
            f.linear(HIDDEN, self.num_classes), f.bn(self.num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))
