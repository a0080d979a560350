"""The rounding contract, enforced: choose each rounded layer's coefficient grid on calibration inputs.

A layer whose scales are not dyadic is lowered with its real coefficients alpha*beta rounded onto a
fixed-point grid (abcn_hw/compiler/scales.py); its integer thresholds are then exact for that grid,
so the lowered graph differs from the executed export only where the rounding (or the export's
own float32 summation) moves a value across a quantizer threshold. The contract
(docs/lowering.md): the lowered graph's prediction agreement with the executed export is at least
``min_agreement`` (default 99.9 %) on the calibration inputs.

:func:`lower_to_contract` lowers the model once up to the coefficient grids and then measures
candidate grids (the rest of the lowering on a copy, the lowered graph run on the calibration
inputs against one run of the export):

1. every rounded layer on the finest grid whose accumulator fits ``max_acc_bits`` bits; if even
   that misses the contract, no grid can meet it: :class:`ContractError` naming the layer;
2. layer by layer, each alone (fed the finest lowering's integer dot products, the other layers
   on the finest grid), a bisection for the fewest bits whose activation bits (the last layer: its
   predictions) agree with the export's at least as well as on the finest grid, less
   ``LAYER_SHARE * (1 - min_agreement)``;
3. the end-to-end agreement of the chosen grids; below the contract, the fewest extra bits d that
   every grid gets (at most its finest) to meet it: d = 1, 2, 4, ... then a bisection.

The search is deterministic for given inputs on one machine. The measured agreement depends on
the export's float32 summation order (CPU kernels), so another CPU may pick a grid one step apart
in borderline cases; the contract holds on each.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import onnx
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper

from ..errors import ContractError, UsageError
from .compare import Comparison, ExportReference, bit_probes, prediction_agreement
from .export_runtime import session
from .graphutil import copy_model
from .pipeline import finest_plan, finish, lower_layers
from .report import DEFAULT_MIN_AGREEMENT, LoweringReport
from .scales import MAX_ACC_BITS, MIN_GRID_BITS

#: share of the contract's disagreement budget one layer's grid may add to its activation bits
LAYER_SHARE = 0.01

#: memory for the integer dot products kept for single-layer runs (a layer beyond it is measured
#: with whole-graph runs)
DOTS_BUDGET = 1 << 30

#: bundled MNIST test images the grids are chosen on by default (MNIST-shaped models)
DEFAULT_CALIBRATION_IMAGES = 500

#: calibration provider: called only when the lowering is not exact; (inputs, description) or None
Calibration = Callable[[], "tuple[np.ndarray, str] | None"]


def check_min_agreement(value: float, where: str = "--min-agreement") -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as e:
        raise UsageError(f"{where} must be a number in (0, 1], got {value!r}") from e
    if not (0.0 < v <= 1.0):
        raise UsageError(f"{where} must be in (0, 1] (a fraction: 0.999 = 99.9 %), got {value}")
    return v


def check_max_acc_bits(value: int, where: str = "--max-acc-bits") -> int:
    if not isinstance(value, (int, np.integer)) or not (8 <= int(value) <= MAX_ACC_BITS):
        raise UsageError(f"{where} must be an integer in [8, {MAX_ACC_BITS}], got {value!r}")
    return int(value)


def default_calibration(model: onnx.ModelProto, images: int = DEFAULT_CALIBRATION_IMAGES) -> Calibration:
    """The calibration rule without explicit inputs: the first ``images`` bundled MNIST test images
    for a model whose input holds 28*28 values (1x28x28 or 784), nothing otherwise (a model with
    non-dyadic scales then needs --inputs)."""
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim][1:] if model.graph.input else []

    def load():
        if not dims or not all(dims) or int(np.prod(dims)) != 28 * 28:
            return None
        from ..data import load_dataset

        ds = load_dataset("mnist", limit_test=images)
        x = np.asarray(ds.test.images, np.float32)
        return x.reshape((len(x),) + tuple(dims)), f"{len(x)} bundled MNIST test images"

    return load


@dataclass
class _Candidate:
    plan: dict
    lowered: ModelWrapper
    report: LoweringReport
    cmp: Comparison | None = None


@dataclass
class _Search:
    base: ModelWrapper
    records: list
    where: str | None
    min_agreement: float
    max_acc_bits: int
    ref: ExportReference | None = None
    cache: dict = field(default_factory=dict)
    dots: dict = field(default_factory=dict)  # layer -> its integer dot products on the finest grid
    runs: int = 0  # lowered graphs run on the calibration inputs (whole or one layer)

    def meta(self, plan: dict) -> dict:
        return {"bits": dict(sorted(plan.items())), "max_acc_bits": self.max_acc_bits,
                "min_agreement": self.min_agreement}

    def lower(self, plan: dict, measure: bool = False, capture: tuple[str, ...] = ()) -> _Candidate:
        """The lowering with ``plan``'s grids; with ``measure``, compared with the export (the
        whole lowered graph on the calibration inputs)."""
        key = tuple(sorted(plan.items()))
        if key not in self.cache:
            low, rep = finish(copy_model(self.base), copy.deepcopy(self.records), dict(plan), self.where,
                              grid_meta=self.meta(plan))
            self.cache[key] = _Candidate(dict(plan), low, rep)
        c = self.cache[key]
        if measure and c.cmp is None:
            c.cmp = self.ref.compare(c.lowered.model, capture=capture)
            self.runs += 1
        return c

    def layer_agreement(self, layer, plan: dict) -> float:
        """Agreement of ``layer`` alone with the export on ``plan``'s grid for it, fed the integer
        dot products of the finest lowering (the upstream layers' effect is the end-to-end check's):
        for a thresholded layer the fraction of equal activation bits (only its threshold unit
        runs), for the last layer the prediction agreement (its accumulator and the host's float
        ops run)."""
        c = self.lower(plan)
        final = layer.threshold == "final"
        src, dots = self.dots.get(layer.name, (None, None))
        dst = c.lowered.model.graph.output[0].name if final else layer.bits_tensor
        sub = _between(c.lowered.model, src, dst, dots.dtype) if src is not None else None
        if sub is None:  # dots not kept, or not a plain unit between dots and output: the whole graph
            cmp = self.lower(plan, measure=True).cmp
            return cmp.prediction_agreement if final else cmp.layer_equal_bits.get(layer.bits_tensor, 0.0)
        sess = session(sub, optimize=True)
        step = 64
        out = np.concatenate([sess.run(None, {src: dots[i:i + step]})[0] for i in range(0, len(dots), step)])
        self.runs += 1
        if final:
            ye = self.ref.values([self.ref.out], self.ref.batch or 8)[0]
            return prediction_agreement(ye, out)
        return self.ref.equal_bits(bit_probes(c.lowered.model)[layer.bits_tensor], out)


def _between(lowered: onnx.ModelProto, src: str, dst: str, dtype: np.dtype) -> onnx.ModelProto | None:
    """The part of ``lowered`` computing tensor ``dst`` from tensor ``src`` (and constants), as a
    model of its own; None when ``dst`` needs another run-time tensor."""
    g = lowered.graph
    producer = {o: n for n in g.node for o in n.output}
    inits = {t.name for t in g.initializer}
    need, todo, seen = set(), [dst], set()
    while todo:
        t = todo.pop()
        if t in seen or t == src or t in inits or not t:
            continue
        seen.add(t)
        if t not in producer:
            return None
        node = producer[t]
        need.add(id(node))
        todo.extend(node.input)
    nodes = [n for n in g.node if id(n) in need]
    used = {i for n in nodes for i in n.input}
    graph = helper.make_graph(nodes, "layer", [helper.make_tensor_value_info(src, helper.np_dtype_to_tensor_dtype(dtype),
                                                                            None)],
                              [helper.make_empty_tensor_value_info(dst)],
                              [t for t in g.initializer if t.name in used])
    m = helper.make_model(graph, opset_imports=list(lowered.opset_import), ir_version=lowered.ir_version)
    m.functions.extend(lowered.functions)
    return m


def layer_target(finest: float, min_agreement: float) -> float:
    """Activation-bit agreement a layer's grid must keep: the finest grid's, less its share of
    the contract's budget."""
    return finest - LAYER_SHARE * (1.0 - min_agreement)


