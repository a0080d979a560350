"""Hand-written Brevitas ABC nets (tests/compiler/_handwritten.py) and hand-built sum trees lower to
ONE MultiBaseThreshold per ABC layer over the integer dots, bit-exact against the executed export,
whatever the exporter, the order / nesting of the sums and where the scales sit."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from _handwritten import Spec, hand_net
from hypothesis import HealthCheck, example, given, settings, strategies as st
from onnx import TensorProto, helper, numpy_helper

from abcn_hw.compiler import compare, lower
from abcn_hw.compiler.ops import DOMAIN

MATRIX = ("XnorPopcountConv", "XnorPopcountMatMul", "IntegerInputConv", "IntegerInputMatMul")


def _check_fused(exp: onnx.ModelProto, x: np.ndarray, spec: Spec | None = None):
    """One MultiBaseThreshold per ABC layer, nothing but our integer ops (and bit reshapes) from
    the first binary layer to the final accumulator, every layer exact and every element equal."""
    low, rep = lower(exp)
    nodes = list(low.graph.node)
    ops = [n.op_type for n in nodes]
    first = next(i for i, n in enumerate(nodes) if n.op_type in MATRIX)
    last = ops.index("MultiBaseAccumulate")
    between = nodes[first:last + 1]
    assert all(n.domain == DOMAIN or n.op_type == "Reshape" for n in between), [n.op_type for n in between]
    assert sum(o in MATRIX for o in ops) == 3 and ops.count("MultiBaseThreshold") == 2
    assert [la.threshold for la in rep.layers] == ["fused", "fused", "final"]
    assert all(la.exact for la in rep.layers)
    if spec is not None:  # M weight bases x N activation bases per ABC layer (re-quantized input: one bit)
        assert [(la.m, la.n) for la in rep.layers[1:]] == [(spec.m, spec.n)] * 2
        assert rep.layers[0].m == spec.m and rep.layers[0].n == 1
    cmp = compare(exp, low, x)
    assert cmp.output_equal == 1.0 and cmp.prediction_agreement == 1.0
    assert all(v == 1.0 for v in cmp.layer_equal_bits.values()) and len(cmp.layer_equal_bits) == 2
    return low, rep


FAST = [
    Spec(m=1, n=1),
    Spec(m=3, n=3, beta="const", pool=True),
    Spec(m=2, n=5, kind="fc", beta="alpha", bias=True),
    Spec(m=5, n=1, beta="act"),
    Spec(m=2, n=3, first="binary"),
]
SLOW = [
    Spec(m=2, n=2, kind="fc", first="binary", dynamo=True),
    Spec(m=3, n=3, kind="fc"),
    Spec(m=2, n=5, beta="alpha", pool=True),
    Spec(m=5, n=1, kind="fc", beta="const", dynamo=True, bias=True),
    Spec(m=3, n=3, beta="param", pool=True, dynamo=True),
    Spec(m=1, n=1, kind="fc", dynamo=True),
    Spec(m=2, n=2, beta="act", first="binary", dynamo=True),
    Spec(m=3, n=2, beta="alpha", kind="fc", first="binary"),
]


@pytest.mark.parametrize("spec", FAST, ids=str)
def test_handwritten_abc_net_fuses_exactly(spec):
    exp, x = hand_net(spec)
    _check_fused(exp, x[:100], spec)


@pytest.mark.slow
@pytest.mark.parametrize("spec", SLOW, ids=str)
def test_handwritten_abc_net_fuses_exactly_more(spec):
    exp, x = hand_net(spec)
    _check_fused(exp, x, spec)


def test_both_exporters_give_the_same_lowered_layers():
    """TorchScript and dynamo exports (Slice-split weights, lifted constants, getitem names) of the
    same net: equal coefficients, thresholds and packed weights, layer for layer."""
    from _handwritten import build, export, inputs

    net = build(Spec(m=2, n=3, pool=True))
    exports = [export(net, dyn) for dyn in (False, True)]
    lows = [lower(e)[0] for e in exports]
    # deterministic up to the backend's canonical names (qonnx names some tensors at random)
    from abcn_hw.backend.canonical import canonicalize

    again = canonicalize(lower(exports[1])[0].model).SerializeToString(deterministic=True)
    assert canonicalize(lows[1].model).SerializeToString(deterministic=True) == again
    arrays = []
    for low in lows:
        inits = {i.name: numpy_helper.to_array(i) for i in low.graph.initializer}
        arrays.append([[inits[t] for t in n.input[1:]] for n in low.graph.node
                       if n.op_type in MATRIX + ("MultiBaseThreshold", "MultiBaseAccumulate")])
    assert len(arrays[0]) == len(arrays[1]) == 6
    for a, b in zip(*arrays):
        assert len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))
    import onnxruntime as ort
    x = inputs(64)
    outs = [ort.InferenceSession(low.model.SerializeToString(), providers=["CPUExecutionProvider"])
            .run(None, {low.graph.input[0].name: x})[0] for low in lows]
    assert np.array_equal(outs[0], outs[1])


def _compile_verify(tmp_path, spec: Spec, n: int):
    from abcn_hw.backend import compile
    from abcn_hw.sim import verify

    exp, x = hand_net(spec)
    path = tmp_path / "m.onnx"
    onnx.save(exp, str(path))
    compile(path, tmp_path / "build")
    res = verify(path, tmp_path / "build", x[:n])
    assert res.bit_exact and res.mismatches == 0, res.summary()
    assert res.lowering_exact and res.prediction_agreement == 1.0


@pytest.mark.parametrize("spec", [Spec(m=2, n=2), Spec(m=2, n=3, kind="fc", first="binary")], ids=str)
def test_handwritten_compile_verify_bit_exact(tmp_path, spec):
    _compile_verify(tmp_path, spec, 40)


@pytest.mark.slow
@pytest.mark.parametrize("spec", [Spec(m=3, n=3, pool=True, dynamo=True), Spec(m=5, n=1, beta="act"),
                                  Spec(m=2, n=5, kind="fc", beta="alpha", dynamo=True),
                                  Spec(m=2, n=3, first="binary", beta="const", pool=True)], ids=str)
def test_handwritten_compile_verify_bit_exact_more(tmp_path, spec):
    _compile_verify(tmp_path, spec, 200)


# -- hand-built sum trees: the same layer whatever the order, nesting and scale positions ----------

C_IN, C_OUT, SIDE = 3, 4, 6
BQ_DOMAIN = "qonnx.custom_op.general"


def _values(m: int, n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return dict(
        w=[rng.normal(size=(C_OUT, C_IN, 3, 3)).astype(np.float32) for _ in range(m)],
        alpha=[(rng.integers(1, 9, size=C_OUT) / 8).astype(np.float32) for _ in range(m)],
        beta=np.array([1.0, 0.5, 0.25][:n], np.float32),
        shift=np.array([0.0, 0.5, -0.5][:n], np.float32),
        bn=[rng.uniform(0.5, 1.5, C_OUT) * np.where(rng.random(C_OUT) < 0.3, -1, 1), rng.normal(size=C_OUT),
            rng.normal(size=C_OUT), rng.uniform(0.5, 2.0, C_OUT)],
        wf=rng.normal(size=(2, C_OUT, 3, 3)).astype(np.float32),
    )


def _tree_model(m: int, n: int, order: list, split: list, alpha_pos: str, beta_pos: str, negate: list,
                seed: int = 0) -> onnx.ModelProto:
    """sum_n beta_n sum_m alpha_m conv(H(x + c_n), B_m) -> BatchNormalization -> 2 next bases ->
    a final binary conv. ``order``: the order of the M*N products; ``split``: how the sum tree
    nests (a split point per internal node); ``alpha_pos`` in bq | w | out; ``beta_pos`` in bq |
    act | out | div; ``negate``: products summed as Sub(acc, Neg(p))."""
    v = _values(m, n, seed)
    nodes, inits = [], []
    cnt = [0]

    def init(value, hint):
        name = f"{hint}_{len(inits)}"
        inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def node(op, ins, domain="", **kw):
        cnt[0] += 1
        out = f"t{cnt[0]}"
        nodes.append(helper.make_node(op, ins, [out], name=f"{op}_{cnt[0]}", domain=domain, **kw))
        return out

    acts = []
    for i in range(n):  # activation quantizers first, in base order
        s = node("Add", ["x", init(v["shift"][i], "c")])
        acts.append(node("BipolarQuant", [s, init(v["beta"][i] if beta_pos == "bq" else 1.0, "s")], BQ_DOMAIN))
        if beta_pos == "act":
            acts[-1] = node("Mul", [acts[-1], init(v["beta"][i], "beta")])
    ws = []
    for j in range(m):
        a = v["alpha"][j].reshape(C_OUT, 1, 1, 1)
        ws.append(node("BipolarQuant", [init(v["w"][j], "w"), init(a if alpha_pos == "bq" else 1.0, "a")], BQ_DOMAIN))
        if alpha_pos == "w":
            ws[-1] = node("Mul", [ws[-1], init(a, "alpha")])
    terms = []
    for idx in order:
        i, j = divmod(idx, m)
        t = node("Conv", [acts[i], ws[j]], kernel_shape=[3, 3])
        if alpha_pos == "out":
            t = node("Mul", [init(v["alpha"][j].reshape(1, C_OUT, 1, 1), "alpha"), t])
        if beta_pos == "out":
            t = node("Mul", [t, init(v["beta"][i], "beta")])
        elif beta_pos == "div":
            t = node("Div", [t, init(1.0 / v["beta"][i], "beta_inv")])
        terms.append((t, negate[idx % len(negate)]))

    def tree(items, k=0):  # -> (tensor, sign): the intended partial sum is sign * tensor
        if len(items) == 1:
            t, neg = items[0]
            return t, -1 if neg else 1
        cut = 1 + split[k % len(split)] % (len(items) - 1)
        (a, sa), (b, sb) = tree(items[:cut], 2 * k + 1), tree(items[cut:], 2 * k + 2)
        if sa == sb:
            return node("Add", [a, b]), sa
        return (node("Sub", [a, b]), 1) if sa > 0 else (node("Sub", [b, a]), 1)

    total, sign = tree(terms)
    if sign < 0:
        total = node("Neg", [total])
    z = node("BatchNormalization", [total] + [init(p, "bn") for p in v["bn"]])
    nxt = [node("BipolarQuant", [node("Add", [z, init(c, "c2")]), init(1.0, "s")], BQ_DOMAIN) for c in (0.25, -0.5)]
    a2 = node("Add", nxt)
    wf = node("BipolarQuant", [init(v["wf"], "wf"), init(0.5, "af")], BQ_DOMAIN)
    nodes.append(helper.make_node("Conv", [a2, wf], ["y"], kernel_shape=[3, 3], name="final"))
    g = helper.make_graph(nodes, "tree", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C_IN, SIDE, SIDE])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, SIDE - 4, SIDE - 4])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(BQ_DOMAIN, 1)])
    model.ir_version = 8
    return model


def _first_layer(low) -> list:
    inits = {i.name: numpy_helper.to_array(i) for i in low.graph.initializer}
    out = []
    for nd in low.graph.node:
        if nd.op_type in ("XnorPopcountConv", "MultiBaseThreshold"):
            out += [inits[t] for t in nd.input[1:]]
        if nd.op_type == "FloatBaseQuant" and not out:
            out.append(np.array(helper.get_attribute_value(nd.attribute[0])))
        if nd.op_type == "MultiBaseThreshold":
            return out
    raise AssertionError("no MultiBaseThreshold")


@st.composite
def _trees(draw):
    m, n = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    order = draw(st.permutations(list(range(m * n))))
    split = draw(st.lists(st.integers(0, 7), min_size=1, max_size=8))
    negate = draw(st.lists(st.booleans(), min_size=1, max_size=9))
    return m, n, order, split, draw(st.sampled_from(["bq", "w", "out"])), \
        draw(st.sampled_from(["bq", "act", "out", "div"])), negate


def _check_tree(case):
    m, n, order, split, alpha_pos, beta_pos, negate = case
    ref = lower(_tree_model(m, n, list(range(m * n)), [0], "bq", "bq", [False]))[0]
    exp = _tree_model(m, n, order, split, alpha_pos, beta_pos, negate)
    low, rep = lower(exp)
    if any(negate[i % len(negate)] for i in range(m * n)):  # a negated product: the coefficient changes sign
        ref = lower(_tree_model(m, n, list(range(m * n)), [0], "bq", "bq", negate))[0]
    a, b = _first_layer(ref), _first_layer(low)
    assert len(a) == len(b) and all(np.array_equal(u, w) for u, w in zip(a, b))
    assert rep.layers[0].threshold == "fused" and rep.layers[0].exact
    x = np.random.default_rng(1).normal(size=(64, C_IN, SIDE, SIDE)).astype(np.float32)
    cmp = compare(exp, low, x)
    assert cmp.output_equal == 1.0 and all(vv == 1.0 for vv in cmp.layer_equal_bits.values())


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(_trees())
def test_sum_tree_permutations_give_the_same_layer(case):
    _check_tree(case)


@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(_trees())
def test_sum_tree_permutations_give_the_same_layer_many(case):
    _check_tree(case)


# -- quantizer chains: a re-quantized bipolar base is identity, inversion or a constant ------------

def _chain_model(s1: float, ops: list, s2: float) -> onnx.ModelProto:
    """x -> BipolarQuant(x - 0.25, s1) = h; base 0 = h; base 1 = BipolarQuant(ops(h), s2);
    y = MatMul(base 0 + base 1, BipolarQuant(W, 0.5))."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(np.array(v, np.float32), nm) for nm, v in
             [("c", 0.25), ("s1", s1), ("s2", s2), ("aw", 0.5)]]
    inits.append(numpy_helper.from_array(rng.normal(size=(16, 5)).astype(np.float32), "w"))
    nodes = [helper.make_node("Sub", ["x", "c"], ["xs"], name="shift"),
             helper.make_node("BipolarQuant", ["xs", "s1"], ["h"], domain=BQ_DOMAIN, name="binarize")]
    t = "h"
    for i, (op, c) in enumerate(ops):
        if op == "Neg":
            nodes.append(helper.make_node("Neg", [t], [f"o{i}"], name=f"op{i}"))
        else:
            inits.append(numpy_helper.from_array(np.array(c, np.float32), f"k{i}"))
            nodes.append(helper.make_node(op, [t, f"k{i}"], [f"o{i}"], name=f"op{i}"))
        t = f"o{i}"
    nodes += [helper.make_node("BipolarQuant", [t, "s2"], ["h2"], domain=BQ_DOMAIN, name="requant"),
              helper.make_node("Add", ["h", "h2"], ["a"], name="sum"),
              helper.make_node("BipolarQuant", ["w", "aw"], ["wq"], domain=BQ_DOMAIN, name="wq"),
              helper.make_node("MatMul", ["a", "wq"], ["y"], name="fc")]
    g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(BQ_DOMAIN, 1)])
    model.ir_version = 8
    return model


