"""ABC model -> QONNX file, and the fidelity check (PyTorch eval output vs executed export).

The export goes through ``brevitas.export.export_qonnx`` with the TorchScript exporter
(``dynamo=False``: the dynamo exporter drops quantizers across residual adds, Brevitas #1608).
The raw export is then normalised so downstream tools accept it:

* constants folded, shapes inferred, names made unique and readable (qonnx ``cleanup_model``);
* the standard ONNX domain listed first in ``opset_import`` (qonnx's FoldConstants needs it);
* IR version capped at ``IR_VERSION`` so older onnxruntime releases load the file.
"""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from ..errors import ExportError

IR_VERSION = 10
QONNX_DOMAIN = "qonnx.custom_op.general"


def normalise_opsets(model: onnx.ModelProto, ir_version: int = IR_VERSION) -> onnx.ModelProto:
    """Standard domain first in opset_import, and the IR version capped (in place; returns model)."""
    imports = sorted(model.opset_import, key=lambda o: (o.domain not in ("", "ai.onnx"), o.domain))
    del model.opset_import[:]
    model.opset_import.extend(imports)
    if model.ir_version > ir_version:
        model.ir_version = ir_version
    return model


@contextlib.contextmanager
def _quiet_native_stderr():
    """torch's TorchScript exporter prints a C++ warning about the qonnx opset domain straight to
    file descriptor 2; hide it (and only it: the descriptor is restored afterwards)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def cleanup_export(model, fast: bool = True):
    """qonnx's ``cleanup_model`` (preserve_qnt_ops=True, no input-size override, no bias
    extraction): the same transformations in the same order, with qonnx's one-node-per-pass
    FoldConstants replaced by :class:`.fold_constants.FoldConstantsInOrder` (the same folds, one
    shape inference) unless ``fast`` is False. Returns the cleaned ModelWrapper."""
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import (GiveReadableTensorNames, GiveUniqueNodeNames,
                                              GiveUniqueParameterTensors, RemoveStaticGraphInputs,
                                              RemoveUnusedTensors)
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit

    from .fold_constants import FoldConstantsInOrder

    for node in model.graph.node:  # qonnx's "temporary fix for QONNX op domains"
        if node.op_type in ("Quant", "Trunc", "BipolarQuant"):
            node.domain = QONNX_DOMAIN
    keep = ["Quant", "BipolarQuant", "QuantizeLinear", "DequantizeLinear"]
    fold = FoldConstantsInOrder(keep) if fast and not model.fix_float64 else FoldConstants(exclude_op_types=keep)
    for t in (InferShapes(), GiveUniqueParameterTensors(), fold, FoldTransposeIntoQuantInit(), RemoveUnusedTensors(),
              RemoveStaticGraphInputs(), GiveUniqueNodeNames(), GiveReadableTensorNames()):
        model = model.transform(t)
    return model


def export_to_qonnx(model: torch.nn.Module, input_shape: tuple[int, ...], path: str | os.PathLike,
                    batch: int = 1) -> onnx.ModelProto:
    """Export ``model`` (eval mode) to a normalised QONNX file at ``path``; returns the ModelProto.

    ``input_shape`` is (C, H, W) or (features,), without the batch dimension. The file is written
    atomically: on any failure nothing is left at ``path``.
    """
    from brevitas.export import export_qonnx
    from qonnx.core.modelwrapper import ModelWrapper

    path = Path(path)
    was_training = model.training
    model.eval()
    try:
        example = torch.zeros((batch,) + tuple(input_shape))
        with torch.no_grad():
            model(example)  # populate the eval-constant caches before tracing
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "raw.onnx"
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet_native_stderr():
                warnings.simplefilter("ignore")
                export_qonnx(model, example, export_path=str(raw), dynamo=False)
            proto = onnx.load(str(raw))
            normalise_opsets(proto)
            wrapped = cleanup_export(ModelWrapper(proto))
            proto = normalise_opsets(wrapped.model)
            proto.producer_name = "abcn-hw"
            tmp_out = path.with_name(path.name + ".tmp")
            onnx.save(proto, str(tmp_out))
            os.replace(tmp_out, path)
    except ExportError:
        raise
    except OSError as e:
        raise ExportError(f"cannot write the QONNX file: {e.strerror}", str(path),
                          "choose a writable --out location") from e
    finally:
        model.train(was_training)
    return proto


def execute_qonnx(model: onnx.ModelProto | str | os.PathLike, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Run a QONNX model on a batch with qonnx's executor (reference semantics of Quant /
    BipolarQuant). ``x`` is float32 with a leading batch dimension; returns the first output."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes

    proto = onnx.load(str(model)) if not isinstance(model, onnx.ModelProto) else model
    x = np.asarray(x, dtype=np.float32)
    outs = []
    cache: dict[int, object] = {}
    for start in range(0, len(x), batch_size):
        chunk = x[start:start + batch_size]
        n = len(chunk)
        if n not in cache:
            w = ModelWrapper(onnx.ModelProto.FromString(proto.SerializeToString()))
            w = w.transform(ChangeBatchSize(n)).transform(InferShapes())
            cache[n] = w
        w = cache[n]
        res = execute_onnx(w, {w.graph.input[0].name: chunk})
        outs.append(res[w.graph.output[0].name])
    return np.concatenate(outs, axis=0)


@dataclass
class Fidelity:
    """PyTorch eval output vs executed export on the same inputs."""

    max_abs_diff: float
    logit_range: float
    equal_fraction: float
    argmax_agreement: float
    images: int

    @property
    def relative_diff(self) -> float:
        return self.max_abs_diff / max(self.logit_range, 1e-12)

    @property
    def ok(self) -> bool:
        return self.relative_diff <= 1e-5 and self.argmax_agreement == 1.0

    def summary(self) -> str:
        return (f"export fidelity on {self.images} inputs: max |diff| {self.max_abs_diff:.3g} "
                f"({self.relative_diff:.3g} of the logit range), {100 * self.equal_fraction:.2f}% of "
                f"outputs bit-equal, argmax agreement {100 * self.argmax_agreement:.2f}%")


def check_fidelity(model: torch.nn.Module, qonnx_model, x: np.ndarray) -> Fidelity:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ref = model(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy()
    finally:
        model.train(was_training)
    got = execute_qonnx(qonnx_model, x)
    if got.shape != ref.shape:
        raise ExportError(f"executed export has output shape {got.shape}, PyTorch {ref.shape}")
    diff = float(np.abs(got.astype(np.float64) - ref).max()) if ref.size else 0.0
    rng = float(ref.max() - ref.min()) if ref.size else 0.0
    agree = float((got.argmax(-1) == ref.argmax(-1)).mean()) if ref.ndim == 2 else float("nan")
    return Fidelity(diff, rng, float((got == ref).mean()), agree, len(x))
