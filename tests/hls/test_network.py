"""A three-layer ABC network chained from the kernels (hls/tb/tb_network.cpp) against a direct
numpy model of the same network (direct convolutions, not window-based)."""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pytest

from . import gen
from . import reference as ref
from .tbutil import Spec, run_spec


@dataclass(frozen=True)
class Net:
    H0: int
    W0: int
    C0: int
    K0: int
    S0: int
    P0: int
    SIMD0: int
    PE0: int
    M0: int
    C1: int
    N1: int
    POOL: int
    SIMD1: int
    K1: int
    S1: int
    P1: int
    PE1: int
    M1: int
    C2: int
    N2: int
    SIMD2: int
    PE2: int
    M2: int
    CLASSES: int
    reps: int = 3

    def spec(self):
        return Spec.of("tb_network", **{f.name: getattr(self, f.name) for f in fields(self) if f.name != "reps"})

    def specs(self):
        return [self.spec()]


NETS = [
    # 8x8x3 -> conv3 p1 (8ch, N1=2) -> pool2 -> conv3 p0 (6ch, N2=3) -> FC 10, M up to 3
    Net(8, 8, 3, 3, 1, 1, 3, 4, 2, 8, 2, 2, 4, 3, 1, 0, 2, 3, 6, 3, 8, 5, 2, 10),
    # odd sizes, stride 2, SIMD 1, 1 input channel, padding in the binary conv, PE 1 logits
    pytest.param(Net(9, 7, 1, 3, 2, 1, 1, 2, 3, 4, 1, 2, 2, 2, 1, 1, 3, 1, 3, 2, 9, 1, 3, 4),
                 marks=pytest.mark.slow),
]

A_W, B_W, A_W_FC = 4, 3, 5


def model(net: Net, rng, x):
    """Returns (tokens for the params, expected logits (B, CLASSES), expected counts)."""
    tok = []
    # layer 0: uint8 conv, N=1, b=[1]
    w0 = rng.integers(0, 2, size=(net.M0, net.C1, net.K0, net.K0, net.C0), dtype=np.uint8)
    d0 = ref.conv_int(x, w0, net.K0, net.S0, net.P0)  # (B, OH, OW, C1, M0, 1)
    b_, oh0, ow0 = d0.shape[:3]
    a0 = gen.rand_coeffs(rng, (net.C1, net.M0), A_W)
    acc0 = ref.mb_accumulate(d0.reshape(-1, net.C1, net.M0, 1), a0, np.array([1]))
    amax0 = ref.mb_acc_max(net.M0, 1, net.K0 * net.K0 * net.C0 * 255, A_W, 2)
    thr0 = gen.rand_thresholds(rng, acc0, net.N1, amax0)
    pos0 = gen.rand_pos(rng, net.C1)
    bits1 = ref.mb_threshold(acc0, thr0, pos0).reshape(b_, oh0, ow0, net.N1, net.C1)
    tok += gen.weight_tokens(w0.reshape(net.M0, net.C1, -1), net.PE0, net.SIMD0)
    tok += gen.threshold_tokens(a0, np.array([1]), thr0, pos0, net.PE0)
    # pool
    p1 = ref.bit_maxpool(bits1, net.POOL)
    # layer 1: binary conv
    w1 = rng.integers(0, 2, size=(net.M1, net.C2, net.K1, net.K1, net.C1), dtype=np.uint8)
    d1 = ref.conv_bits(p1, w1, net.K1, net.S1, net.P1)  # (B, OH1, OW1, C2, M1, N1)
    oh1, ow1 = d1.shape[1:3]
    a1 = gen.rand_coeffs(rng, (net.C2, net.M1), A_W)
    b1 = gen.rand_coeffs(rng, (net.N1,), B_W)
    acc1 = ref.mb_accumulate(d1.reshape(-1, net.C2, net.M1, net.N1), a1, b1)
    amax1 = ref.mb_acc_max(net.M1, net.N1, net.K1 * net.K1 * net.C1, A_W, B_W)
    thr1 = gen.rand_thresholds(rng, acc1, net.N2, amax1)
    pos1 = gen.rand_pos(rng, net.C2)
    bits2 = ref.mb_threshold(acc1, thr1, pos1).reshape(b_, oh1, ow1, net.N2, net.C2)
    tok += gen.weight_tokens(w1.reshape(net.M1, net.C2, -1), net.PE1, net.SIMD1)
    tok += gen.threshold_tokens(a1, b1, thr1, pos1, net.PE1)
    # layer 2: FC on the flattened (h, w, c) map, per base
    mw2 = oh1 * ow1 * net.C2
    x2 = np.transpose(bits2, (0, 3, 1, 2, 4)).reshape(b_, net.N2, mw2)
    w2 = rng.integers(0, 2, size=(net.M2, net.CLASSES, mw2), dtype=np.uint8)
    a2 = gen.rand_coeffs(rng, (net.CLASSES, net.M2), A_W_FC)
    b2 = gen.rand_coeffs(rng, (net.N2,), B_W)
    logits = ref.mb_accumulate(ref.xnor_dots(x2, w2), a2, b2)
    tok += gen.weight_tokens(w2, net.PE2, net.SIMD2)
    tok += gen.coeff_tokens(a2, b2, net.PE2)
    assert 0 < bits1.mean() < 1 and 0 < bits2.mean() < 1
    counts = {
        "swg0": ref.sliding_window_iters(net.H0, net.W0, net.C0 // net.SIMD0, net.K0, net.S0, net.P0, b_),
        "mvu0": ref.mvu_iters(net.K0 * net.K0 * net.C0, net.C1, net.SIMD0, net.PE0, b_ * oh0 * ow0),
        "wc0": ref.width_converter_iters(net.PE0, net.SIMD1, oh0 * ow0 * net.C1 // net.PE0, b_),
        "pool": ref.maxpool_iters(oh0, ow0, net.C1 // net.SIMD1, b_),
        "swg1": ref.sliding_window_iters(p1.shape[1], p1.shape[2], net.C1 // net.SIMD1, net.K1, net.S1,
                                         net.P1, b_),
        "mvu1": ref.mvu_iters(net.K1 * net.K1 * net.C1, net.C2, net.SIMD1, net.PE1, b_ * oh1 * ow1),
        "wc1": ref.width_converter_iters(net.PE1, net.SIMD2, oh1 * ow1 * net.C2 // net.PE1, b_),
        "fc": ref.mvu_iters(mw2, net.CLASSES, net.SIMD2, net.PE2, b_),
    }
    acc_w2 = ref.mb_acc_bits(net.M2, net.N2, mw2, A_W_FC, B_W)
    return tok, logits, counts, acc_w2


@pytest.mark.parametrize("net", NETS, ids=["lenet-like", "odd-stride2"])
def test_network(net, tb_builder, tmp_path):
    rng = np.random.default_rng(21)
    x = rng.integers(0, 256, size=(net.reps, net.H0, net.W0, net.C0))
    tok, logits, counts, acc_w2 = model(net, rng, x)
    pix = ref.words_to_hex(ref.int_pixels_to_words(x, net.SIMD0, 8))
    res = run_spec(net.spec(), [net.reps] + tok + pix, tmp_path)
    got = gen.decode_acc(res.words, net.reps, net.CLASSES, net.PE2, acc_w2)
    np.testing.assert_array_equal(got, logits)
    assert {k: v[0] for k, v in res.counts.items()} == counts
    assert all(v[1] == 1 for v in res.counts.values())
