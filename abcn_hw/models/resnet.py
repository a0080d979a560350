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
from typing import NamedTuple

import torch
from torch import nn

from ..nn import FixedPointBatchNorm, GlobalSumPool2d
from ..nn.joins import EXACT_LIMIT, INT32_LIMIT, Dyadic, JoinPlan, plan_join
from ..quant.grid import round_ste
from .base import ABCModel, LayerFactory, conv_out

#: (stem channels, stem kernel, stem stride, stem max pool, stages: ((channels, stride), ...) per stage)
TOPOLOGIES = {
    "resnet8": (16, 3, 1, False, (((16, 1),), ((32, 2),), ((64, 2),))),
    "resnet18": (64, 7, 2, True, (((64, 1), (64, 1)), ((128, 2), (128, 1)), ((256, 2), (256, 1)),
                                  ((512, 2), (512, 1)))),
}


class Residual(NamedTuple):
    """A residual value and its static grid (None: unknown, e.g. a float reference model)."""

    value: torch.Tensor
    grid: Dyadic | None


class BasicBlock(nn.Module):
    """conv3x3(stride) - BN - conv3x3 - FixedBN, plus the identity or an ABC conv1x1(stride) - FixedBN
    shortcut reading the same activation bits as conv1. Takes and returns a :class:`Residual` (a
    plain tensor: the identity's grid is unknown, so the join does not round it)."""

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
        #: the bound the join's output must stay below (lower when a global sum pool follows)
        self.join_limit = float(EXACT_LIMIT)
        self.last_plan: JoinPlan | None = None

    def branches(self) -> list[tuple[nn.Module, nn.Module]]:
        """(conv, batch norm) of the join's branches: conv2, and the shortcut conv if any."""
        out = [(self.conv2, self.bn2)]
        if not isinstance(self.shortcut, nn.Identity):
            out.append((self.shortcut[0], self.shortcut[1]))
        return out

    def forward(self, x):
        r, grid = (x.value, x.grid) if isinstance(x, Residual) else (x, None)
        ys = [self.conv2(self.bn1(self.conv1(r)))]
        identity = isinstance(self.shortcut, nn.Identity)
        if not identity:
            ys.append(self.shortcut[0](r))
        out, plan = residual_join(self.branches(), ys, (r, grid) if identity else None, self.join_limit)
        self.last_plan = plan
        if isinstance(x, Residual):
            return Residual(out, None if plan is None else plan.out)
        return out


def residual_join(branches, ys: list[torch.Tensor], identity: tuple[torch.Tensor, Dyadic | None] | None = None,
                  limit: float = EXACT_LIMIT) -> tuple[torch.Tensor, JoinPlan | None]:
    """sum_b bn_b(y_b) [+ identity], exact in float32 (:mod:`abcn_hw.nn.joins`): each branch's conv
    output and the identity rounded where the static bound requires. ``branches``: (conv, batch
    norm) with ``ys`` their conv outputs; ``identity``: (r, its grid or None). Returns the value and
    the plan (None where a branch is not a fixed-point batch norm after an exact ABC conv, or the
    identity's grid is unknown: then nothing is rounded)."""
    raws = [bn.batch_affine(y) if bn.training and isinstance(bn, FixedPointBatchNorm) else None
            for (_, bn), y in zip(branches, ys)]
    plan, units = plan_branches(branches, identity is not None, None if identity is None else identity[1], limit, raws)
    out = None
    for b, ((_, bn), y) in enumerate(zip(branches, ys)):
        if isinstance(bn, FixedPointBatchNorm):
            v = bn(y, unit=units[b], shift=plan.shifts[b] if plan else 0, raw=raws[b])
        else:
            v = bn(y, unit=units[b])
        out = v if out is None else out + v
    if identity is not None:
        r = identity[0]
        if plan is not None and plan.grid is not None:
            g = 2.0 ** plan.grid
            r = (round_ste(r * (1.0 / g)) if branches[0][1].training else torch.round(r * (1.0 / g))) * g
        out = out + r
    return out, plan


def plan_branches(branches, has_identity: bool, identity: Dyadic | None, limit: float = EXACT_LIMIT,
                  raws=None) -> tuple[JoinPlan | None, list]:
    """The join plan of ``branches`` ((conv, batch norm), after the convs' forward) and the
    identity's grid, from the eval constants or the training statistics ``raws``; and the convs'
    output quanta. The plan is None where a branch is not a fixed-point batch norm after an exact
    ABC conv, or the identity's grid is unknown."""
    units = [conv.output_quantum() for conv, _ in branches]
    if not (all(isinstance(bn, FixedPointBatchNorm) for _, bn in branches) and all(u is not None for u in units)
            and (not has_identity or identity is not None)):
        return None, units
    raws = raws or [None] * len(branches)
    return plan_join([bn.join_branch(u, conv.output_bound(), raw) for (conv, bn), u, raw in zip(branches, units, raws)],
                     identity, limit), units


def stem_forward(stem: nn.Sequential, x: torch.Tensor) -> tuple[Residual, JoinPlan | None]:
    """conv - (fixed-point) batch norm [- max pool]: the first residual value, exact (a one-branch
    join: the conv output rounded where the bound requires), and its plan. Max pooling keeps the
    grid (the max of values on one grid; the padding never wins)."""
    out, plan = residual_join([(stem[0], stem[1])], [stem[0](x)])
    for m in stem[2:]:
        out = m(out)
    return Residual(out, None if plan is None else plan.out), plan


def join_plans(model: nn.Module) -> list[tuple[str, JoinPlan | None]]:
    """The join plans of the last forward of a zoo-style ResNet (stem, then each block), by module name."""
    names = {m: n for n, m in model.named_modules()}
    out = [(names[model.stem[1]], getattr(model, "stem_plan", None))]
    out += [(names[b], b.last_plan) for b in model.stages if isinstance(b, BasicBlock)]
    return out


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
        self.pool_hw = (fh, fw)
        if not f.is_float:
            self.classifier[0].input_quant.prescale = fh * fw
            # the integer sum pool of the last join's value must fit int32
            self.stages[-1].join_limit = float(min(EXACT_LIMIT, (INT32_LIMIT - 1) / (fh * fw)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, self.stem_plan = stem_forward(self.stem, x)
        return self.classifier(self.pool(self.stages(r).value))
