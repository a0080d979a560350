"""Nets written the way a Brevitas user writes them (tests/compiler/_user_nets.py): layers with the
default ``bias=True`` (float, Int32Bias-quantized or dyadic biases, on hidden and final convs and
linears) and an MLP whose first QuantLinear reads the flattened 8-bit quantized image. Both torch
exporters; the lowered graph equals the executed export on every element and every layer bit."""
from __future__ import annotations

import numpy as np
import pytest
from _user_nets import user_net

from abcn_hw.compiler import compare, lower
from abcn_hw.compiler import export_runtime as er
from abcn_hw.compiler.passes import cleanup

CASES = [("bias_conv", False), ("bias_conv", True), ("mlp", False), ("mlp", True), ("bias_conv_final", False),
         ("bias_conv_dyadic", True)]
SLOW = [("bias_conv_final", True), ("bias_conv_dyadic", False)]


def _check(kind: str, dynamo: bool):
    exp, x = user_net(kind, dynamo)
    ops = [n.op_type for n in exp.graph.node]
    if kind.startswith("bias_conv"):  # the export really carries the convs' biases
        assert sum(1 for n in exp.graph.node if n.op_type == "Conv" and len(n.input) > 2 and n.input[2]) == \
            ops.count("Conv") == (3 if kind == "bias_conv_final" else 2)
    else:  # the quantized image is flattened after its quantizer, then read by a biased Gemm
        q = ops.index("Quant")
        assert ops[q + 1] in ("Flatten", "Reshape") and ops.count("Gemm") == 3
    low, rep = lower(exp)
    assert all(la.exact for la in rep.layers), rep.table()
    assert rep.layers[0].op == ("IntegerInputMatMul" if kind == "mlp" else "IntegerInputConv")
    assert [la.threshold for la in rep.layers] == ["fused"] * (len(rep.layers) - 1) + ["final"]
    assert "Conv" not in [n.op_type for n in low.graph.node]
    cmp = compare(exp, low, x)
    assert cmp.output_equal == 1.0 and cmp.max_abs_diff == 0.0 and cmp.prediction_agreement == 1.0
    assert len(cmp.layer_equal_bits) == len(rep.layers) - 1 and all(v == 1.0 for v in cmp.layer_equal_bits.values())
    return exp, x


@pytest.mark.parametrize("kind, dynamo", CASES, ids=lambda v: str(v))
def test_user_net_lowers_exactly(kind, dynamo):
    _check(kind, dynamo)


@pytest.mark.slow
@pytest.mark.parametrize("kind, dynamo", SLOW, ids=lambda v: str(v))
def test_user_net_lowers_exactly_more(kind, dynamo):
    _check(kind, dynamo)


def test_biased_net_with_brevitas_scales_meets_the_rounding_contract():
    """Brevitas' own binary weight quantizer (scale 0.1) with biases: the layers are rounded, the
    grids are chosen on calibration inputs and the contract (>= 99.9 % prediction agreement) holds
    on other inputs too; the biases stay in the tails, executed as exported."""
    from abcn_hw.compiler.contract import lower_to_contract

    exp, x = user_net("bias_conv_rounded", True)
    low, rep = lower_to_contract(exp, lambda: (x[:100], "100 images"))
    assert not any(la.exact for la in rep.layers) and rep.calibration_agreement >= 0.999
    assert compare(exp, low, x[100:]).prediction_agreement >= 0.999


def test_conv_bias_as_an_add_is_the_exported_conv():
    """The reference every comparison uses runs the bias as an Add after the Conv (the lowering's
    normalisation, ExtractConvBias); onnxruntime running the export's own Conv-with-bias gives
    the same float32 values (the bias is added to the finished, exact sum)."""
    exp, x = user_net("bias_conv_final", False)
    split = er.run(er.session(er.runnable_export(exp)), x)[0]
    keep = cleanup.ExtractConvBias.apply
    try:
        cleanup.ExtractConvBias.apply = lambda self, model: (model, False)
        fused = er.runnable_export(exp)
    finally:
        cleanup.ExtractConvBias.apply = keep
    assert sum(1 for n in fused.graph.node if n.op_type == "Conv" and len(n.input) > 2) == 3
    assert np.array_equal(er.run(er.session(fused), x)[0], split)


def test_pooled_integer_input_is_refused_by_name():
    """Max pooling the quantized image before the first layer is refused naming the node and the fix
    (unlike a flatten, which moves before the quantizer)."""
    import torch.nn as nn
    from _user_nets import _layers, build, export

    from abcn_hw.errors import UnsupportedModelError

    conv, linear, act, inq, _ = _layers()

    class Pooled(nn.Module):
        def __init__(self):
            super().__init__()
            self.inq, self.c1, self.b1, self.a1, self.fc = inq(), conv(1, 4, 3), nn.BatchNorm2d(4), act(), linear(100, 10)

        def forward(self, x):
            x = self.a1(self.b1(self.c1(nn.functional.max_pool2d(self.inq(x), 2))))
            return self.fc(x.flatten(1))

    with pytest.raises(UnsupportedModelError) as e:
        lower(export(build(Pooled()), False))
    assert "maxpool of the integer-coded input between its quantizer and the first layer (apply it to the float " \
           "image before the input quantizer) [MaxPool '/MaxPool']" in str(e.value), str(e.value)
