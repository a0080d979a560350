"""Is a model's export provably bit-exact? Per-layer verdicts of :mod:`abcn_hw.exactness` for the
models abcn-hw trains (ABC layers, and Brevitas ``QuantConv2d`` / ``QuantLinear`` with constant
scales such as the stock binary baseline).

PyTorch and the executed QONNX export run the same operations in the same order, but a
convolution or matrix product adds its products in the order of its kernel (oneDNN, MKL, MLAS;
each depends on the CPU). Element-wise operations (batch norm as Mul then Add, quantizer shifts,
residual adds) and max pooling are the same everywhere. So the export equals PyTorch bit for bit on
every machine when every binary layer's partial sums are exact (bound < 2**24) and no other
summation (an average pool, a float layer) sits in the model; otherwise the two are compared with
the tolerance contract (:class:`abcn_hw.qonnx_export.Fidelity`).

Brevitas layers are matched with the last quantized activation registered before them, so the
model's modules must be registered in forward order (as in an ``nn.Sequential``).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..exactness import (EXACT_LIMIT, ExactnessReport, LayerExactness, product_exactness,
                         worst_case_exactness)
from ..nn import ABCActQuant, ABCConv2d, ABCLinear, FixedPointBatchNorm, InputQuant

_POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
_POOL_REASON = "average pool: a float32 sum of its window, added in the kernel's order"


def _k(layer: nn.Module) -> int:
    return int(layer.weight[0].numel())


def _abc_input(layer):
    """(beta, input_scale, input_max) of an ABC layer's own input quantizer, or None (float input)."""
    q = layer.input_quant
    if isinstance(q, ABCActQuant):
        return q.constants()[1].detach().cpu().numpy(), None, None
    if isinstance(q, InputQuant):
        return None, q.scale, 2 ** q.bits - 1
    return None


def _brevitas_parts():
    from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear

    return (QuantConv2d, QuantLinear), (QuantIdentity,)


def _brevitas_act(act) -> tuple | None:
    """(beta, input_scale, input_max) of a Brevitas activation quantizer's output, None if unknown."""
    proxy = act.act_quant
    if not proxy.is_quant_enabled:
        return None
    scale = proxy.scale().detach().cpu().numpy().reshape(-1)
    bits = int(proxy.bit_width())
    if scale.size != 1:
        return None
    if bits == 1 and proxy.is_signed:
        return scale.astype(np.float32), None, None
    if proxy.is_signed:
        return None  # signed k-bit inputs: not needed by the models abcn-hw trains
    return None, float(scale[0]), 2 ** bits - 1


def export_exactness(model: nn.Module) -> ExactnessReport:
    """Per-layer verdicts from the model's current (eval) scales; see the module docstring."""
    layers, acts = _brevitas_parts()
    report = ExactnessReport()
    current = None  # the input of the next Brevitas layer, from the last quantized activation
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, (ABCConv2d, ABCLinear)):
                report.layers.append(_abc_verdict(name, m))
            elif isinstance(m, acts):
                current = _brevitas_act(m)
            elif isinstance(m, layers):
                report.layers.append(_brevitas_verdict(name, m, current))
            elif isinstance(m, _POOLS):
                report.layers.append(LayerExactness(name, False, None, _POOL_REASON))
        report.layers.extend(residual_exactness(model))
    return report


# -- residual joins (the zoo ResNets, abcn_hw.models.resnet) -------------------------------------------

