"""The export's cleanup (abcn_hw.qonnx_export.export.cleanup_export) folds constants with
FoldConstantsInOrder (all folds in one pass, one shape inference) instead of qonnx's one fold per
pass: the cleaned model must be byte-identical to qonnx's own ``cleanup_model`` on the raw
Brevitas exports of zoo nets, including a residual net whose folds re-sort the node list."""
from __future__ import annotations

import contextlib
import copy
import io
import tempfile
import warnings
from pathlib import Path

import onnx
import pytest


def _raw_export(name: str, m: int, n: int, shape: tuple[int, ...]) -> onnx.ModelProto:
    import torch
    from brevitas.export import export_qonnx

    from abcn_hw.models import build_model
    from abcn_hw.qonnx_export.export import _quiet_native_stderr, normalise_opsets

    torch.manual_seed(0)
    model = build_model(name, m, n, input_shape=shape).eval()
    example = torch.zeros((1,) + shape)
    with torch.no_grad():
        model(example)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet_native_stderr():
            warnings.simplefilter("ignore")
            export_qonnx(model, example, export_path=str(raw), dynamo=False)
        return normalise_opsets(onnx.load(str(raw)))


@pytest.mark.parametrize("name,m,n,shape,folds", [("lenet", 2, 2, (1, 28, 28), False),
                                                  ("resnet8", 1, 1, (3, 32, 32), True)])
def test_cleanup_export_is_qonnx_cleanup_model_byte_for_byte(name, m, n, shape, folds):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    from abcn_hw.qonnx_export.export import cleanup_export

    raw = _raw_export(name, m, n, shape)
    ours = cleanup_export(ModelWrapper(copy.deepcopy(raw))).model
    theirs = cleanup_model(ModelWrapper(copy.deepcopy(raw))).model
    consts = sum(1 for node in raw.graph.node if node.op_type not in ("Quant", "BipolarQuant")
                 and all(t in {i.name for i in raw.graph.initializer} for t in node.input))
    if folds:  # there was something to fold
        assert consts > 0 and len(ours.graph.node) < len(raw.graph.node)
    assert ours.SerializeToString() == theirs.SerializeToString()