def culprit(report: LoweringReport, cmp: Comparison, min_agreement: float) -> str:
    """The layer to name when the contract fails: the first non-exact layer whose activation bits
    fall below the per-layer target (errors propagate downstream), else the last non-exact one
    (the classifier, whose output the prediction reads)."""
    loose = [layer for layer in report.layers if not layer.exact]
    if not loose:
        return report.layers[-1].name if report.layers else "?"
    for layer in loose:
        eq = cmp.layer_equal_bits.get(layer.bits_tensor) if layer.bits_tensor else None
        if eq is not None and eq < 1.0 - LAYER_SHARE * (1.0 - min_agreement):
            return layer.name
    return loose[-1].name


def _describe(layer) -> str:
    if layer.scales_rounded:
        return "non-dyadic scales, " + (f"{layer.grid_bits}-bit coefficient grid" if layer.grid_bits is not None
                                        else "float32 scale combination")
    return f"partial sums up to {layer.acc_bound} >= 2**24 quanta"


def contract_error(report: LoweringReport, cmp: Comparison, min_agreement: float, where: str | None,
                   finest: bool) -> ContractError:
    name = culprit(report, cmp, min_agreement)
    layer = next(layer for layer in report.layers if layer.name == name)
    eq = cmp.layer_equal_bits.get(layer.bits_tensor) if layer.bits_tensor else None
    bits = f", {100 * eq:.3f}% of its activation bits equal" if eq is not None else ""
    grid = (f"the finest grid within {report.max_acc_bits}-bit accumulators" if finest and layer.scales_rounded
            else "the lowering")
    return ContractError(f"rounding contract not met at layer '{name}' ({_describe(layer)}): {grid} gives "
                         f"{100 * cmp.prediction_agreement:.2f}% prediction agreement with the export on "
                         f"{cmp.images} calibration inputs{bits}; the contract needs >= {100 * min_agreement:g}%", where,
                         "retrain with dyadic scales (--scale-grid fixed), raise --max-acc-bits, or accept "
                         "less with --min-agreement")


