"""lower(model): support check, then the ordered lowering passes; lower_file: the same on files."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.infer_shapes import InferShapes

from ..errors import ContractError, OutputPathError, UnsupportedModelError, UsageError
from .accelerated import FLOAT_REGIONS_KEY
from .graphutil import copy_model
from .modelfile import check_model, read_model
from .ops._base import DOMAIN as OPS_DOMAIN
from .patterns import PatternError
from .passes import (AbsorbThresholds, AttachFunctions, ExtractConvBias, FoldBiasQuant, MoveFlattenBeforeInputQuant, FloatCombineRoundedLayers, GemmToMatMul, LayerRecord, LowerBinaryLayers,
                     MakeBatchDynamic, NormaliseOpsets, PruneAnnotations, RemoveDeadNodes, RemoveIdentityOps,
                     UnshareParameterTensors)
from .passes.coefficient_grid import ApplyCoefficientGrid
from .passes.integer_residual import IntegerRanges, lower_integer_residuals
from .report import DEFAULT_MIN_AGREEMENT, LayerReport, LoweringReport
from .scales import MAX_ACC_BITS, MAX_GRID_BITS, MIN_GRID_BITS
from .support import check_support

IR_VERSION = 10
#: metadata key of the lowered graph: the coefficient grid per rounded layer and the contract
GRID_KEY = "abcn_hw.coefficient_grid"


def _transform(model: ModelWrapper, t) -> ModelWrapper:
    """``model.transform(t)`` with qonnx's clean-up after it, made deterministic: qonnx's own
    clean-up ends in GiveUniqueParameterTensors, which names the copies with random strings."""
    from qonnx.transformation.general import (RemoveStaticGraphInputs, RemoveUnusedTensors,
                                              SortCommutativeInputsInitializerLast, SortGraph)

    model = model.transform(t, cleanup=False)
    for c in (RemoveUnusedTensors(), RemoveStaticGraphInputs(), SortGraph(), SortCommutativeInputsInitializerLast(),
              UnshareParameterTensors()):
        model = model.transform(c, cleanup=False, make_deepcopy=False)
    return model


def normalise(model: ModelWrapper, where: str | None = None) -> ModelWrapper:
    """Clean-up of a (raw or cleaned) Brevitas export: standard opset first, constants folded,
    shapes inferred, no-ops removed, Gemm -> MatMul. A graph qonnx's transformations cannot
    process (malformed attributes or custom ops) is an UnsupportedModelError naming the step."""
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import RemoveStaticGraphInputs, RemoveUnusedTensors
    from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit

    model = copy_model(model)
    NormaliseOpsets(IR_VERSION).apply(model)
    for node in model.graph.node:  # Brevitas' TorchScript exporter may use the legacy domain
        if node.op_type in ("Quant", "BipolarQuant", "Trunc") and node.domain in ("onnx.brevitas", "finn.custom_op.general"):
            node.domain = "qonnx.custom_op.general"
    # qonnx's cleanup_model without its renaming passes: node names stay the user's, and no pass
    # invents random tensor names (lower is a pure function of the model file: same bytes out)
    for t in (InferShapes(), UnshareParameterTensors(),
              FoldConstants(exclude_op_types=["Quant", "BipolarQuant", "QuantizeLinear", "DequantizeLinear"]),
              FoldTransposeIntoQuantInit(), RemoveUnusedTensors(), RemoveStaticGraphInputs()):
        model = _qonnx_step(model, t, where)
    names = {n.name for n in model.graph.node}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
            while node.name in names:
                node.name += "_"
            names.add(node.name)
    for t in (RemoveIdentityOps(), FoldBiasQuant(), GemmToMatMul(), ExtractConvBias(), MoveFlattenBeforeInputQuant(), RemoveDeadNodes()):
        t.apply(model)
    model = _qonnx_step(model, InferShapes(), where)
    NormaliseOpsets(IR_VERSION).apply(model)
    return model


def _qonnx_step(model: ModelWrapper, t, where: str | None) -> ModelWrapper:
    try:
        return _transform(model, t)
    except Exception as e:  # noqa: BLE001 - third-party code on an untrusted graph raises anything
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise UnsupportedModelError(f"qonnx's {type(t).__name__} cannot process the graph ({type(e).__name__}: "
                                    f"{first})", where,
                                    "the graph is malformed or uses ops qonnx does not know; re-export it") from e


def lower_layers(model: ModelWrapper | onnx.ModelProto, where: str | None = None) -> tuple[ModelWrapper, list[LayerRecord]]:
    """The first half of :func:`lower`: support check and the binary layers lowered, coefficients
    still on the finest grid; the rest (:func:`finish`) can run on copies with different grids."""
    if isinstance(model, onnx.ModelProto):
        model = ModelWrapper(model)
    check_model(model.model, where)
    if any(n.domain == OPS_DOMAIN for n in model.graph.node):
        raise UnsupportedModelError("the model is already lowered (it contains abcn-hw ops)", where,
                                    "pass the QONNX export; 'abcn-hw compile' and 'verify' take a lowered graph as is")
    model = normalise(model, where)
    check_support(model, where)
    records: list[LayerRecord] = []
    try:
        LowerBinaryLayers(records).apply(model)
    except PatternError as e:  # the support check should have caught it: still a user-facing error
        n = e.node
        raise UnsupportedModelError(f"cannot lower {n.op_type if n else 'node'} "
                                    f"'{n.name if n else '?'}': {e.reason}", where) from e
    return model, records


def topological_nodes(nodes) -> list:
    """``nodes`` in a topological order, stable: a graph already in one keeps its order (so chains
    lower byte-identically); among nodes ready together the earlier listed comes first."""
    import heapq
    from collections import defaultdict

    nodes = list(nodes)
    made = {o: i for i, n in enumerate(nodes) for o in n.output}
    deps = [{made[t] for t in n.input if t in made} - {i} for i, n in enumerate(nodes)]
    users: dict[int, list[int]] = defaultdict(list)
    for i, d in enumerate(deps):
        for j in d:
            users[j].append(i)
    left = [len(d) for d in deps]
    ready = [i for i, c in enumerate(left) if c == 0]
    heapq.heapify(ready)
    out = []
    while ready:
        i = heapq.heappop(ready)
        out.append(nodes[i])
        for u in users[i]:
            left[u] -= 1
            if left[u] == 0:
                heapq.heappush(ready, u)
    return out if len(out) == len(nodes) else nodes


def finish(model: ModelWrapper, records: list[LayerRecord], plan: dict[str, int], where: str | None = None,
           keep_shapes: bool = False, grid_meta: dict | None = None) -> tuple[ModelWrapper, LoweringReport]:
    """The second half of :func:`lower` on the output of :func:`lower_layers` (modified in place):
    rounded layers onto the grids of ``plan`` (layer -> bits), thresholds, clean-up, probes."""
    ApplyCoefficientGrid(records, plan).apply(model)
    absorb = AbsorbThresholds(records)
    absorb.apply(model)
    # a rounded layer kept in float (a residual join) combines its dots with the float32 scales; the
    # last layer keeps its integer accumulator on its grid (the HLS backend maps only that)
    FloatCombineRoundedLayers([r for r in records if r.threshold == "float"]).apply(model)
    # residual networks: exact float joins, pools and their quantizers -> integer ops
    ranges = IntegerRanges({r.acc: r.scales.amax for r in records if r.scales.exact and not r.scales.scales_rounded})
    lower_integer_residuals(model, ranges)
    nodes = topological_nodes(model.graph.node)  # the residual rewrites may leave a reader before its producer
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    rep_float_regions = dict(sorted(ranges.skipped.items()))
    for r in records:  # layers whose accumulator now feeds an integer join
        if r.threshold == "float" and any(c.op_type == "ResidualAdd" for c in model.find_consumers(r.acc) or []):
            r.threshold = "residual"
    for t in (RemoveDeadNodes(), PruneAnnotations(), AttachFunctions(), NormaliseOpsets(IR_VERSION)):
        t.apply(model)
    _drop_stale_annotations(model)
    rep = _report(records, where)
    if grid_meta is not None:
        rep.min_agreement, rep.max_acc_bits = grid_meta["min_agreement"], grid_meta["max_acc_bits"]
    if keep_shapes:
        return model, rep
    MakeBatchDynamic().apply(model)
    for bits, (z, spec) in (absorb.probes | ranges.probes).items():
        prop = model.model.metadata_props.add()
        prop.key = "abcn_hw.probe." + bits
        prop.value = z + "|" + spec.encode()
    if rep_float_regions:
        prop = model.model.metadata_props.add()
        prop.key, prop.value = FLOAT_REGIONS_KEY, json.dumps(rep_float_regions, sort_keys=True)
    if not rep.exact and grid_meta is not None:
        prop = model.model.metadata_props.add()
        prop.key, prop.value = GRID_KEY, json.dumps(grid_meta, sort_keys=True)
    model.model.producer_name = "abcn-hw lower"
    model.model.ir_version = IR_VERSION
    return model, rep


def finest_plan(records: list[LayerRecord], max_acc_bits: int = MAX_ACC_BITS, where: str | None = None) -> dict[str, int]:
    """Every rounded layer on the finest grid whose accumulator fits ``max_acc_bits`` bits."""
    plan = {}
    for rec in records:
        if rec.scales.scales_rounded:
            bits = rec.scales.max_grid_bits(max_acc_bits)
            if bits is None:
                raise ContractError(f"layer '{rec.name}' has non-dyadic scales and no coefficient grid of "
                                    f">= {MIN_GRID_BITS} bits fits a {max_acc_bits}-bit accumulator "
                                    f"(K={rec.k}, M={rec.m}, N={rec.n})", where,
                                    "raise --max-acc-bits or train with dyadic scales (--scale-grid fixed)")
            plan[rec.name] = bits
    return plan


def grid_metadata(lowered: onnx.ModelProto) -> dict | None:
    """The coefficient grid and contract a lowering recorded (None for an exact lowering)."""
    for p in lowered.metadata_props:
        if p.key == GRID_KEY:
            return json.loads(p.value)
    return None


def lower(model: ModelWrapper | onnx.ModelProto, where: str | None = None, keep_shapes: bool = False,
          grid: dict[str, int] | None = None, max_acc_bits: int = MAX_ACC_BITS,
          min_agreement: float = DEFAULT_MIN_AGREEMENT) -> tuple[ModelWrapper, LoweringReport]:
    """Lower a QONNX binary network; raises UnsupportedModelError (listing every problem) before
    rewriting anything. Returns the lowered model and the report (no measurements).
    ``keep_shapes``: keep the export's fixed batch and the inferred shapes (for qonnx's executor).
    ``grid``: bits of the coefficient grid per rounded layer (layers not named: the finest grid
    within ``max_acc_bits``); no measurement is made -- :func:`abcn_hw.compiler.contract.lower_to_contract`
    chooses the grids on calibration inputs and enforces ``min_agreement``, which is recorded."""
    for k, v in (grid or {}).items():
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not MIN_GRID_BITS <= v <= MAX_GRID_BITS:
            raise UsageError(f"coefficient grid of layer '{k}' must be {MIN_GRID_BITS}..{MAX_GRID_BITS} bits, got {v!r}",
                             where)
    model, records = lower_layers(model, where)
    plan = finest_plan(records, max_acc_bits, where) | {k: int(v) for k, v in (grid or {}).items()
                                                         if any(r.name == k for r in records)}
    meta = {"bits": dict(sorted(plan.items())), "max_acc_bits": max_acc_bits, "min_agreement": min_agreement}
    return finish(model, records, plan, where, keep_shapes, meta)


def _drop_stale_annotations(model: ModelWrapper) -> None:
    """qonnx's clean-up annotates tensors it names at random (a raw export's folded constants);
    annotations of tensors no longer in the graph go, so the output does not depend on them."""
    g = model.graph
    names = {t for n in g.node for t in list(n.input) + list(n.output)} | {v.name for v in g.input} \
        | {v.name for v in g.output}
    keep = [a for a in g.quantization_annotation if a.tensor_name in names]
    del g.quantization_annotation[:]
    g.quantization_annotation.extend(keep)


def _report(records: list[LayerRecord], where: str | None) -> LoweringReport:
    report = LoweringReport(source=where)
    for r in records:
        report.layers.append(LayerReport(r.name, r.op, list(r.in_shape), list(r.out_shape), r.m, r.n, r.k,
                                         r.scales.exact, r.scales.scales_rounded, r.acc_bits, r.scales.bound,
                                         r.threshold, r.next_bases, bits_tensor=r.bits_tensor,
                                         grid_bits=r.scales.grid_bits if r.threshold in ("fused", "final") else None))
        report.layers[-1].padding = r.padding
    return report


def measure(report: LoweringReport, exported, lowered, x: np.ndarray, batch: int | None = None) -> LoweringReport:
    """Fill the report's measured fields (equal bits per layer, output equality, agreement)."""
    from .compare import compare

    return fill_measurements(report, compare(exported, lowered, x, batch=batch))


