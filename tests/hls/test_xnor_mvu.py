"""XnorMVU (multi-base XNOR-popcount MVU) with dot pass-through, threshold and logits outputs."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from . import gen
from . import reference as ref
from .tbutil import Spec, run_spec


@dataclass(frozen=True)
class MVU:
    mw: int
    mh: int
    simd: int
    pe: int
    m: int
    n: int
    act: int  # 0 dots, 1 threshold, 2 logits
    nout: int = 1
    vectors: int = 7
    a_w: int = 4
    b_w: int = 3
    variant: str = "default"

    def spec(self):
        return Spec.of("tb_xnor_mvu", self.variant, MW=self.mw, MH=self.mh, SIMD=self.simd, PE=self.pe,
                       M=self.m, N=self.n, ACT=self.act, NOUT=self.nout, A_W=self.a_w, B_W=self.b_w)

    def specs(self):
        return [self.spec()]


DOTS = [
    MVU(18, 8, 6, 4, 2, 3, 0),
    MVU(16, 6, 16, 1, 1, 1, 0),
    MVU(27, 9, 9, 3, 3, 2, 0),
    MVU(130, 4, 130, 2, 1, 1, 0, vectors=3),   # > 64-bit words (chunked popcount)
    MVU(35, 5, 7, 5, 2, 2, 0),                 # PE = MH
    MVU(9, 4, 1, 2, 3, 3, 0),                  # SIMD 1, M = N = 3
    pytest.param(MVU(72, 6, 24, 2, 3, 3, 0, variant="portable"),  # synthesizable code path
                 marks=pytest.mark.slow),
]
THRESH = [
    MVU(36, 8, 12, 2, 2, 2, 1, nout=2),
    MVU(27, 6, 27, 6, 3, 3, 1, nout=3),        # fully parallel
    MVU(45, 10, 5, 1, 1, 2, 1, nout=1),        # PE 1
    MVU(32, 4, 8, 4, 3, 1, 1, nout=3, a_w=6, b_w=2),
    MVU(20, 12, 10, 3, 2, 3, 1, nout=2, vectors=9),
    MVU(260, 4, 130, 2, 2, 3, 1, nout=2, vectors=4),   # 3 chunks of 64 bits per base, masked tail
    MVU(260, 4, 130, 2, 2, 3, 1, nout=2, vectors=4, variant="portable"),  # same, synthesizable path
    # output words of NOUT*PE = 75 bits (two chunks in the fast path's block activation), 11 vectors
    # (a full block of 8 and a partial one); both views
    MVU(40, 50, 8, 25, 2, 3, 1, nout=3, vectors=11),
    MVU(40, 50, 8, 25, 2, 3, 1, nout=3, vectors=11, variant="portable"),
]
LOGITS = [
    MVU(50, 10, 10, 5, 2, 2, 2),
    MVU(64, 10, 16, 1, 3, 3, 2, a_w=8, b_w=5),
    MVU(24, 3, 3, 3, 1, 1, 2),
]


def _id(c):
    if not isinstance(c, MVU):
        c = c.values[0]
    return (f"mw{c.mw}-mh{c.mh}-simd{c.simd}-pe{c.pe}-m{c.m}n{c.n}-act{c.act}-nout{c.nout}"
            + ("" if c.variant == "default" else f"-{c.variant}"))


def run_case(cfg: MVU, tmp_path, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, size=(cfg.vectors, cfg.n, cfg.mw), dtype=np.uint8)
    wb = rng.integers(0, 2, size=(cfg.m, cfg.mh, cfg.mw), dtype=np.uint8)
    dots = ref.xnor_dots(x, wb)  # (V, MH, M, N)
    a = gen.rand_coeffs(rng, (cfg.mh, cfg.m), cfg.a_w)
    b = gen.rand_coeffs(rng, (cfg.n,), cfg.b_w)
    acc = ref.mb_accumulate(dots, a, b)
    acc_max = ref.mb_acc_max(cfg.m, cfg.n, cfg.mw, cfg.a_w, cfg.b_w)
    acc_w = ref.mb_acc_bits(cfg.m, cfg.n, cfg.mw, cfg.a_w, cfg.b_w)
    tokens = [cfg.vectors] + gen.weight_tokens(wb, cfg.pe, cfg.simd)
    if cfg.act == 1:
        thr = gen.rand_thresholds(rng, acc, cfg.nout, acc_max)
        pos = gen.rand_pos(rng, cfg.mh)
        tokens += gen.threshold_tokens(a, b, thr, pos, cfg.pe)
    elif cfg.act == 2:
        tokens += gen.coeff_tokens(a, b, cfg.pe)
    tokens += ref.words_to_hex(ref.bit_pixels_to_words(x, cfg.simd))
    res = run_spec(cfg.spec(), tokens, tmp_path)

    if cfg.act == 0:
        got = gen.decode_dots(res.words, cfg.vectors, cfg.mh, cfg.pe, cfg.m, cfg.n, ref.xnor_dot_bits(cfg.mw))
        np.testing.assert_array_equal(got, dots)
    elif cfg.act == 1:
        got = gen.decode_bits(res.words, cfg.vectors, cfg.mh, cfg.pe, cfg.nout)
        expect = ref.mb_threshold(acc, thr, pos)
        np.testing.assert_array_equal(got, expect)
        assert 0 < expect.sum() < expect.size  # both outcomes exercised
    else:
        got = gen.decode_acc(res.words, cfg.vectors, cfg.mh, cfg.pe, acc_w)
        np.testing.assert_array_equal(got, acc)
    assert res.calls == 1
    assert res.iters == ref.mvu_iters(cfg.mw, cfg.mh, cfg.simd, cfg.pe, cfg.vectors)


@pytest.mark.parametrize("cfg", DOTS, ids=_id)
def test_xnor_mvu_dots(cfg, tb_builder, tmp_path):
    run_case(cfg, tmp_path, seed=1)


@pytest.mark.parametrize("cfg", THRESH, ids=_id)
def test_xnor_mvu_threshold(cfg, tb_builder, tmp_path):
    run_case(cfg, tmp_path, seed=2)


@pytest.mark.parametrize("cfg", LOGITS, ids=_id)
def test_xnor_logits(cfg, tb_builder, tmp_path):
    run_case(cfg, tmp_path, seed=3)


FOLDINGS = [pytest.param(MVU(18, 6, simd, pe, 2, 2, 1, nout=2, vectors=5), marks=marks)
            for (pe, simd), marks in [((1, 1), ()), ((2, 3), pytest.mark.slow), ((3, 9), pytest.mark.slow),
                                      ((6, 2), pytest.mark.slow), ((6, 18), ())]]


@pytest.mark.parametrize("cfg", FOLDINGS, ids=_id)
def test_folding_variants_same_layer(cfg, tb_builder, tmp_path):
    """One layer (same seed, same data) under several PE/SIMD foldings."""
    run_case(cfg, tmp_path, seed=7)
