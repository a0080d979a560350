"""ApplyCoefficientGrid: put each rounded layer's coefficients on the grid chosen for it.

A layer whose scales are not dyadic (``float`` scale grid, hand-written nets with float beta and
per-channel alpha) is lowered with its real coefficients alpha*beta rounded onto c * 2**e[o]
(abcn_hw/compiler/scales.py). This pass, run before AbsorbThresholds, replaces the
MultiBaseAccumulate coefficients and the power-of-two unit of the ``Cast -> Mul`` after it by the
grid of ``plan[layer]`` bits, so the thresholds are then derived for that grid."""
from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from ..graphutil import const, single_consumer
from .lower_layers import LayerRecord


class ApplyCoefficientGrid(Transformation):
    def __init__(self, records: list[LayerRecord], plan: dict[str, int]):
        super().__init__()
        self.records = records
        self.plan = plan

    def apply(self, model: ModelWrapper):
        for rec in self.records:
            bits = self.plan.get(rec.name)
            if bits is None or not rec.scales.scales_rounded or bits == rec.scales.grid_bits:
                continue
            acc = model.find_producer(rec.acc)
            cast = single_consumer(model, rec.acc)
            mul = single_consumer(model, cast.output[0]) if cast is not None else None
            unit_in = [i for i in mul.input if const(model, i) is not None] if mul is not None else []
            if acc is None or cast is None or cast.op_type != "Cast" or mul.op_type != "Mul" or len(unit_in) != 1:
                raise RuntimeError(f"layer {rec.name}: accumulator is not followed by Cast -> Mul(unit)")
            sc = rec.scales.regrid(bits)
            model.set_initializer(acc.input[1], sc.c)
            unit = model.get_initializer(unit_in[0])
            model.set_initializer(unit_in[0], sc.unit.reshape(unit.shape))
            rec.scales = sc
        return model, False