_CHAIN_OPS = st.lists(st.one_of(st.tuples(st.just("Add"), st.sampled_from([-3.0, -1.5, -0.25, 0.0, 0.5, 2.0])),
                                st.tuples(st.just("Sub"), st.sampled_from([-2.0, 0.75, 1.5])),
                                st.tuples(st.just("Mul"), st.sampled_from([-2.0, -0.5, 0.5, 3.0])),
                                st.tuples(st.just("Neg"), st.none())), max_size=4)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from([0.5, 1.0, 2.0]), _CHAIN_OPS, st.sampled_from([0.25, 3.0]))  # s2 != s1: bases never cancel
@example(0.5, [("Add", 2.0)], 3.0)  # constant +1
@example(1.0, [("Mul", 3.0), ("Add", -3.0)], 3.0)  # constant -1
@example(1.0, [("Neg", None)], 0.25)  # inversion
@example(2.0, [("Add", 0.5)], 0.25)  # identity
def test_requantized_bipolar_base_is_folded(s1, ops, s2):
    exp = _chain_model(s1, ops, s2)
    low, rep = lower(exp)
    assert [n.op_type for n in low.graph.node].count("FloatBaseQuant") == 1  # only x is binarized
    assert rep.layers[0].n == 1 and rep.layers[0].exact  # identity / inversion / constant of the one bit
    x = np.random.default_rng(2).normal(size=(200, 16)).astype(np.float32)
    x[:20] = 0.25  # on the binarization threshold
    assert compare(exp, low, x).output_equal == 1.0


