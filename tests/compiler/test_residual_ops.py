"""The residual-network ops: numpy reference (qonnx executor) == ONNX function body (onnxruntime),
on random inputs including negative values and the int32 extremes the lowering allows."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings, strategies as st
from onnx import helper

from abcn_hw.compiler.ops import DOMAIN, FUNCTION_OPSET, custom_op, function_protos
from abcn_hw.compiler.ops.residual_add import OVERLOADS

_NP2ONNX = {np.dtype(np.uint8): onnx.TensorProto.UINT8, np.dtype(np.int32): onnx.TensorProto.INT32,
            np.dtype(np.int64): onnx.TensorProto.INT64}


def run_both(op: str, inputs: list[np.ndarray], overload: str = "", **attrs):
    names = [f"i{k}" for k in range(len(inputs))]
    node = helper.make_node(op, names, ["y"], domain=DOMAIN, **attrs)
    if overload:
        node.overload = overload
    cls = custom_op[op]
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(n, _NP2ONNX[a.dtype], a.shape) for n, a in zip(names, inputs)],
        [helper.make_tensor_value_info("y", _NP2ONNX[np.dtype(cls.OUTPUT_DTYPE)], None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", FUNCTION_OPSET),
                                                    helper.make_opsetid(DOMAIN, 1)],
                              functions=function_protos([op]))
    model.ir_version = 10
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, dict(zip(names, inputs)))[0]
    ctx = dict(zip(names, inputs))
    cls(node).execute_node(ctx, graph)
    return ctx["y"], got


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.sampled_from([1, 2]), c=st.integers(1, 6), rank=st.sampled_from([2, 4]),
       big=st.booleans())
def test_residual_add(seed, k, c, rank, big):
    rng = np.random.default_rng(seed)
    shape = (2, c) + ((3, 5) if rank == 4 else ())
    lim = 2 ** 20 if big else 300
    xs = [rng.integers(-lim, lim + 1, size=shape).astype(np.int32) for _ in range(k)]
    s = rng.integers(-1000, 1001, size=(k, c)).astype(np.int32)
    t = rng.integers(-2 ** 24, 2 ** 24, size=(c,)).astype(np.int32)
    # keep |Y| < 2**31 as the lowering does
    s = np.where(np.abs(s).astype(np.int64) * lim * k + 2 ** 24 >= 2 ** 31, 1, s).astype(np.int32)
    ref, got = run_both("ResidualAdd", xs + [s, t], overload=OVERLOADS[k])
    exp = t.astype(np.int64).reshape((1, -1) + (1,) * (rank - 2)) + sum(
        s[i].astype(np.int64).reshape((1, -1) + (1,) * (rank - 2)) * xs[i] for i in range(k))
    assert ref.dtype == got.dtype == np.int32
    np.testing.assert_array_equal(ref, exp)
    np.testing.assert_array_equal(got, exp)


def test_residual_add_extremes():
    """Sums reaching the int32 limits exactly (the bound the lowering enforces) are not wrapped."""
    x0 = np.array([[2 ** 30 - 1, -(2 ** 30)]], np.int32)
    x1 = np.array([[2 ** 30 - 1, -(2 ** 30)]], np.int32)
    s = np.array([[1, 1], [1, 1]], np.int32)
    t = np.array([1, 0], np.int32)
    ref, got = run_both("ResidualAdd", [x0, x1, s, t], overload="k2")
    np.testing.assert_array_equal(ref, [[2 ** 31 - 1, -(2 ** 31)]])
    np.testing.assert_array_equal(got, ref)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.sampled_from([1, 2]), c=st.integers(1, 6), shift=st.integers(1, 20))
def test_residual_add_rounding_shift(seed, k, c, shift):
    """shift: round(sum / 2**shift) with ties to even (as the export's float Round), on negative
    values, exact ties (odd and even quotients) and the int32 extremes."""
    rng = np.random.default_rng(seed)
    shape = (2, c, 3, 4)
    xs = [rng.integers(-2 ** 26, 2 ** 26, size=shape).astype(np.int32) for _ in range(k)]
    half = 1 << (shift - 1)
    xs[0].reshape(-1)[:6] = [half, 3 * half, -half, -3 * half, 5 * half + 1, -(5 * half) - 1]
    s = np.ones((k, c), np.int32)
    s[0] = rng.choice(np.array([-1, 1], np.int32), size=c)
    s[0, 0] = 1
    t = np.zeros((c,), np.int32)
    ref, got = run_both("ResidualAdd", xs + [s, t], overload=OVERLOADS[k], shift=shift)
    y = sum(s[i].astype(np.int64).reshape(1, -1, 1, 1) * xs[i] for i in range(k)) + t.reshape(1, -1, 1, 1)
    exp = np.round(y.astype(np.float64) / 2.0 ** shift).astype(np.int64)  # numpy rounds ties to even
    assert ref.dtype == got.dtype == np.int32
    np.testing.assert_array_equal(ref, exp)
    np.testing.assert_array_equal(got, exp)
    if k == 1:  # 0.5, 1.5, -0.5, -1.5, 2.5 + tiny, -2.5 - tiny
        assert list(ref.reshape(-1)[:6]) == [0, 2, 0, -2, 3, -3]


def test_residual_add_shift_extremes():
    x0 = np.array([[2 ** 31 - 1, -(2 ** 31), 2 ** 30 + 2 ** 5, -(2 ** 30) - 3 * 2 ** 5]], np.int32)
    s = np.ones((1, 4), np.int32)
    t = np.zeros((4,), np.int32)
    ref, got = run_both("ResidualAdd", [x0, s, t], overload="k1", shift=6)
    np.testing.assert_array_equal(ref, [[2 ** 25, -(2 ** 25), 2 ** 24, -(2 ** 24) - 2]])
    np.testing.assert_array_equal(got, ref)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 4), c=st.integers(1, 6), rank=st.sampled_from([2, 4]),
       wide=st.booleans())
def test_integer_threshold(seed, n, c, rank, wide):
    rng = np.random.default_rng(seed)
    shape = (3, c) + ((4, 2) if rank == 4 else ())
    x = rng.integers(-50, 51, size=shape).astype(np.int32)
    x.reshape(-1)[:2] = [np.iinfo(np.int32).min, np.iinfo(np.int32).max]
    t = rng.integers(-60, 61, size=(n, c)).astype(np.int64 if wide else np.int32)
    s = rng.choice(np.array([-1, 1], np.int32), size=(c,))
    ref, got = run_both("IntegerThreshold", [x, t, s])
    assert ref.shape == got.shape == (3, n) + shape[1:]
    view = (1, 1, -1) + (1,) * (rank - 2)
    xe = x.astype(np.int64)[:, None]
    te = t.astype(np.int64).reshape((1, n, c) + (1,) * (rank - 2))
    exp = np.where(s.reshape(view) > 0, xe >= te, xe <= te)
    np.testing.assert_array_equal(ref, exp)
    np.testing.assert_array_equal(got, exp)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), c=st.integers(1, 5), h=st.integers(1, 8), w=st.integers(1, 8))
def test_global_sum_pool(seed, c, h, w):
    rng = np.random.default_rng(seed)
    lim = (2 ** 31 - 1) // (h * w)
    x = rng.integers(-lim, lim + 1, size=(2, c, h, w)).astype(np.int32)
    ref, got = run_both("GlobalSumPool", [x])
    exp = x.astype(np.int64).sum(axis=(2, 3))
    np.testing.assert_array_equal(ref, exp)
    np.testing.assert_array_equal(got, exp)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), c=st.integers(1, 4), k=st.integers(1, 3), s=st.integers(1, 2),
       p=st.integers(0, 1), h=st.integers(3, 8), w=st.integers(3, 8))
def test_integer_max_pool(seed, c, k, s, p, h, w):
    if p * 2 >= k + 1:  # ONNX requires pads < kernel
        p = 0
    rng = np.random.default_rng(seed)
    x = rng.integers(-2 ** 31, 2 ** 31 - 1, size=(2, c, h, w), endpoint=True).astype(np.int32)
    x[0, 0, 0, 0] = np.iinfo(np.int32).min  # padding must never win against a real minimum
    attrs = dict(kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p])
    ref, got = run_both("IntegerMaxPool", [x], **attrs)
    # independent check: onnxruntime's own MaxPool on the values as float64-exact int32 -> via int32
    xp = np.pad(x.astype(np.int64), [(0, 0), (0, 0), (p, p), (p, p)], constant_values=-(2 ** 40))
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    exp = np.empty((2, c, ho, wo), np.int64)
    for i in range(ho):
        for j in range(wo):
            exp[:, :, i, j] = xp[:, :, i * s:i * s + k, j * s:j * s + k].max(axis=(2, 3))
    np.testing.assert_array_equal(ref, exp)
    np.testing.assert_array_equal(got, exp)


@pytest.mark.parametrize("op", ["ResidualAdd", "IntegerThreshold", "GlobalSumPool", "IntegerMaxPool"])
def test_function_bodies_use_standard_ops_only(op):
    for fp in function_protos([op]):
        assert fp.domain == DOMAIN and fp.name == op
        assert all(n.domain in ("", "ai.onnx") for n in fp.node)
