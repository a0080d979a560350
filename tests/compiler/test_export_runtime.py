"""The onnxruntime reference for exports (BipolarQuant / Quant functions) == qonnx's executor."""
from __future__ import annotations

import numpy as np
from _builders import abc_net, bnn_pynq, export_abc, mnist

from abcn_hw.compiler.export_runtime import run, runnable_export, session
from abcn_hw.qonnx_export import execute_qonnx


def test_bnn_pynq_tfc_export_runtime_matches_qonnx():
    exp, _ = bnn_pynq("tfc_1w1a")
    x = mnist("test")[0][:50]
    np.testing.assert_array_equal(run(session(runnable_export(exp)), x)[0], execute_qonnx(exp, x))


def test_abc_export_runtime_matches_qonnx():
    net, x = abc_net(dict(convs=[(4, 3, 1, 1), (6, 3, 2, 1)], m=[2, 2, 3], n=[None, 3, 2], pool=0, hw=12))
    exp = export_abc(net, (1, 12, 12))
    np.testing.assert_array_equal(run(session(runnable_export(exp)), x[:40])[0], execute_qonnx(exp, x[:40]))
