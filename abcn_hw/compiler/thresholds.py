"""Exact threshold derivation: evaluate the export's own float32 ops on integer accumulators.

For one layer, ``chain`` is the list of export nodes between the accumulator (``Cast`` to float,
``Mul`` by the power-of-two unit, then batch norm / scale / bias / TensorNorm ... as exported)
and the next FloatBaseQuant. Each node is per-channel and monotone, so for every channel o and
next-layer base n the bit (chain(acc) + c_n >= 0) is a monotone step in the integer acc: either
non-decreasing (bit = acc >= T) or non-increasing (bit = acc <= T). The chain is run with
onnxruntime (the same kernels qonnx's executor uses for standard ops) on candidate accumulators,
and T found by a vectorised binary search over [-amax, amax]: no algebra, no re-rounding.
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
from onnx import NodeProto, TensorProto, helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper


class ChainEvaluator:
    """Runs ``chain`` (elementwise, per-channel) on an int32/int64 accumulator tensor (R, O, 1..)."""

    def __init__(self, model: ModelWrapper, chain: list[NodeProto], acc_in: str, out: str, rank: int, opset: int,
                 acc_dtype: np.dtype = np.dtype(np.int32)):
        inits = []
        seen = set()
        for node in chain:
            for i in node.input:
                v = model.get_initializer(i)
                if v is not None and i not in seen:
                    inits.append(numpy_helper.from_array(np.asarray(v), i))
                    seen.add(i)
        shape = ["r", None] + [1] * (rank - 2)
        self.acc_dtype = np.dtype(acc_dtype)
        elem = TensorProto.INT64 if self.acc_dtype == np.int64 else TensorProto.INT32
        graph = helper.make_graph(list(chain), "chain", [helper.make_tensor_value_info(acc_in, elem, shape)],
                                  [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = 10
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self.sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        self.acc_in = acc_in
        self.rank = rank

    def __call__(self, acc: np.ndarray) -> np.ndarray:
        """acc (R, O) int -> z (R, O) float32."""
        a = acc.astype(self.acc_dtype).reshape(acc.shape + (1,) * (self.rank - 2))
        z = self.sess.run(None, {self.acc_in: a})[0]
        return np.asarray(z, np.float32).reshape(acc.shape)


def derive_thresholds(evaluate: ChainEvaluator, spec, amax: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns (T (N', O) int64, S (O,) int32) such that for every integer acc in [-amax, amax]:
    bit_n(chain(acc)) == (acc >= T[n] if S > 0 else acc <= T[n]), bit_n from ``spec`` (BitSpec)."""
    o = amax.shape[0]
    nn = spec.count
    lo = -amax.astype(np.int64)
    hi = amax.astype(np.int64)
    z_lo = evaluate(lo[None, :])[0]
    z_hi = evaluate(hi[None, :])[0]
    up = z_hi >= z_lo  # non-decreasing (constant channels count as non-decreasing)
    s = np.where(up, 1, -1).astype(np.int32)

    def pred(a: np.ndarray) -> np.ndarray:  # a (N', O) -> monotone non-decreasing predicate in a
        z = evaluate(a)  # (N', O): row n is evaluated for base n
        bit = spec.bits(z)[np.arange(nn), np.arange(nn)]  # bit n of row n
        return np.where(up[None, :], bit, ~bit)

    # first_true over [lo, hi]; hi + 1 if none
    left = np.broadcast_to(lo, (nn, o)).copy()
    right = np.broadcast_to(hi + 1, (nn, o)).copy()
    while np.any(left < right):
        mid = (left + right) // 2
        active = left < right
        p = pred(np.where(active, np.minimum(mid, hi[None, :]), lo[None, :]))
        right = np.where(active & p, mid, right)
        left = np.where(active & ~p, mid + 1, left)
    first = left
    t = np.where(up[None, :], first, first - 1)
    return t.astype(np.int64), s


def check_thresholds(evaluate: ChainEvaluator, spec, amax, t, s, samples: int = 4096, seed: int = 0) -> int:
    """Number of mismatches between the threshold rule and the chain on random + boundary accs."""
    rng = np.random.default_rng(seed)
    o = amax.shape[0]
    cands = [rng.integers(-amax, amax + 1, size=(samples, o))]
    for d in (-1, 0, 1):
        for n in range(t.shape[0]):
            cands.append(np.clip(t[n:n + 1].astype(np.int64) + d, -amax, amax))
    a = np.concatenate(cands, axis=0)
    z = evaluate(a)
    allbits = spec.bits(z)
    bad = 0
    for n in range(spec.count):
        bit = allbits[n]
        rule = np.where(s[None, :] > 0, a >= t[n][None, :], a <= t[n][None, :])
        bad += int(np.sum(bit != rule))
    return bad


__all__ = ["ChainEvaluator", "derive_thresholds", "check_thresholds"]
