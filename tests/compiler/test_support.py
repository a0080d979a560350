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
    assert str(err.value).count("not symmetric") == 2


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