def fill_measurements(report: LoweringReport, cmp) -> LoweringReport:
    """The report's measured fields from a Comparison of its lowered graph with the export."""
    report.images = cmp.images
    report.output_equal = cmp.output_equal
    report.prediction_agreement = cmp.prediction_agreement
    for layer in report.layers:
        if layer.bits_tensor is not None and layer.bits_tensor in cmp.layer_equal_bits:
            layer.equal_bits = cmp.layer_equal_bits[layer.bits_tensor]
    return report


def lower_file(in_path: str | os.PathLike, out_path: str | os.PathLike, report: bool = False,
               inputs: np.ndarray | None = None, calibration=None, min_agreement: float = DEFAULT_MIN_AGREEMENT,
               max_acc_bits: int = MAX_ACC_BITS) -> LoweringReport:
    """Lower the QONNX file ``in_path`` and write the lowered model to ``out_path`` atomically
    (nothing is written when the model is unsupported or misses the rounding contract). Layers
    with non-dyadic scales get the coefficient grids chosen on ``calibration`` (a callable giving
    (inputs, description) or None; default: ``inputs``), see abcn_hw.compiler.contract. With
    ``report`` and ``inputs`` the report also carries measured agreement against the executed export."""
    from .contract import lower_to_contract

    in_path, out_path = Path(in_path), Path(out_path)
    proto = read_model(in_path)
    if calibration is None and inputs is not None:
        def calibration():
            return inputs, f"{len(inputs)} inputs"
    lowered, rep = lower_to_contract(proto, calibration, min_agreement, max_acc_bits, where=str(in_path))
    if report and inputs is not None:
        cal = getattr(rep, "calibration_comparison", None)
        if cal is not None and cal[0] is inputs:  # measured on these inputs by the grid search
            fill_measurements(rep, cal[1])
        else:
            measure(rep, proto, lowered, inputs)
    tmp = out_path.with_name(out_path.name + ".tmp")
    try:
        onnx.save(lowered.model, str(tmp))
        os.replace(tmp, out_path)
    except OSError as e:
        if tmp.exists():
            tmp.unlink()
        raise OutputPathError(f"cannot write the lowered model: {e.strerror}", str(out_path),
                              "choose a writable --out location") from e
    return rep


__all__ = ["lower", "lower_file", "lower_layers", "finish", "finest_plan", "grid_metadata", "measure", "normalise",
           "GRID_KEY"]
