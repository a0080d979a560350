"""Small residual ABC-Nets for the compiler tests: the zoo ResNets' block, stem and pool at any size."""
from __future__ import annotations

import numpy as np
import torch
from _builders import calibrate_bn
from torch import nn

from abcn_hw.models.base import LayerFactory
from abcn_hw.models.resnet import BasicBlock, stem_forward
from abcn_hw.nn import ABCBatchNorm, GlobalSumPool2d
from abcn_hw.nn.joins import EXACT_LIMIT, INT32_LIMIT


class BlockNet(nn.Module):
    """8-bit input -> stem conv - FixedBN [- max pool] -> blocks -> global sum pool -> FC - BN, the
    residual value carried with its grid as in the zoo ResNets (so the joins round where needed)."""

    def __init__(self, f: LayerFactory, c_in: int, hw: int, blocks: list[tuple[int, int]], stem_pool: bool = False,
                 c0: int | None = None):
        super().__init__()
        if c0 is None:
            c0 = blocks[0][0] if blocks[0][1] == 1 else max(2, blocks[0][0] // 2)
        stem = [f.conv(c_in, c0, 3, 1, 1, first=True), f.fixed_bn(c0)]
        if stem_pool:
            stem.append(nn.MaxPool2d(3, 2, 1))
        self.stem = nn.Sequential(*stem)
        layers, c = [], c0
        for out, stride in blocks:
            layers.append(BasicBlock(f, c, out, stride))
            c = out
        self.stages = nn.Sequential(*layers)
        self.pool = GlobalSumPool2d()
        self.classifier = nn.Sequential(f.linear(c, 5), ABCBatchNorm(5))
        with torch.no_grad():
            feat = self.stages(self.stem(torch.zeros(1, c_in, hw, hw)))
        self.pool_hw = tuple(feat.shape[2:])
        self.classifier[0].input_quant.prescale = feat.shape[2] * feat.shape[3]
        self.stages[-1].join_limit = min(EXACT_LIMIT, (INT32_LIMIT - 1) / (feat.shape[2] * feat.shape[3]))

    def forward(self, x):
        r, self.stem_plan = stem_forward(self.stem, x)
        return self.classifier(self.pool(self.stages(r).value))

    def plans(self):
        return [self.stem_plan] + [b.last_plan for b in self.stages]


def randomise_bn(net: nn.Module, seed: int, x: np.ndarray, gain=(0.3, 2.0), bias: float = 0.5,
                 batch: int = 100) -> None:
    """Calibrated batch norms (train-mode forwards), then random affines with some negative scales
    (|gain| uniform in ``gain``: the joins' bounds grow with it)."""
    calibrate_bn(net, x, batch=batch)
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, ABCBatchNorm):
                c = m.num_features
                m.weight.copy_(torch.from_numpy(rng.uniform(*gain, c) * rng.choice([-1, 1], c, p=[0.2, 0.8])))
                m.bias.copy_(torch.from_numpy(rng.normal(0, bias, c)))
    net.eval()
