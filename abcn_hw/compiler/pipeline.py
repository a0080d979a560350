"""lower(model): support check, then the ordered lowering passes; lower_file: the same on files."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.infer_shapes import InferShapes

from ..errors import OutputPathError, UnsupportedModelError
from .graphutil import copy_model
from .patterns import PatternError
from .passes import (AbsorbThresholds, AttachFunctions, FloatCombineRoundedLayers, GemmToMatMul, LayerRecord, LowerBinaryLayers,
                     MakeBatchDynamic, NormaliseOpsets, RemoveDeadNodes, RemoveIdentityOps)
from .report import LayerReport, LoweringReport
from .support import check_support

IR_VERSION = 10


def normalise(model: ModelWrapper) -> ModelWrapper:
    """Clean-up of a (raw or cleaned) Brevitas export: standard opset first, constants folded,
    shapes inferred, no-ops removed, Gemm -> MatMul."""
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import GiveUniqueParameterTensors, RemoveStaticGraphInputs, RemoveUnusedTensors
    from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit

    model = copy_model(model)
    NormaliseOpsets(IR_VERSION).apply(model)
    for node in model.graph.node:  # Brevitas' TorchScript exporter may use the legacy domain
        if node.op_type in ("Quant", "BipolarQuant", "Trunc") and node.domain in ("onnx.brevitas", "finn.custom_op.general"):
            node.domain = "qonnx.custom_op.general"
    # qonnx's cleanup_model without its renaming passes: node names stay the user's
    for t in (InferShapes(), GiveUniqueParameterTensors(),
              FoldConstants(exclude_op_types=["Quant", "BipolarQuant", "QuantizeLinear", "DequantizeLinear"]),
              FoldTransposeIntoQuantInit(), RemoveUnusedTensors(), RemoveStaticGraphInputs()):
        model = model.transform(t)
    names = {n.name for n in model.graph.node}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
            while node.name in names:
                node.name += "_"
            names.add(node.name)
    for t in (RemoveIdentityOps(), GemmToMatMul(), RemoveDeadNodes()):
        t.apply(model)
    model = model.transform(InferShapes())
    NormaliseOpsets(IR_VERSION).apply(model)
    return model


def lower(model: ModelWrapper | onnx.ModelProto, where: str | None = None,
          keep_shapes: bool = False) -> tuple[ModelWrapper, LoweringReport]:
    """Lower a QONNX binary network; raises UnsupportedModelError (listing every problem) before
    rewriting anything. Returns the lowered model and the report (no measurements).
    ``keep_shapes``: keep the export's fixed batch and the inferred shapes (for qonnx's executor)."""
    if isinstance(model, onnx.ModelProto):
        model = ModelWrapper(model)
    model = normalise(model)
    check_support(model, where)
    records: list[LayerRecord] = []
    try:
        LowerBinaryLayers(records).apply(model)
    except PatternError as e:  # the support check should have caught it: still a user-facing error
        n = e.node
        raise UnsupportedModelError(f"cannot lower {n.op_type if n else 'node'} "
                                    f"'{n.name if n else '?'}': {e.reason}", where) from e
    absorb = AbsorbThresholds(records)
    absorb.apply(model)
    FloatCombineRoundedLayers(records).apply(model)
    for t in (RemoveDeadNodes(), AttachFunctions(), NormaliseOpsets(IR_VERSION)):
        t.apply(model)
    if keep_shapes:
        return model, _report(records, where)
    MakeBatchDynamic().apply(model)
    for bits, (z, spec) in absorb.probes.items():
        prop = model.model.metadata_props.add()
        prop.key = "abcn_hw.probe." + bits
        prop.value = z + "|" + spec.encode()
    model.model.producer_name = "abcn-hw lower"
    model.model.ir_version = IR_VERSION
    return model, _report(records, where)


def _report(records: list[LayerRecord], where: str | None) -> LoweringReport:
    report = LoweringReport(source=where)
    for r in records:
        report.layers.append(LayerReport(r.name, r.op, list(r.in_shape), list(r.out_shape), r.m, r.n, r.k,
                                         r.scales.exact, r.scales.scales_rounded, r.acc_bits, r.scales.bound,
                                         r.threshold, r.next_bases, bits_tensor=r.bits_tensor))
        report.layers[-1].padding = r.padding
    return report


def measure(report: LoweringReport, exported, lowered, x: np.ndarray, batch: int | None = None) -> LoweringReport:
    """Fill the report's measured fields (equal bits per layer, output equality, agreement)."""
    from .compare import compare

    cmp = compare(exported, lowered, x, batch=batch)
    report.images = cmp.images
    report.output_equal = cmp.output_equal
    report.prediction_agreement = cmp.prediction_agreement
    for layer in report.layers:
        if layer.bits_tensor is not None and layer.bits_tensor in cmp.layer_equal_bits:
            layer.equal_bits = cmp.layer_equal_bits[layer.bits_tensor]
    return report


def lower_file(in_path: str | os.PathLike, out_path: str | os.PathLike, report: bool = False,
               inputs: np.ndarray | None = None) -> LoweringReport:
    """Lower the QONNX file ``in_path`` and write the lowered model to ``out_path`` atomically
    (nothing is written when the model is unsupported). With ``report`` and ``inputs`` the
    report also carries measured agreement against the executed export."""
    in_path, out_path = Path(in_path), Path(out_path)
    try:
        proto = onnx.load(str(in_path))
    except (OSError, onnx.onnx_cpp2py_export.checker.ValidationError, Exception) as e:  # noqa: BLE001
        if isinstance(e, UnsupportedModelError):
            raise
        raise UnsupportedModelError(f"cannot read the model: {e}", str(in_path), "pass a QONNX .onnx file") from e
    lowered, rep = lower(ModelWrapper(proto), where=str(in_path))
    if report and inputs is not None:
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


__all__ = ["lower", "lower_file", "measure", "normalise"]
