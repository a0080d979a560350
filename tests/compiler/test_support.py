"""Support check: every unsupported node listed in one UnsupportedModelError; nothing written."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from _builders import abc_net, bnn_pynq, export_abc
from onnx import TensorProto, helper, numpy_helper

from abcn_hw.compiler import find_problems, lower, lower_file
from abcn_hw.errors import UnsupportedModelError


def _bad_model() -> onnx.ModelProto:
    """A grouped conv, a float conv without quantized operands and a Sigmoid."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(size=(4, 1, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(size=(4, 4, 3, 3)).astype(np.float32), "w2")
    s = numpy_helper.from_array(np.array(1.0, np.float32), "s")
    nodes = [
        helper.make_node("BipolarQuant", ["w1", "s"], ["w1q"], domain="qonnx.custom_op.general", name="wq"),
        helper.make_node("BipolarQuant", ["x", "s"], ["xq"], domain="qonnx.custom_op.general", name="xq"),
        helper.make_node("Conv", ["xq", "w1q"], ["c1"], group=4, kernel_shape=[3, 3], name="grouped_conv"),
        helper.make_node("Conv", ["c1", "w2"], ["c2"], kernel_shape=[3, 3], name="float_conv"),
        helper.make_node("Sigmoid", ["c2"], ["y"], name="sigmoid"),
    ]
    g = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 10, 10])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])], [w1, w2, s])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("qonnx.custom_op.general", 1)])
    m.ir_version = 8
    return m


def test_all_problems_in_one_error(tmp_path):
    src = tmp_path / "bad.onnx"
    onnx.save(_bad_model(), str(src))
    out = tmp_path / "out.onnx"
    with pytest.raises(UnsupportedModelError) as err:
        lower_file(src, out)
    msg = str(err.value)
    assert err.value.exit_code == 2
    assert "grouped_conv" in msg and "group=4" in msg
    assert "float_conv" in msg and "float" in msg
    assert "sigmoid" in msg and "Sigmoid" in msg
    assert not out.exists() and not (tmp_path / "out.onnx.tmp").exists()


def test_find_problems_lists_each_node():
    from abcn_hw.compiler import normalise
    from qonnx.core.modelwrapper import ModelWrapper

    probs = find_problems(normalise(ModelWrapper(_bad_model())))
    assert {p.name for p in probs} >= {"grouped_conv", "float_conv", "sigmoid"}


def test_asymmetric_kbit_activation_reported():
    """k-bit activations lower as thermometer bases only for symmetric (narrow) ranges."""
    exp, _ = bnn_pynq("tfc_2w2a", calib=100)
    hidden = [n for n in exp.graph.node if n.op_type == "Quant" and n.input[0].startswith("BatchNormalization")]
    for node in hidden[:2]:
        for a in node.attribute:
            if a.name == "narrow":
                a.i = 0
    with pytest.raises(UnsupportedModelError) as err:
        lower(exp)
    msg = str(err.value)
    line = next(x for x in msg.splitlines() if "not symmetric" in x)  # one line per reason, with a count
    assert "[2 nodes: Quant '" in line and msg.count("not symmetric") == 1
    assert "neither quantizes" not in msg  # the weight quantizers of the refused layers are not reported


def test_lower_file_writes_atomically(tmp_path):
    net, _ = abc_net(dict(convs=[], m=[2], n=[None], hw=8, classes=3), 1)
    exp = export_abc(net, (1, 8, 8))
    src, out = tmp_path / "m.onnx", tmp_path / "low.onnx"
    onnx.save(exp, str(src))
    rep = lower_file(src, out, report=True)
    low = onnx.load(str(out))
    assert low.opset_import[0].domain == "" and low.ir_version <= 10
    assert {f.name for f in low.functions} >= {"IntegerInputMatMul", "MultiBaseAccumulate"}
    assert rep.layers[0].op == "IntegerInputMatMul" and rep.layers[0].exact
    import json
    assert json.loads(json.dumps(rep.to_dict()))["exact"] is True and "IntegerInputMatMul" in rep.table()
    onnx.checker.check_model(low)
    import onnxruntime as ort
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    y = sess.run(None, {sess.get_inputs()[0].name: np.random.default_rng(0).random((5, 1, 8, 8), np.float32)})[0]
    assert y.shape == (5, 3)
    assert not list(tmp_path.glob("*.tmp"))


