"""MultiBaseThresholdStream: the multi-base threshold unit alone, on random and extreme dots."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from . import gen
from . import reference as ref
from .tbutil import Spec, run_spec


@dataclass(frozen=True)
class THR:
    mh: int
    pe: int
    m: int
    n: int
    dot_max: int
    nout: int
    a_w: int
    b_w: int
    act: int = 1  # 1 threshold, 2 accumulate
    vectors: int = 9

    @property
    def dw(self):
        return ref.bits_signed_sym(self.dot_max)

    def spec(self):
        return Spec.of("tb_threshold", MH=self.mh, PE=self.pe, M=self.m, N=self.n, DW=self.dw,
                       DOT_MAX=self.dot_max, NOUT=self.nout, A_W=self.a_w, B_W=self.b_w, ACT=self.act)

    def specs(self):
        return [self.spec()]


CASES = [
    THR(8, 2, 2, 2, 50, 2, 4, 3),
    THR(6, 6, 3, 3, 576, 3, 5, 4),
    THR(5, 1, 1, 1, 9, 1, 2, 2),
    THR(12, 4, 3, 2, 4608, 2, 9, 6),      # wide coefficients (fixed grid, 8 magnitude bits)
    THR(6, 3, 3, 3, 1000, 3, 4, 3, act=2),
    THR(4, 2, 2, 3, 130000, 1, 12, 10, act=2),  # accumulator wider than 32 bits
    THR(4, 2, 2, 3, 130000, 1, 20, 17, act=2),  # 59-bit accumulator: csim takes the ap_int path
    THR(6, 3, 2, 2, 300, 2, 20, 17, act=1),
]


def _id(c):
    return f"mh{c.mh}-pe{c.pe}-m{c.m}n{c.n}-dmax{c.dot_max}-nout{c.nout}-a{c.a_w}b{c.b_w}-act{c.act}"


def _run(cfg: THR, dots, a, b, thr, pos, tmp_path):
    tokens = [dots.shape[0]]
    if cfg.act == 1:
        tokens += gen.threshold_tokens(a, b, thr, pos, cfg.pe)
    else:
        tokens += gen.coeff_tokens(a, b, cfg.pe)
    # dot words: (V, NF, PE, M, N) fields of DW bits, element (pe, m, n) at ((pe*M+m)*N+n)*DW
    v = dots.shape[0]
    d = dots.reshape(v, cfg.mh // cfg.pe, cfg.pe * cfg.m * cfg.n)
    tokens += ref.words_to_hex(ref.int_to_fields(d, cfg.dw))
    return run_spec(cfg.spec(), tokens, tmp_path)


@pytest.mark.parametrize("cfg", CASES, ids=_id)
def test_threshold_random(cfg, tb_builder, tmp_path):
    rng = np.random.default_rng(11)
    dots = rng.integers(-cfg.dot_max, cfg.dot_max + 1, size=(cfg.vectors, cfg.mh, cfg.m, cfg.n))
    dots[0] = cfg.dot_max
    dots[1] = -cfg.dot_max
    a = gen.rand_coeffs(rng, (cfg.mh, cfg.m), cfg.a_w)
    b = gen.rand_coeffs(rng, (cfg.n,), cfg.b_w)
    acc = ref.mb_accumulate(dots, a, b)
    acc_max = ref.mb_acc_max(cfg.m, cfg.n, cfg.dot_max, cfg.a_w, cfg.b_w)
    assert np.abs(acc).max() <= acc_max
    thr = gen.rand_thresholds(rng, acc, cfg.nout, acc_max)
    pos = gen.rand_pos(rng, cfg.mh)
    res = _run(cfg, dots, a, b, thr, pos, tmp_path)
    if cfg.act == 1:
        got = gen.decode_bits(res.words, cfg.vectors, cfg.mh, cfg.pe, cfg.nout)
        np.testing.assert_array_equal(got, ref.mb_threshold(acc, thr, pos))
    else:
        acc_w = ref.mb_acc_bits(cfg.m, cfg.n, cfg.dot_max, cfg.a_w, cfg.b_w)
        np.testing.assert_array_equal(gen.decode_acc(res.words, cfg.vectors, cfg.mh, cfg.pe, acc_w), acc)
    assert res.iters == cfg.vectors * (cfg.mh // cfg.pe)


@pytest.mark.parametrize("cfg", [c for c in CASES if c.act == 2], ids=_id)
def test_accumulator_width_extremes(cfg, tb_builder, tmp_path):
    """|acc| = ACC_MAX exactly (most negative coefficients times +-DOT_MAX): no overflow."""
    lo_a, lo_b = -(2 ** (cfg.a_w - 1)), -(2 ** (cfg.b_w - 1))
    a = np.full((cfg.mh, cfg.m), lo_a)
    b = np.full((cfg.n,), lo_b)
    dots = np.empty((2, cfg.mh, cfg.m, cfg.n), np.int64)
    dots[0], dots[1] = cfg.dot_max, -cfg.dot_max
    res = _run(cfg, dots, a, b, None, None, tmp_path)
    acc_w = ref.mb_acc_bits(cfg.m, cfg.n, cfg.dot_max, cfg.a_w, cfg.b_w)
    got = gen.decode_acc(res.words, 2, cfg.mh, cfg.pe, acc_w)
    acc_max = ref.mb_acc_max(cfg.m, cfg.n, cfg.dot_max, cfg.a_w, cfg.b_w)
    np.testing.assert_array_equal(got[0], acc_max)
    np.testing.assert_array_equal(got[1], -acc_max)


def test_threshold_directions_and_equality(tb_builder, tmp_path):
    """acc == T fires in both directions; pos=1 is >=, pos=0 is <=; clipped thresholds saturate."""
    cfg = CASES[0]
    acc_max = ref.mb_acc_max(cfg.m, cfg.n, cfg.dot_max, cfg.a_w, cfg.b_w)
    a = np.zeros((cfg.mh, cfg.m), np.int64)
    a[:, 0] = 1
    b = np.array([1, 0])
    # acc[o] = dot_00[o]; vectors: acc = T-1, T, T+1
    t0 = np.arange(cfg.mh) - 3
    thr = np.stack([t0, np.full(cfg.mh, acc_max + 1)], axis=1)  # base 1: never (pos) / always (neg)
    pos = np.array([1, 0] * (cfg.mh // 2))
    dots = np.zeros((3, cfg.mh, cfg.m, cfg.n), np.int64)
    for v, off in enumerate((-1, 0, 1)):
        dots[v, :, 0, 0] = t0 + off
    res = _run(cfg, dots, a, b, thr, pos, tmp_path)
    got = gen.decode_bits(res.words, 3, cfg.mh, cfg.pe, cfg.nout)
    ge = np.array([0, 1, 1])[:, None]
    le = np.array([1, 1, 0])[:, None]
    np.testing.assert_array_equal(got[:, 0], np.where(pos[None] == 1, ge, le))
    np.testing.assert_array_equal(got[:, 1], np.broadcast_to(1 - pos[None], (3, cfg.mh)))
