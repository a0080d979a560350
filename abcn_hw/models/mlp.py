"""``tfc`` / ``sfc`` / ``lfc``: the BNN-PYNQ multilayer perceptrons as ABC-Nets (MNIST).

    flatten(C*H*W)
    FC(C*H*W -> H1) [8-bit input]  - BN
    FC(H1 -> H2)    [N act bases]  - BN
    FC(H2 -> H3)    [N act bases]  - BN
    FC(H3 -> num_classes)          - BN   (logits; BNN-PYNQ's TensorNorm, per class)

with hidden widths 64 (tfc), 256 (sfc) or 1024 (lfc). BNN-PYNQ's dropout is left out (it is
training-only and the trainer may add regularisation as it sees fit). Any input shape works.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .base import ABCModel, LayerFactory

HIDDEN_WIDTHS = {"tfc": (64, 64, 64), "sfc": (256, 256, 256), "lfc": (1024, 1024, 1024)}


class MLP(ABCModel):
    """A BNN-PYNQ FC topology; the hidden widths come from :data:`HIDDEN_WIDTHS` by model name."""

    def __init__(self, config: Mapping):
        super().__init__(config)
        f = LayerFactory.from_config(config)
        c, h, w = self.input_shape
        layers: list[nn.Module] = []
        width = c * h * w
        for i, out in enumerate(HIDDEN_WIDTHS[self.name]):
            layers += [f.linear(width, out, first=(i == 0)), f.bn(out)]
            width = out
        layers += [f.linear(width, self.num_classes), f.bn(self.num_classes)]
        self.classifier = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(x, 1))
