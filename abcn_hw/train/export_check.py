"""Export a trained model to QONNX and measure the export: accuracy of the executed graph and its
fidelity to the PyTorch eval forward, from one execution over the test split."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from torch import nn

from ..qonnx_export import Fidelity, execute_qonnx
from .loop import predict


@dataclass
class ExportReport:
    """Executed-export accuracy and fidelity on ``fidelity.images`` test images."""

    accuracy: float
    fidelity: Fidelity
    model_accuracy: float

    def fidelity_json(self) -> dict[str, Any]:
        f = self.fidelity
        return {"images": f.images, "max_abs_diff": f.max_abs_diff, "logit_range": f.logit_range,
                "relative_diff": f.relative_diff, "equal_fraction": f.equal_fraction,
                "argmax_agreement": f.argmax_agreement, "ok": f.ok, "summary": f.summary()}


def fidelity_from_outputs(ref: np.ndarray, got: np.ndarray) -> Fidelity:
    """The same numbers :func:`abcn_hw.qonnx_export.check_fidelity` reports, from outputs in hand."""
    diff = float(np.abs(got.astype(np.float64) - ref).max()) if ref.size else 0.0
    rng = float(ref.max() - ref.min()) if ref.size else 0.0
    agree = float((got.argmax(-1) == ref.argmax(-1)).mean()) if ref.ndim == 2 and len(ref) else float("nan")
    return Fidelity(diff, rng, float((got == ref).mean()) if ref.size else float("nan"), agree, len(ref))


def measure_export(model: nn.Module, qonnx_model: onnx.ModelProto | str | os.PathLike, images: np.ndarray,
                   labels: np.ndarray | None = None) -> ExportReport:
    """Run the PyTorch model (eval) and the executed QONNX graph on ``images``; accuracies are NaN
    when ``labels`` is None."""
    from ..errors import ExportError

    if isinstance(qonnx_model, (str, os.PathLike)) and not Path(qonnx_model).is_file():
        raise ExportError("QONNX file not found", str(qonnx_model), "re-export with abcn-hw export")
    ref = predict(model, images)
    got = execute_qonnx(qonnx_model, images)
    if got.shape != ref.shape:
        raise ExportError(f"executed export has output shape {got.shape}, PyTorch {ref.shape}")
    if labels is None or len(labels) == 0:
        acc = model_acc = float("nan")
    else:
        labels = np.asarray(labels)
        acc = float((got.argmax(-1) == labels).mean())
        model_acc = float((ref.argmax(-1) == labels).mean())
    return ExportReport(acc, fidelity_from_outputs(ref, got), model_acc)