def test_pool_before_the_join_is_refused_clearly():
    """max(a) + max(b) is not max(a + b): pooling each branch before the sum is named, not lowered."""
    exp = _tree_model(1, 2, [0, 1], [0], "bq", "bq", [False])
    for nd in exp.graph.node:
        if nd.op_type == "Conv" and nd.name != "final":
            out = nd.output[0]
            nd.output[0] = out + "_pre"
            exp.graph.node.append(helper.make_node("MaxPool", [out + "_pre"], [out], kernel_shape=[1, 1],
                                                   name="pool_" + nd.name))
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.general import SortGraph

    exp = ModelWrapper(exp).transform(SortGraph()).model
    from abcn_hw.errors import UnsupportedModelError

    with pytest.raises(UnsupportedModelError) as err:
        lower(exp)
    assert "MaxPool before the join of a layer's branches is not linear" in str(err.value)


def test_zero_padded_handwritten_layers_fuse_exactly():
    """Fused ABC layers on PyTorch zero-padded convs (padding 1, stride 1 and 2): one threshold
    unit per layer with the zero-padding correction, every element equal."""
    import torch
    import torch.nn as nn
    from _builders import calibrate_bn
    from _handwritten import ABCLayer, BinaryWeightPerChannel, export, inputs
    from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
    from brevitas.quant import Int8ActPerTensorFixedPoint

    rng = np.random.default_rng(0)
    torch.manual_seed(0)

    def conv(cin, stride):
        return lambda: QuantConv2d(cin, 4, 3, padding=1, stride=stride, bias=False, weight_quant=BinaryWeightPerChannel)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inq = QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True)
            self.l0 = ABCLayer(conv(1, 1), 2, 1, "const", rng, bn=nn.BatchNorm2d(4))
            self.l0.acts = nn.ModuleList([nn.Identity()])
            self.l1 = ABCLayer(conv(4, 2), 2, 3, "param", rng, bn=nn.BatchNorm2d(4))
            self.l2 = ABCLayer(lambda: QuantLinear(4 * 7 * 7, 5, bias=False, weight_quant=BinaryWeightPerChannel),
                               2, 2, "param", rng, shift_offset=1)

        def forward(self, x):
            return self.l2(self.l1(self.l0(self.inq(x))).flatten(1))

    net = Net()
    calibrate_bn(net, inputs(200, offset=5000))
    exp = export(net.eval(), False)
    low, rep = lower(exp)
    assert [(la.op, la.m, la.n, la.threshold) for la in rep.layers] == [
        ("IntegerInputConv", 2, 1, "fused"), ("XnorPopcountConv", 2, 3, "fused"), ("XnorPopcountMatMul", 2, 2, "final")]
    assert any(n.op_type == "XnorPopcountConv" and any(a.name == "zero_pad" and a.i for a in n.attribute)
               for n in low.graph.node)
    cmp = compare(exp, low, inputs(100))
    assert cmp.output_equal == 1.0 and all(v == 1.0 for v in cmp.layer_equal_bits.values())
