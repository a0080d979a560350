"""Zero-padded binary convolution: SlidingWindowRect (bit-0 padding) -> XnorConvMVU with the
ZeroPadCorrection table -> dots / thresholds, against a direct convolution whose padding is 0."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from abcn_hw.backend.ir import ConvGeom
from abcn_hw.backend.padding import border_classes, pad_correction

from . import gen
from . import reference as ref
from .tbutil import Spec, run_spec


@dataclass(frozen=True)
class ZPConv:
    h: int
    w: int
    c: int
    n: int
    simd: int
    k: tuple  # (KH, KW)
    s: tuple  # (SH, SW)
    p: tuple  # (PT, PL, PB, PR)
    mh: int
    pe: int
    m: int
    act: int  # 0 dots, 1 threshold, 2 accumulate (int stream out, a non-final conv before a join)
    nout: int = 2
    reps: int = 2
    variant: str = "default"

    @property
    def geom(self) -> ConvGeom:
        return ConvGeom(self.h, self.w, *self.k, *self.s, *self.p)

    @property
    def cw(self) -> int:  # a bound for any weights: |corr| <= KH*KW*C
        return ref.bits_signed_sym(self.k[0] * self.k[1] * self.c)

    def spec(self):
        row, rmask, col, cmask = border_classes(self.geom)
        geo = dict(zip(("KH", "KW", "SH", "SW", "PT", "PL", "PB", "PR"), (*self.k, *self.s, *self.p)))
        return Spec.of("tb_zeropad_conv", self.variant, H=self.h, W=self.w, C=self.c, N=self.n, SIMD=self.simd,
                       MH=self.mh, PE=self.pe, M=self.m, RC=len(rmask), CC=len(cmask), CW=self.cw, ACT=self.act,
                       NOUT=self.nout, **geo)

    def specs(self):
        return [self.spec()]


CASES = [
    ZPConv(5, 7, 4, 2, 2, (3, 3), (1, 1), (1, 1, 1, 1), 6, 3, 2, 0),               # pad 1, stride 1, M = N = 2
    ZPConv(7, 6, 3, 1, 3, (5, 5), (2, 2), (2, 2, 2, 2), 4, 2, 3, 1),               # pad 2, stride 2, k 5, M = 3
    ZPConv(4, 9, 2, 3, 1, (3, 3), (2, 1), (0, 1, 2, 1), 3, 1, 1, 0),               # asymmetric pads and strides
    ZPConv(3, 4, 2, 2, 2, (5, 5), (1, 1), (2, 2, 2, 2), 4, 4, 2, 1, nout=3),       # map smaller than the kernel
    ZPConv(6, 5, 4, 2, 4, (3, 3), (1, 2), (1, 1, 1, 1), 4, 2, 2, 1, variant="portable"),  # synthesizable path
    pytest.param(ZPConv(7, 6, 3, 1, 3, (5, 5), (2, 2), (2, 2, 2, 2), 4, 2, 3, 1, variant="portable"),
                 marks=pytest.mark.slow),
    # MultiBaseAccumulate on a conv: a residual block's conv2 (3x3, pad 1) and the downsampling
    # shortcut (1x1, stride 2, no padding), accumulators out as an integer stream
    ZPConv(6, 6, 4, 2, 2, (3, 3), (1, 1), (1, 1, 1, 1), 6, 3, 2, 2),
    ZPConv(7, 8, 6, 3, 3, (1, 1), (2, 2), (0, 0, 0, 0), 4, 2, 3, 2),
    ZPConv(5, 5, 4, 2, 4, (3, 3), (2, 2), (1, 1, 1, 1), 4, 4, 2, 2, variant="portable"),
]


def _id(c):
    if not isinstance(c, ZPConv):
        c = c.values[0]
    return (f"{c.h}x{c.w}x{c.c}-n{c.n}-k{c.k[0]}x{c.k[1]}-s{c.s[0]}{c.s[1]}-p{''.join(map(str, c.p))}"
            f"-m{c.m}-pe{c.pe}-simd{c.simd}-act{c.act}" + ("" if c.variant == "default" else f"-{c.variant}"))


def zero_padded_dots(x: np.ndarray, wb: np.ndarray, g: ConvGeom) -> np.ndarray:
    """x (B, H, W, N, C) bits, wb (M, O, KH, KW, C) -> dots (B, OH, OW, O, M, N), padding value 0."""
    bsz, h, w, n, c = x.shape
    xp = np.zeros((bsz, h + g.pt + g.pb, w + g.pl + g.pr, n, c), np.int64)
    xp[:, g.pt:g.pt + h, g.pl:g.pl + w] = 2 * x.astype(np.int64) - 1
    ws = 2 * wb.astype(np.int64) - 1
    out = np.zeros((bsz, g.ofm_h, g.ofm_w, ws.shape[1], ws.shape[0], n), np.int64)
    for ky in range(g.kh):
        for kx in range(g.kw):
            patch = xp[:, ky:ky + g.sh * (g.ofm_h - 1) + 1:g.sh, kx:kx + g.sw * (g.ofm_w - 1) + 1:g.sw]
            out += np.einsum("byxnc,moc->byxomn", patch, ws[:, :, ky, kx])
    return out


@pytest.mark.parametrize("cfg", CASES, ids=_id)
def test_zero_padded_conv(cfg, tb_builder, tmp_path):
    rng = np.random.default_rng(sum(cfg.k) * 31 + cfg.h)
    g = cfg.geom
    x = rng.integers(0, 2, size=(cfg.reps, cfg.h, cfg.w, cfg.n, cfg.c), dtype=np.uint8)
    wb = rng.integers(0, 2, size=(cfg.m, cfg.mh, *cfg.k, cfg.c), dtype=np.uint8)
    mw = cfg.k[0] * cfg.k[1] * cfg.c
    wflat = wb.reshape(cfg.m, cfg.mh, mw)  # window order k = (ky*KW + kx)*C + c
    pc = pad_correction(wflat, g, cfg.c)
    assert pc.cw <= cfg.cw
    dots = zero_padded_dots(x, wb, g).reshape(-1, cfg.mh, cfg.m, cfg.n)  # (V, MH, M, N)
    vectors = cfg.reps * g.ofm_h * g.ofm_w
    table = pc.table.reshape(cfg.m, cfg.mh, -1).transpose(1, 0, 2)  # (MH, M, RC*CC)
    tokens = [cfg.reps] + gen.weight_tokens(wflat, cfg.pe, cfg.simd) + [int(v) for v in pc.row] + \
        [int(v) for v in pc.col] + [int(v) for v in ref.fold_channels(table, cfg.pe).reshape(-1)]
    if cfg.act in (1, 2):
        a = gen.rand_coeffs(rng, (cfg.mh, cfg.m), 4)
        b = gen.rand_coeffs(rng, (cfg.n,), 3)
        acc = ref.mb_accumulate(dots, a, b)
    if cfg.act == 1:
        acc_max = ref.mb_acc_max(cfg.m, cfg.n, mw, 4, 3)
        thr = gen.rand_thresholds(rng, acc, cfg.nout, acc_max)
        pos = gen.rand_pos(rng, cfg.mh)
        tokens += gen.threshold_tokens(a, b, thr, pos, cfg.pe)
    elif cfg.act == 2:
        tokens += gen.coeff_tokens(a, b, cfg.pe)
    tokens += ref.words_to_hex(ref.bit_pixels_to_words(x, cfg.simd))
    res = run_spec(cfg.spec(), tokens, tmp_path)
    if cfg.act == 0:
        got = gen.decode_dots(res.words, vectors, cfg.mh, cfg.pe, cfg.m, cfg.n, ref.xnor_dot_bits(mw))
        np.testing.assert_array_equal(got, dots)
        assert np.any(pc.table != 0)  # the correction is exercised
    elif cfg.act == 2:
        acc_w = ref.mb_acc_bits(cfg.m, cfg.n, mw, 4, 3)
        np.testing.assert_array_equal(gen.decode_acc(res.words, vectors, cfg.mh, cfg.pe, acc_w), acc)
        assert np.any(acc < 0) and np.any(acc > 0)
    else:
        got = gen.decode_bits(res.words, vectors, cfg.mh, cfg.pe, cfg.nout)
        expect = ref.mb_threshold(acc, thr, pos)
        np.testing.assert_array_equal(got, expect)
        assert 0 < expect.sum() < expect.size
    assert res.counts["swg"] == (ref.sliding_window_iters(cfg.h, cfg.w, cfg.c // cfg.simd, cfg.k, cfg.s, cfg.p,
                                                          cfg.reps), 1)
    assert res.counts["mvu"] == (ref.mvu_iters(mw, cfg.mh, cfg.simd, cfg.pe, vectors), 1)


def test_correction_table_equals_the_compilers_correction():
    """The backend's per-class table, expanded to every output pixel, is the lowering's
    zero_pad_correction (same weights, kernel order (ky, kx, c) vs the lowering's (c, ky, kx))."""
    from abcn_hw.compiler.ops import zero_pad_correction

    rng = np.random.default_rng(0)
    for h, w, k, s, p in [(5, 7, (3, 3), (1, 1), (1, 1, 1, 1)), (3, 4, (5, 5), (2, 1), (2, 2, 2, 2)),
                          (8, 6, (5, 3), (2, 2), (2, 0, 1, 1))]:
        g = ConvGeom(h, w, *k, *s, *p)
        c, m, o = 3, 2, 4
        wb = rng.integers(0, 2, size=(m, o, c, *k), dtype=np.uint8)  # lowering order (c, ky, kx)
        full = zero_pad_correction(wb.reshape(m, o, -1), k, s, p, h, w)  # (M, O, OH, OW)
        pc = pad_correction(wb.transpose(0, 1, 3, 4, 2).reshape(m, o, -1), g, c)
        np.testing.assert_array_equal(pc.table[:, :, pc.row][:, :, :, pc.col], full)
        assert pc.rc <= p[0] + p[2] + 1 and pc.cc <= p[1] + p[3] + 1
