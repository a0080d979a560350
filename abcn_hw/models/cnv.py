"""``cnv``: the BNN-PYNQ CNV topology as an ABC-Net (CIFAR-10, 32x32x3).

    conv3x3(C->64) [8-bit input] - BN                   32 -> 30
    conv3x3(64->64)              - BN - maxpool2        30 -> 28 -> 14
    conv3x3(64->128)             - BN                   14 -> 12
    conv3x3(128->128)            - BN - maxpool2        12 -> 10 ->  5
    conv3x3(128->256)            - BN                    5 ->  3
    conv3x3(256->256)            - BN                    3 ->  1
    FC(256 -> 512) - BN
    FC(512 -> 512) - BN
    FC(512 -> num_classes) - BN                         (logits)

All convolutions are unpadded; every layer after the first binarizes its input with N bases.
Inputs larger than 32x32 also work (the first FC then takes 256*h*w features).
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .base import ABCModel, LayerFactory, conv_out, pool_out, shape_error

CONV_CHANNELS_POOL = ((64, False), (64, True), (128, False), (128, True), (256, False), (256, False))
FC_WIDTHS = (512, 512)
KERNEL = 3


def cnv_feature_shape(input_shape, name: str = "cnv") -> tuple[int, int, int]:
    """(C, H, W) after the convolutional part; UsageError if the input is too small."""
    _, h, w = input_shape
    for _, pool in CONV_CHANNELS_POOL:
        h, w = conv_out(h, KERNEL), conv_out(w, KERNEL)
        if pool:
            h, w = pool_out(h), pool_out(w)
        if h < 1 or w < 1:
            raise shape_error(name, input_shape, "H, W >= 32 (six unpadded 3x3 convs and two 2x2 max-pools)")
    return CONV_CHANNELS_POOL[-1][0], h, w


class CNV(ABCModel):
    """BNN-PYNQ CNV ABC-Net (see module docstring)."""

    def __init__(self, config: Mapping):
        super().__init__(config)
        fc, fh, fw = cnv_feature_shape(self.input_shape)
        f = LayerFactory.from_config(config)
        layers: list[nn.Module] = []
        c_in = self.input_shape[0]
        for i, (c_out, pool) in enumerate(CONV_CHANNELS_POOL):
            layers += [f.conv(c_in, c_out, KERNEL, first=(i == 0)), f.bn(c_out)]
            if pool:
                layers.append(nn.MaxPool2d(2))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        dense: list[nn.Module] = []
        width = fc * fh * fw
        for out in FC_WIDTHS:
            dense += [f.linear(width, out), f.bn(out)]
            width = out
        dense += [f.linear(width, self.num_classes), f.bn(self.num_classes)]
        self.classifier = nn.Sequential(*dense)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))