def lower_to_contract(model: ModelWrapper | onnx.ModelProto, calibration: Calibration | None,
                      min_agreement: float = DEFAULT_MIN_AGREEMENT, max_acc_bits: int = MAX_ACC_BITS,
                      where: str | None = None) -> tuple[ModelWrapper, LoweringReport]:
    """Lower ``model`` with the coefficient grid of every rounded layer chosen on calibration
    inputs (module docstring). Raises ContractError (exit 2) when no grid within
    ``max_acc_bits`` meets ``min_agreement``, UsageError when a layer is rounded and
    ``calibration`` gives no inputs. An exact lowering needs no calibration."""
    min_agreement = check_min_agreement(min_agreement, "min_agreement")
    max_acc_bits = check_max_acc_bits(max_acc_bits, "max_acc_bits")
    exported = model.model if isinstance(model, ModelWrapper) else model
    base, records = lower_layers(ModelWrapper(onnx.ModelProto.FromString(exported.SerializeToString())), where)
    s = _Search(base, records, where, min_agreement, max_acc_bits)
    finest = finest_plan(records, max_acc_bits, where)
    rounded = [r.name for r in records if r.scales.scales_rounded]
    got = None
    if not all(r.scales.exact for r in records):
        got = calibration() if calibration is not None else None
        if got is None and rounded:
            raise UsageError(f"layer '{rounded[0]}' has non-dyadic scales: its coefficient grid is chosen on "
                             "calibration inputs, and none fit this model", where,
                             "pass --inputs X.npy (float32 inputs of the model's input shape)")
    if got is None:  # exact, or exact integer arithmetic against a float export: nothing to choose
        return _done(s.lower(finest), s, None)
    x, what = got
    s.ref = ExportReference(exported, x)
    acc_dots = {}
    for r in records:  # each layer's integer dot products (the MultiBaseAccumulate's input)
        node = base.find_producer(r.acc)
        if node is not None:
            acc_dots[r.name] = node.input[0]
    first = s.lower(finest)
    grid_layers = [layer for layer in first.report.layers if layer.grid_bits is not None and layer.name in acc_dots
                   and (layer.bits_tensor or layer.threshold == "final")]
    keep, budget = [], DOTS_BUDGET  # the dot products kept for the single-layer runs, within a memory budget
    for layer in grid_layers:
        shape = base.get_tensor_shape(acc_dots[layer.name]) or []
        size = 4 * len(x) * int(np.prod([d for d in shape[1:] if isinstance(d, int)] or [0]))
        if shape and 0 < size <= budget:
            keep.append(acc_dots[layer.name])
            budget -= size
    first = s.lower(finest, measure=True, capture=tuple(keep))
    if not first.cmp.prediction_agreement >= min_agreement:  # NaN (no class output) fails too
        raise contract_error(first.report, first.cmp, min_agreement, where, finest=True)
    s.dots = {layer.name: (acc_dots[layer.name], first.cmp.tensors[acc_dots[layer.name]]) for layer in grid_layers
              if acc_dots[layer.name] in first.cmp.tensors}
    plan = dict(finest)
    for layer in grid_layers:  # each layer alone, the others on the finest grid
        floor = first.cmp.prediction_agreement if layer.threshold == "final" else \
            first.cmp.layer_equal_bits.get(layer.bits_tensor, 1.0)
        target = layer_target(floor, min_agreement)
        lo, hi = MIN_GRID_BITS, finest[layer.name]
        while lo < hi:
            mid = (lo + hi) // 2
            if s.layer_agreement(layer, finest | {layer.name: mid}) >= target:
                hi = mid
            else:
                lo = mid + 1
        plan[layer.name] = lo
    s.dots.clear()

    def shifted(d: int) -> dict:
        return {k: min(finest[k], v + d) for k, v in plan.items()}

    def meets(d: int) -> bool:
        return s.lower(shifted(d), measure=True).cmp.prediction_agreement >= min_agreement

    # end to end: the fewest extra bits d for every grid (d = 0, 1, 2, 4, ... then bisection; all
    # grids finest is known to hold)
    top = max((finest[k] - v for k, v in plan.items()), default=0)
    lo, hi, d = -1, top, 0
    while d < top:
        if meets(d):
            hi = d
            break
        lo, d = d, max(1, 2 * d)
    while hi - lo > 1:  # meets(hi), not meets(lo)
        mid = (lo + hi) // 2
        if meets(mid):
            hi = mid
        else:
            lo = mid
    return _done(s.lower(shifted(hi), measure=True), s, what, len(x))


def _done(c: _Candidate, s: _Search, what: str | None, images: int = 0) -> tuple[ModelWrapper, LoweringReport]:
    rep = c.report
    rep.min_agreement, rep.max_acc_bits = s.min_agreement, s.max_acc_bits
    if c.cmp is not None:
        rep.calibration, rep.calibration_images = what, images
        rep.calibration_agreement = c.cmp.prediction_agreement
        rep.grid_evaluations = s.runs
        rep.calibration_comparison = (s.ref.x, c.cmp)  # not serialised: lets lower_file reuse the run
    return c.lowered, rep


__all__ = ["lower_to_contract", "default_calibration", "check_min_agreement", "check_max_acc_bits", "culprit", "contract_error",
           "layer_target", "LAYER_SHARE"]
