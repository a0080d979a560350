"""Each custom op: numpy reference (qonnx executor) == ONNX function body (onnxruntime), exactly."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings, strategies as st
from onnx import helper

from abcn_hw.compiler.ops import DOMAIN, FUNCTION_OPSET, custom_op, function_protos, pack_bits

_NP2ONNX = {np.dtype(np.uint8): onnx.TensorProto.UINT8, np.dtype(np.int32): onnx.TensorProto.INT32,
            np.dtype(np.int64): onnx.TensorProto.INT64, np.dtype(np.float32): onnx.TensorProto.FLOAT}


def run_both(op: str, inputs: list[np.ndarray], **attrs) -> tuple[np.ndarray, np.ndarray]:
    names = [f"i{k}" for k in range(len(inputs))]
    out_dtype = inputs[1].dtype if op == "MultiBaseAccumulate" else None
    node = helper.make_node(op, names, ["y"], domain=DOMAIN, **attrs)
    cls = custom_op[op]
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(n, _NP2ONNX[a.dtype], a.shape) for n, a in zip(names, inputs)],
        [helper.make_tensor_value_info("y", _NP2ONNX[np.dtype(out_dtype or cls.OUTPUT_DTYPE)], None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", FUNCTION_OPSET), helper.make_opsetid(DOMAIN, 1)],
                              functions=function_protos([op]))
    model.ir_version = 10
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, dict(zip(names, inputs)))[0]
    inst = cls(node)
    ctx = dict(zip(names, inputs))
    inst.execute_node(ctx, graph)
    return ctx["y"], got


def _bits(rng, shape):
    return rng.integers(0, 2, size=shape, dtype=np.uint8)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 3), m=st.integers(1, 3), c=st.integers(1, 5),
       o=st.integers(1, 4), k=st.integers(1, 5), s=st.integers(1, 2), p=st.integers(0, 2), h=st.integers(5, 9),
       zero_pad=st.booleans())
def test_xnor_popcount_conv(seed, n, m, c, o, k, s, p, h, zero_pad):
    rng = np.random.default_rng(seed)
    x = _bits(rng, (2, n, c, h, h + 1))
    wbits = _bits(rng, (m, o, c * k * k))
    ref, got = run_both("XnorPopcountConv", [x, pack_bits(wbits)], kernel_shape=[k, k], strides=[s, s],
                        pads=[p, p, p, p], zero_pad=int(zero_pad))
    np.testing.assert_array_equal(ref, got)
    # independent check: +-1 convolution with -1 padding (ABC) or 0 padding (PyTorch)
    xv = np.pad(2 * x.astype(np.int64) - 1, [(0, 0)] * 3 + [(p, p)] * 2, constant_values=0 if zero_pad else -1)
    wv = (2 * wbits.astype(np.int64) - 1).reshape(m, o, c, k, k)
    ho, wo = (h + 2 * p - k) // s + 1, (h + 1 + 2 * p - k) // s + 1
    for i in range(ho):
        for j in range(wo):
            win = xv[:, :, :, i * s:i * s + k, j * s:j * s + k]
            exp = np.einsum("bnchw,mochw->bmno", win, wv)
            np.testing.assert_array_equal(ref[..., i, j], exp)


@pytest.mark.parametrize("k, s, pads, hw", [(3, 1, [1, 1, 1, 1], (5, 7)), (5, 2, [2, 2, 2, 2], (9, 6)),
                                            (3, 2, [0, 1, 2, 1], (4, 9)), (5, 1, [2, 0, 1, 2], (3, 4))])
def test_xnor_popcount_conv_zero_pad_rectangular(k, s, pads, hw):
    """Asymmetric pads, non-square maps, a map smaller than the kernel (both borders padded)."""
    rng = np.random.default_rng(k * 7 + s)
    m, n, c, o = 3, 2, 3, 4
    x = _bits(rng, (2, n, c) + hw)
    wbits = _bits(rng, (m, o, c * k * k))
    ref, got = run_both("XnorPopcountConv", [x, pack_bits(wbits)], kernel_shape=[k, k], strides=[s, s],
                        pads=pads, zero_pad=1)
    np.testing.assert_array_equal(ref, got)
    t, l, b, r = pads
    xv = np.pad(2 * x.astype(np.int64) - 1, [(0, 0)] * 3 + [(t, b), (l, r)])
    wv = (2 * wbits.astype(np.int64) - 1).reshape(m, o, c, k, k)
    for i in range(ref.shape[-2]):
        for j in range(ref.shape[-1]):
            win = xv[:, :, :, i * s:i * s + k, j * s:j * s + k]
            np.testing.assert_array_equal(ref[..., i, j], np.einsum("bnchw,mochw->bmno", win, wv))


@pytest.mark.parametrize("c, k, s, pads, zero_pad", [(70, 3, 2, [1, 0, 2, 1], 1), (70, 3, 1, [1, 1, 1, 1], 0),
                                                   (64, 3, 1, [0, 0, 0, 0], 0), (65, 1, 1, [0, 0, 0, 0], 0)])
def test_xnor_popcount_conv_wide(c, k, s, pads, zero_pad):
    """K = C*kh*kw over several 64-bit words and not a multiple of 64 (630, 65), and a whole
    number of words (576): body (integer convolution on unpacked bits) == reference (XOR-popcount
    on packed words) == a plain +-1 convolution."""
    rng = np.random.default_rng(c + k + s)
    m, n, o = 2, 3, 5
    x = _bits(rng, (3, n, c, 6, 7))
    wbits = _bits(rng, (m, o, c * k * k))
    ref, got = run_both("XnorPopcountConv", [x, pack_bits(wbits)], kernel_shape=[k, k], strides=[s, s],
                        pads=pads, zero_pad=zero_pad)
    np.testing.assert_array_equal(ref, got)
    t, l, b, r = pads
    xv = np.pad(2 * x.astype(np.int64) - 1, [(0, 0)] * 3 + [(t, b), (l, r)], constant_values=0 if zero_pad else -1)
    wv = (2 * wbits.astype(np.int64) - 1).reshape(m, o, c, k, k)
    for i in range(ref.shape[-2]):
        for j in range(ref.shape[-1]):
            win = xv[:, :, :, i * s:i * s + k, j * s:j * s + k]
            np.testing.assert_array_equal(ref[..., i, j], np.einsum("bnchw,mochw->bmno", win, wv))


@pytest.mark.parametrize("kk", [64, 65, 577, 2304])
def test_xnor_popcount_matmul_wide(kk):
    rng = np.random.default_rng(kk)
    x = _bits(rng, (4, 3, kk))
    w = _bits(rng, (2, 7, kk))
    ref, got = run_both("XnorPopcountMatMul", [x, pack_bits(w)])
    np.testing.assert_array_equal(ref, got)
    np.testing.assert_array_equal(ref, np.einsum("bnk,mok->bmno", 2 * x.astype(np.int64) - 1, 2 * w.astype(np.int64) - 1))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 4), m=st.integers(1, 4), kk=st.integers(1, 200), o=st.integers(1, 9))
def test_xnor_popcount_matmul(seed, n, m, kk, o):
    rng = np.random.default_rng(seed)
    x = _bits(rng, (3, n, kk))
    w = _bits(rng, (m, o, kk))
    ref, got = run_both("XnorPopcountMatMul", [x, pack_bits(w)])
    np.testing.assert_array_equal(ref, got)
    exp = np.einsum("bnk,mok->bmno", 2 * x.astype(np.int64) - 1, 2 * w.astype(np.int64) - 1)
    np.testing.assert_array_equal(ref, exp)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), m=st.integers(1, 3), c=st.integers(1, 3), o=st.integers(1, 4),
       k=st.integers(1, 4), s=st.integers(1, 2), p=st.integers(0, 2), signed=st.booleans())
def test_integer_input_conv(seed, m, c, o, k, s, p, signed):
    rng = np.random.default_rng(seed)
    lo, hi = (-128, 128) if signed else (0, 256)
    x = rng.integers(lo, hi, size=(2, c, 7, 8)).astype(np.int32)
    w = _bits(rng, (m, o, c * k * k))
    ref, got = run_both("IntegerInputConv", [x, pack_bits(w)], kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p])
    np.testing.assert_array_equal(ref, got)
    import torch
    exp = torch.nn.functional.conv2d(torch.from_numpy(x.astype(np.float64)),
                                     torch.from_numpy((2.0 * w - 1).reshape(m * o, c, k, k)), stride=s, padding=p)
    np.testing.assert_array_equal(ref[:, :, 0], exp.numpy().reshape(2, m, o, *exp.shape[2:]))


def test_integer_input_matmul():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(4, 70)).astype(np.int32)
    w = _bits(rng, (2, 5, 70))
    ref, got = run_both("IntegerInputMatMul", [x, pack_bits(w)])
    np.testing.assert_array_equal(ref, got)
    np.testing.assert_array_equal(ref[:, :, 0], np.einsum("bk,mok->bmo", x, 2 * w.astype(np.int64) - 1))


@pytest.mark.parametrize("spatial", [(), (3, 4)])
def test_multi_base_ops(spatial):
    rng = np.random.default_rng(2)
    m, n, o, n2 = 3, 2, 5, 4
    d = rng.integers(-50, 51, size=(2, m, n, o) + spatial).astype(np.int32)
    a = rng.integers(-15, 16, size=(m, o)).astype(np.int32)
    bc = rng.integers(1, 16, size=(n,)).astype(np.int32)
    c = (a[:, None, :] * bc[None, :, None]).astype(np.int32)
    ref, got = run_both("MultiBaseAccumulate", [d, c])
    np.testing.assert_array_equal(ref, got)
    np.testing.assert_array_equal(ref, np.einsum("bmno...,mo,n->bo...", d.astype(np.int64), a, bc))
    t = rng.integers(-500, 500, size=(n2, o)).astype(np.int32)
    s = np.array([1, -1, 1, 1, -1], np.int32)
    ref2, got2 = run_both("MultiBaseThreshold", [d, c, t, s])
    np.testing.assert_array_equal(ref2, got2)
    assert ref2.shape == (2, n2, o) + spatial
    acc = ref[:, None]
    tt = t.reshape((1, n2, o) + (1,) * len(spatial))
    exp = np.where(s.reshape((1, 1, o) + (1,) * len(spatial)) > 0, acc >= tt, acc <= tt)
    np.testing.assert_array_equal(ref2, exp.astype(np.uint8))


def test_bit_max_pool():
    rng = np.random.default_rng(3)
    x = _bits(rng, (2, 2, 3, 7, 6))
    ref, got = run_both("BitMaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    np.testing.assert_array_equal(ref, got)
    np.testing.assert_array_equal(ref, x[..., :6, :6].reshape(2, 2, 3, 3, 2, 3, 2).max(axis=(4, 6)))


def test_float_base_quant():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 4, 5, 5)).astype(np.float32)
    x[0, 0, 0, :3] = [0.25, -0.25, 0.0]
    ref, got = run_both("FloatBaseQuant", [x], shifts=[-0.25, 0.0, 0.25])
    np.testing.assert_array_equal(ref, got)
    assert ref.shape == (3, 3, 4, 5, 5)
    assert ref[0, :, 0, 0, 0].tolist() == [1, 1, 1] and ref[0, :, 0, 0, 1].tolist() == [0, 0, 1]


@pytest.mark.parametrize("bw,signed,narrow,scale", [(2, 1, 1, 1.0), (2, 1, 0, 0.5), (3, 0, 0, 0.25), (3, 1, 1, 2.0)])
def test_float_quant_bits(bw, signed, narrow, scale):
    rng = np.random.default_rng(5)
    x = (rng.normal(size=(3, 4, 6)) * 2 * scale).astype(np.float32)
    x[0, 0, :4] = np.array([0.5, -0.5, 1.5, -1.5], np.float32) * scale  # round-half-even ties
    ref, got = run_both("FloatQuantBits", [x], scale=scale, zero_point=0.0, bitwidth=bw, signed=signed, narrow=narrow)
    np.testing.assert_array_equal(ref, got)
    from qonnx.custom_op.general.quant import quant
    q = quant(x, np.float32(scale), np.float32(0), np.float32(bw), signed, narrow, "ROUND") / np.float32(scale)
    lo = -(2 ** (bw - 1)) + narrow if signed else 0
    np.testing.assert_array_equal(lo + ref.astype(np.int64).sum(axis=1), q)


def test_multi_base_ops_int64_coefficients():
    """Rounded layers: int64 coefficients / thresholds, accumulators beyond 2**31 stay exact."""
    rng = np.random.default_rng(6)
    d = rng.integers(-600, 601, size=(3, 2, 3, 4, 5)).astype(np.int32)
    c = rng.integers(-2**24, 2**24, size=(2, 3, 4)).astype(np.int64)
    ref, got = run_both("MultiBaseAccumulate", [d, c])
    np.testing.assert_array_equal(ref, got)
    exact = np.einsum("bmnol,mno->bol", d.astype(np.int64), c)
    np.testing.assert_array_equal(ref, exact)
    assert np.abs(exact).max() > 2**31
    t = exact[0, :, :2].T.copy()  # thresholds hitting real accumulator values
    s = np.array([1, -1, 1, -1], np.int32)
    ref2, got2 = run_both("MultiBaseThreshold", [d, c, t, s])
    np.testing.assert_array_equal(ref2, got2)