def residual_exactness(model: nn.Module) -> list[LayerExactness]:
    """Verdicts for the fixed-point joins of a zoo-style ResNet (``stem`` conv - FixedPointBatchNorm,
    ``stages`` of BasicBlocks, ``pool`` over ``pool_hw``; empty for other models), from the join
    plans of the eval constants (:mod:`abcn_hw.nn.joins`): every float32 op of a join (the
    roundings, the batch-norm Mul and Add, the residual Add) keeps its values below 2**24 quanta of
    its dyadic grid, so PyTorch, the export and the lowered ResidualAdd agree bit for bit; and the
    global sum pool (float64 in the model) fits the int32 sum of the hardware."""
    from ..nn.joins import INT32_LIMIT
    from .resnet import BasicBlock, plan_branches

    stem = getattr(model, "stem", None)
    if not (isinstance(stem, nn.Sequential) and len(stem) > 1 and isinstance(stem[1], FixedPointBatchNorm)
            and hasattr(model, "stages") and hasattr(model, "pool_hw")):
        return []
    out: list[LayerExactness] = []
    names = {m: n for n, m in model.named_modules()}

    def verdict(name: str, plan, what: str):
        if plan is None:
            out.append(LayerExactness(name, False, None, f"{what}: a branch is not a provably exact layer"))
            return None
        how = (f"rounds (shifts {list(plan.shifts)}" + (f", identity onto 2^{plan.grid}" if plan.grid is not None else "")
               + "); " if plan.rounds else "")
        out.append(LayerExactness(name, plan.exact, plan.peak, f"{what}: {how}up to {plan.peak:.4g} quanta "
                                  + ("<" if plan.peak < EXACT_LIMIT else ">=") + " 2^24 on its dyadic grid"))
        return plan.out if plan.exact else None

    def plan(branches, has_identity=False, identity=None, limit=float(EXACT_LIMIT)):
        for conv, _ in branches:
            conv.quantized_weight()  # the eval constants whose quantum the batch norm's grid follows
        return plan_branches(branches, has_identity, identity, limit)[0]

    r = verdict(names[model.stem[1]], plan([(model.stem[0], model.stem[1])]), "stem batch norm")
    for blk in model.stages:
        if not isinstance(blk, BasicBlock):
            continue
        identity = isinstance(blk.shortcut, nn.Identity)
        if identity and r is None:
            r = verdict(names[blk], None, "join")
            continue
        r = verdict(names[blk], plan(blk.branches(), identity, r if identity else None, blk.join_limit), "join")
    if r is not None:
        h, w = model.pool_hw
        total = r.peak * h * w
        ok = total < INT32_LIMIT - 1
        out.append(LayerExactness(names[model.pool], ok, total, f"integer sum pool: up to {total:.4g} quanta "
                                  + ("<" if ok else ">=") + " 2^31 on its dyadic grid"))
    return out


def _abc_verdict(name: str, m) -> LayerExactness:
    if m.weight_quant is None:
        return LayerExactness(name, False, None, "float weights")
    if m.bias is not None:
        return LayerExactness(name, False, None, "float bias inside the accumulation")
    inp = _abc_input(m)
    if inp is None:
        return LayerExactness(name, False, None, "float input")
    alpha = m.weight_constants()[1].detach().cpu().numpy()
    return product_exactness(name, _k(m), alpha, *inp)


def _brevitas_verdict(name: str, m, current) -> LayerExactness:
    if current is None:
        return LayerExactness(name, False, None, "input not from a known quantized activation")
    if getattr(m, "bias", None) is not None:
        return LayerExactness(name, False, None, "float bias inside the accumulation")
    scale = m.quant_weight().scale.detach().cpu().numpy().reshape(-1)
    out = m.weight.shape[0]
    if int(m.weight_quant.bit_width()) != 1 or scale.size not in (1, out):
        return LayerExactness(name, False, None, "weights are not binary with a per-tensor/per-channel scale")
    alpha = np.broadcast_to(scale.astype(np.float32), (out,))[None, :]
    return product_exactness(name, _k(m), alpha, *current)


def planned_exactness(model: nn.Module) -> ExactnessReport:
    """Verdicts before training: ABC layers from their configuration (worst case over every
    trainable scale, see :func:`abcn_hw.exactness.worst_case_exactness`), constant-scale Brevitas
    layers from their scales. A layer whose verdict depends on trained values is not listed as
    failing: it carries ``bound`` None and ``exact`` False, and :func:`decided_failures` skips it."""
    layers, _ = _brevitas_parts()
    report = ExactnessReport()
    for name, m in model.named_modules():
        if isinstance(m, (ABCConv2d, ABCLinear)) and m.weight_quant is not None and _abc_input(m) is not None:
            cfg = m.weight_quant.cfg
            act_bases = m.input_quant.cfg.bases if isinstance(m.input_quant, ABCActQuant) else None
            input_max = None if act_bases is not None else 2 ** m.input_quant.bits - 1
            report.layers.append(worst_case_exactness(name, _k(m), cfg.bases, act_bases, cfg.scale_grid,
                                                      cfg.scale_bits, input_max))
    if any(isinstance(m, layers) for m in model.modules()):
        report.layers.extend(v for v in export_exactness(model).layers if v.bound is not None)
    return report


def decided_failures(report: ExactnessReport) -> list[LayerExactness]:
    """The layers of ``report`` known to fail (a bound at or above 2**24), in order."""
    return [v for v in report.layers if not v.exact and v.bound is not None]