def _many_problems_model(n_sigmoid: int = 30) -> onnx.ModelProto:
    """_bad_model plus a chain of ``n_sigmoid`` Sigmoids and as many Relus: 2 + 2 n problems."""
    m = _bad_model()
    g = m.graph
    t = "y"
    for i in range(n_sigmoid):
        g.node.append(helper.make_node("Sigmoid", [t], [f"s{i}"], name=f"sig{i}"))
        g.node.append(helper.make_node("Relu", [f"s{i}"], [f"r{i}"], name=f"relu{i}"))
        t = f"r{i}"
    g.output[0].name = t
    return m


def test_problems_grouped_by_reason(tmp_path, capsys):
    """One line per distinct reason with a count and three example nodes, at most ~10 lines."""
    with pytest.raises(UnsupportedModelError) as err:
        lower(_many_problems_model())
    lines = str(err.value).splitlines()
    assert len(lines) <= 10, lines
    assert lines[0].startswith("cannot lower 63 node(s) for ")
    sig = [ln for ln in lines if "Sigmoid is not supported" in ln]
    assert len(sig) == 1 and "[31 nodes: Sigmoid 'sigmoid', Sigmoid 'sig0', Sigmoid 'sig1', ...]" in sig[0]
    relu = [ln for ln in lines if "Relu is not supported" in ln]
    assert len(relu) == 1 and "30 nodes" in relu[0]
    assert any("grouped_conv" in ln and "group=4" in ln for ln in lines)
    # the CLI prints the same lines under the one-line error, no traceback
    from abcn_hw.cli import main

    src = tmp_path / "bad.onnx"
    onnx.save(_many_problems_model(), str(src))
    assert main(["lower", str(src), "--out", str(tmp_path / "low.onnx")]) == 2
    out = capsys.readouterr().err.strip().splitlines()
    assert out[0].startswith("abcn-hw lower: error: cannot lower 63 node(s)") and len(out) <= 10
    assert all(ln.startswith("  ") for ln in out[1:]) and "Traceback" not in "\n".join(out)
    assert not (tmp_path / "low.onnx").exists()


def test_group_problems_caps_the_lines():
    from abcn_hw.errors import group_problems

    lines = group_problems([(f"reason {i % 12}", f"Op 'n{i}'") for i in range(40)])
    assert len(lines) == 8 and lines[-1] == "... and 5 more reasons (15 nodes)"
    assert lines[0] == "reason 0 [4 nodes: Op 'n0', Op 'n12', Op 'n24', ...]"
    assert group_problems([("only", "Op 'a'")]) == ["only [Op 'a']"]


def test_backend_refusal_grouped_by_reason():
    """compile's refusals (nodes off the input -> chain -> output path) are grouped too."""
    from abcn_hw.backend.frontend import build_network

    net, _ = abc_net(dict(convs=[], m=[2], n=[None], hw=8, classes=3), 1)
    low, _ = lower(export_abc(net, (1, 8, 8)))
    proto = low.model
    inp = proto.graph.input[0].name
    for i in range(25):  # dangling nodes that read the input
        proto.graph.node.append(helper.make_node("Relu", [inp], [f"dangling{i}"], name=f"dangling{i}"))
    with pytest.raises(UnsupportedModelError) as err:
        build_network(proto)
    lines = str(err.value).splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("the backend cannot map 25 nodes for 1 reason(s)")
    assert "is not on the input -> binary chain -> output path [25 nodes: Relu 'dangling0', Relu 'dangling1'" in lines[1]
