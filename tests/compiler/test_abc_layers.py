"""Random ABC layers (hypothesis): integer-input conv -> BN [-> maxpool] -> binary conv under test
(channels, kernel 1..5, stride 1..2, padding 0..2, M, N 1..5, negative BN scales) -> BN ->
[maxpool] -> flatten -> FC -> BN. Trained one step, BN calibrated, exported through Brevitas,
lowered; the lowered graph (onnxruntime) must equal the executed export element for element."""
from __future__ import annotations

import numpy as np
import pytest
from _builders import abc_net, export_abc
from hypothesis import HealthCheck, given, settings, strategies as st

from abcn_hw.compiler import lower, measure


@st.composite
def layer_specs(draw):
    c1 = draw(st.integers(1, 4))
    k1 = draw(st.sampled_from([1, 3, 5]))
    p1 = draw(st.integers(0, 2))
    c2 = draw(st.integers(1, 6))
    k = draw(st.integers(1, 5))
    s = draw(st.integers(1, 2))
    p = draw(st.integers(0, 2))
    m = [draw(st.integers(1, 5)) for _ in range(3)]
    n = [None, draw(st.integers(1, 5)), draw(st.integers(1, 5))]
    size0 = 12 + 2 * p1 - k1 + 1
    pool0 = draw(st.booleans())
    size = size0 // 2 if pool0 else size0
    out = (size + 2 * p - k) // s + 1
    if out < 1:
        k, p = 1, p
        out = (size + 2 * p - k) // s + 1
    pool1 = draw(st.booleans()) and out >= 2
    spec = dict(convs=[(c1, k1, 1, p1), (c2, k, s, p)], m=m, n=n, hw=12, neg_bn=0.4,
                pool=0 if pool0 else (1 if pool1 else None), classes=draw(st.integers(2, 6)))
    return spec, draw(st.integers(0, 10_000))


def _lower_and_check(spec, seed, require_exact=True):
    net, x = abc_net(spec, seed)
    exp = export_abc(net, (1, spec["hw"], spec["hw"]))
    low, rep = lower(exp)
    measure(rep, exp, low, x, batch=64)
    if require_exact or rep.exact:
        assert rep.exact, rep.table()
        assert rep.output_equal == 1.0, rep.table()
        for layer in rep.layers[:-1]:
            assert layer.threshold == "fused" and layer.equal_bits == 1.0, rep.table()
    else:  # statistical contract for rounded layers
        assert rep.prediction_agreement >= 0.999, rep.table()
        assert all(layer.equal_bits >= 0.999 for layer in rep.layers[:-1]), rep.table()
    assert rep.layers[-1].threshold == "final"
    return rep


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(layer_specs())
def test_random_abc_layers_exact(case):
    _lower_and_check(*case)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(layer_specs())
def test_random_abc_layers_exact_many(case):
    _lower_and_check(*case)


def test_padded_binary_conv_uses_bit_zero_padding():
    """A padded binary conv: explicit Pad(-sum beta) folded into XnorPopcountConv pads (bit 0)."""
    spec = dict(convs=[(3, 3, 1, 1), (4, 3, 1, 2)], m=[2, 2, 2], n=[None, 3, 2], hw=12, pool=None)
    net, x = abc_net(spec, 3)
    exp = export_abc(net, (1, 12, 12))
    assert any(n.op_type == "Pad" for n in exp.graph.node)
    low, rep = lower(exp)
    conv = next(n for n in low.graph.node if n.op_type == "XnorPopcountConv")
    assert [a.ints for a in conv.attribute if a.name == "pads"][0] == [2, 2, 2, 2]
    assert not any(n.op_type == "Pad" for n in low.graph.node)
    measure(rep, exp, low, x)
    assert rep.output_equal == 1.0


def test_float_scale_grid_is_rounded_and_reported():
    spec = dict(convs=[(4, 3, 1, 1)], m=[2, 2], n=[None, 2], hw=12, pool=0, grid="float")
    net, x = abc_net(spec, 5)
    exp = export_abc(net, (1, 12, 12))
    low, rep = lower(exp)
    measure(rep, exp, low, x)
    assert not rep.exact and all(layer.scales_rounded for layer in rep.layers)
    assert rep.layers[0].equal_bits >= 0.999 and rep.prediction_agreement >= 0.999, rep.table()
    assert "rounded" in rep.table()
    assert rep.to_dict()["exact"] is False


@pytest.mark.parametrize("variant", [
    dict(layer_kw=dict(ternary=True), m=[2, 2, 2]),
    dict(layer_kw=dict(per_channel=False)),
    dict(grid="pow2"),
    dict(layer_kw=dict(scale_bits=8)),
    dict(layer_kw=dict(learn_alpha=True)),
    dict(input_bits=4),
    dict(int_input=False, n=[3, 2, 3]),
], ids=["ternary", "per-tensor", "pow2", "8-bit-scales", "learned-alpha", "4-bit-input", "binarized-float-input"])
def test_abc_quantizer_variants_exact(variant):
    spec = dict(convs=[(4, 3, 1, 1), (5, 3, 1, 1)], m=[2, 3, 2], n=[None, 2, 3], hw=10, pool=0, classes=4)
    spec.update(variant)
    # 8-bit scales exceed the worst-case 2**24 bound of the final layer: classified "rounded"
    rep = _lower_and_check(spec, 7, require_exact="scale_bits" not in variant.get("layer_kw", {}))
    if not rep.exact:
        assert not any(layer.scales_rounded for layer in rep.layers)


def test_lowered_conv_graph_numpy_reference_equals_ort():
    """qonnx's executor (numpy references: IntegerInputConv, BitMaxPool, padded XnorPopcountConv,
    MultiBaseThreshold, ...) and onnxruntime (function bodies) agree on a whole lowered graph."""
    from qonnx.core.onnx_exec import execute_onnx

    from abcn_hw.compiler.export_runtime import run, session

    spec = dict(convs=[(3, 3, 1, 1), (4, 3, 2, 1)], m=[2, 3, 2], n=[None, 2, 3], hw=10, pool=0, classes=4)
    net, x = abc_net(spec, 11)
    exp = export_abc(net, (1, 10, 10))
    low_fixed, _ = lower(exp, keep_shapes=True)
    low, _ = lower(exp)
    ops = {n.op_type for n in low_fixed.graph.node}
    assert {"IntegerInputConv", "BitMaxPool", "XnorPopcountConv", "MultiBaseThreshold"} <= ops
    got = run(session(low.model, optimize=True), x[:3])[0]
    for i in range(3):
        ref = execute_onnx(low_fixed, {low_fixed.graph.input[0].name: x[i:i + 1]})[low_fixed.graph.output[0].name]
        np.testing.assert_array_equal(ref, got[i:i + 1])
