"""BNN-PYNQ 1W1A models (random weights, some negative BN scales, calibrated BN): lowered graph
(onnxruntime) vs the executed export, element for element."""
from __future__ import annotations

import numpy as np
import pytest
from _builders import bnn_pynq, mnist

from abcn_hw.compiler import compare, lower, measure


def _check(name: str, n_images: int | None, batch: int):
    exp, x_cal = bnn_pynq(name)
    low, rep = lower(exp)
    x = x_cal if name.startswith("cnv") else mnist("test")[0]
    x = x[:n_images] if n_images else x
    measure(rep, exp, low, x, batch=batch)
    assert rep.exact, rep.table()
    assert all(layer.threshold in ("fused", "final") for layer in rep.layers), rep.table()
    assert rep.output_equal == 1.0, rep.table()
    assert rep.prediction_agreement == 1.0
    assert all(layer.equal_bits == 1.0 for layer in rep.layers if layer.threshold == "fused")
    return exp, low, rep


def test_tfc_1w1a_exact_on_bundled_test_set():
    exp, low, rep = _check("tfc_1w1a", None, 500)
    assert rep.images == 2000
    ops = [n.op_type for n in low.graph.node]
    assert ops.count("XnorPopcountMatMul") == 4 and ops.count("MultiBaseThreshold") == 3
    assert not any(n.op_type in ("BipolarQuant", "MatMul", "BatchNormalization") for n in low.graph.node)


def test_cnv_1w1a_small_batch_exact():
    _check("cnv_1w1a", 12, 12)


def test_tfc_2w2a_kbit_exact():
    """2-bit weights and activations as thermometer bases (M = N = 2)."""
    exp, low, rep = _check("tfc_2w2a", None, 500)
    assert [(layer.m, layer.n) for layer in rep.layers] == [(2, 1), (2, 2), (2, 2), (2, 2)]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sfc_1w1a", "lfc_1w1a", "tfc_1w2a", "sfc_2w2a", "lfc_1w2a"])
def test_fc_1w1a_exact(name):
    _check(name, None, 500)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cnv_1w1a", "cnv_1w2a", "cnv_2w2a"])
def test_cnv_exact(name):
    _check(name, 200, 25)


def test_lowered_numpy_reference_equals_ort():
    """qonnx's executor (numpy references of our ops) and onnxruntime (function bodies) agree on
    the whole lowered TFC graph."""
    from qonnx.core.onnx_exec import execute_onnx

    exp, _ = bnn_pynq("tfc_1w1a")
    low_fixed, _ = lower(exp, keep_shapes=True)
    low, _ = lower(exp)
    x = mnist("test")[0][:1]
    ref = execute_onnx(low_fixed, {low_fixed.graph.input[0].name: x})[low_fixed.graph.output[0].name]
    cmp = compare(exp, low, x)
    assert cmp.identical
    from abcn_hw.compiler.export_runtime import run, session
    got = run(session(low.model, optimize=True), x)[0]
    np.testing.assert_array_equal(ref, got)


def test_tfc_1w1a_dynamo_export_exact():
    """The dynamo exporter's graph (Gemm, BatchNormalization with extra outputs) lowers too."""
    import contextlib
    import io
    import os
    import tempfile
    import warnings

    import onnx
    import torch
    from brevitas.export import export_qonnx
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    from _builders import calibrate_bn

    torch.manual_seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _ = model_with_cfg("tfc_1w1a", pretrained=False)
    calibrate_bn(model, mnist("train")[0][:300])
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        path = os.path.join(tmp, "m.onnx")
        export_qonnx(model, torch.rand(1, 1, 28, 28), export_path=path, dynamo=True)
        exp = onnx.load(path)
    assert any(n.op_type == "Gemm" for n in exp.graph.node)
    low, rep = lower(exp)
    measure(rep, exp, low, mnist("test")[0][:500])
    assert rep.exact and rep.output_equal == 1.0, rep.table()
