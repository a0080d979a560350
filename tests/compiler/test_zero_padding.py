"""Zero padding of binary convolutions (PyTorch / Brevitas ``padding=p``): the padded value is 0,
not +-1. The lowering pads with bit 0 and adds each weight base's border correction inside
XnorPopcountConv (``zero_pad = 1``); the lowered graph must equal the executed export on every
element (dyadic scales, sums < 2^24: exact on any CPU). Nets are written as a Brevitas user writes
them (tests/compiler/_zeropad_nets.py), exported with both torch exporters."""
from __future__ import annotations


import numpy as np
import onnx
import pytest
from _zeropad_nets import abc_export_zero_padded, export_brevitas, set_pads, zero_pad_net
from onnx import helper, numpy_helper

from abcn_hw.compiler import compare, lower, measure
from abcn_hw.errors import UnsupportedModelError

HW = (10, 12)  # non-square maps throughout


def _attr(node, name, default=None):
    a = next((a for a in node.attribute if a.name == name), None)
    return default if a is None else helper.get_attribute_value(a)


def _lower_exact(exp, x):
    low, rep = lower(exp)
    measure(rep, exp, low, x, batch=64)
    assert rep.exact and rep.output_equal == 1.0 and rep.prediction_agreement == 1.0, rep.table()
    for layer in rep.layers[:-1]:
        assert layer.threshold == "fused" and layer.equal_bits == 1.0, rep.table()
    return low, rep


CASES = [  # (net kwargs, dynamo)
    pytest.param(dict(k=3, s=1, p=1), False, id="k3s1p1-static"),
    pytest.param(dict(k=5, s=2, p=2, n_bases=3, w_bits=2), True, id="k5s2p2-M2N3-dynamo"),
    pytest.param(dict(k=5, s=1, p=2, n_bases=2, final="conv"), False, id="k5s1p2-N2-final-conv-static"),
    pytest.param(dict(k=3, s=2, p=1, a2_bits=2), False, id="k3s2p1-2bit-act-static"),
    pytest.param(dict(k=3, s=2, p=1, n_bases=2), True, id="k3s2p1-N2-dynamo", marks=pytest.mark.slow),
    pytest.param(dict(k=3, s=1, p=1), True, id="k3s1p1-dynamo", marks=pytest.mark.slow),
    pytest.param(dict(k=5, s=2, p=2, n_bases=3, w_bits=2), False, id="k5s2p2-M2N3-static", marks=pytest.mark.slow),
    pytest.param(dict(k=3, s=2, p=2, w_bits=2, final="conv"), True, id="k3s2p2-M2-final-conv-dynamo",
                 marks=pytest.mark.slow),
    pytest.param(dict(k=5, s=1, p=1, n_bases=5), False, id="k5s1p1-N5-static", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("kw, dynamo", CASES)
def test_brevitas_zero_padded_convs_lower_exact(kw, dynamo):
    net, x = zero_pad_net(3, **kw, hw=HW)
    exp = export_brevitas(net, (1,) + HW, dynamo)
    pads = [_attr(n, "pads", [0] * 4) for n in exp.graph.node if n.op_type == "Conv"]
    assert all(any(p) for p in pads)  # every conv of the export zero-pads, the 8-bit first layer too
    low, rep = _lower_exact(exp, x)
    convs = [n for n in low.graph.node if n.op_type == "XnorPopcountConv"]
    assert len(convs) == 2 and all(_attr(n, "zero_pad") == 1 for n in convs)
    first = next(n for n in low.graph.node if n.op_type == "IntegerInputConv")
    assert list(_attr(first, "pads")) == [1, 1, 1, 1]  # integer 0 padding, no correction needed
    m = 2 if kw.get("w_bits") == 2 else 1
    assert (rep.layers[1].m, rep.layers[1].n) == (m, kw.get("n_bases", 1))
    assert [l.padding for l in rep.layers] == ["integer", "zero", "zero"] + (["none"] if kw.get("final") != "conv" else [])
    assert "XnorPopcountConv (zero pad)" in rep.table()
    assert not any(n.op_type in ("Conv", "BatchNormalization", "Pad") for n in low.graph.node)


def test_zero_pad_correction_is_what_makes_it_exact():
    """Negative control: the same lowered graph with bit-0 padding (zero_pad removed) differs from
    the export at the borders; so the element-wise tests above would catch a wrong correction."""
    net, x = zero_pad_net(5, k=3, s=1, p=1, n_bases=2, final="conv", hw=HW)
    exp = export_brevitas(net, (1,) + HW, False)
    low, _ = lower(exp)
    assert compare(exp, low, x).output_equal == 1.0
    bad = onnx.ModelProto.FromString(low.model.SerializeToString())
    for n in bad.graph.node:
        if n.op_type == "XnorPopcountConv":
            n.attribute.remove(next(a for a in n.attribute if a.name == "zero_pad"))
    assert compare(exp, bad, x).output_equal < 0.5


def test_abc_multi_base_conv_zero_padded_both_forms():
    """M, N > 1 in one conv (our exporter's idiom): every weight base gets its own correction, the
    same for all activation bases, scaled by alpha_m * beta_n in the accumulator. An explicit
    Pad(0) and the Conv's own pads lower to the same graph and both equal the export."""
    outs = []
    for form in ("explicit", "conv"):
        exp, x = abc_export_zero_padded(form)
        low, rep = _lower_exact(exp, x)
        convs = [n for n in low.graph.node if n.op_type == "XnorPopcountConv"]
        assert [list(_attr(n, "pads")) for n in convs] == [[2] * 4, [2] * 4]
        assert all(_attr(n, "zero_pad") == 1 for n in convs)
        assert [(l.m, l.n) for l in rep.layers[1:3]] == [(3, 2), (2, 3)]
        outs.append(compare(exp, low, x))
    assert outs[0].output_equal == outs[1].output_equal == 1.0


def test_explicit_pad_and_conv_padding_together_is_refused():
    exp, _ = abc_export_zero_padded("explicit")
    conv = next(n for n in exp.graph.node if n.op_type == "Conv" and any(
        p.op_type == "Pad" and p.output[0] == n.input[0] for p in exp.graph.node))
    set_pads(conv, [1, 1, 1, 1])
    with pytest.raises(UnsupportedModelError, match="explicit Pad already pads"):
        lower(exp)


def test_pad_value_neither_zero_nor_bit_is_refused():
    exp, _ = abc_export_zero_padded("explicit")
    g = exp.graph
    pad = next(n for n in g.node if n.op_type == "Pad")
    t = numpy_helper.from_array(np.array(0.75, np.float32), "odd_pad_value")
    g.initializer.append(t)
    pad.input[2] = t.name
    with pytest.raises(UnsupportedModelError, match="neither 0 .zero padding. nor the bit value"):
        lower(exp)
