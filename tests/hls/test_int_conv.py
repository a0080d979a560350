"""An integer first-layer convolution as the generated top wires it: SlidingWindowRect -> IntMVU.
The fast view evaluates the pair as one call, SlidingWindowIntMVU_csim (input_layer.hpp), which
cuts each output pixel's window from an image buffer instead of streaming it; the synthesis view
runs the two synthesizable kernels. Both must give the numpy convolution's dots / threshold bits
word for word, leave no word in either stream, and count each kernel's iterations and calls as the
synthesizable loops do: paddings on every side, strides > 1, rectangular kernels, rows and columns
that no window covers, SIMD < C, signed pixels, several images per call."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest

from . import gen
from . import reference as ref
from .tbutil import Spec, run_spec


@dataclass(frozen=True)
class IConv:
    h: int
    w: int
    c: int
    simd: int
    rect: tuple  # (KH, KW, SH, SW, PT, PL, PB, PR)
    mh: int
    pe: int
    m: int
    act: int  # 0: raw dots (DotPassThrough), 1: MultiBaseThreshold N = 1
    nout: int = 2
    in_bits: int = 8
    signed: int = 0
    images: int = 3
    variant: str = "default"  # "portable": the synthesis view (the two kernels, no fast path)

    def spec(self):
        geo = dict(zip(("KH", "KW", "SH", "SW", "PT", "PL", "PB", "PR"), self.rect))
        return Spec.of("tb_int_conv", self.variant, IFM_H=self.h, IFM_W=self.w, C=self.c, SIMD=self.simd,
                       IN_BITS=self.in_bits, IN_SIGNED=self.signed, MH=self.mh, PE=self.pe, M=self.m,
                       ACT=self.act, NOUT=self.nout, **geo)

    def specs(self):
        return [self.spec()]


CASES = [
    IConv(8, 8, 1, 1, (5, 5, 1, 1, 0, 0, 0, 0), 6, 3, 3, 1),           # lenet's first layer, small
    IConv(7, 6, 3, 3, (3, 3, 2, 2, 1, 1, 1, 1), 4, 2, 2, 0),           # pad 1, stride 2, SIMD = C
    IConv(7, 9, 4, 2, (3, 2, 1, 2, 2, 0, 1, 1), 6, 2, 2, 0, signed=1),  # rect, asymmetric pads, SIMD < C
    IConv(10, 7, 2, 1, (3, 3, 3, 3, 0, 0, 0, 0), 4, 4, 1, 1, nout=3),  # stride = kernel: unused rows/cols
    IConv(6, 5, 3, 1, (1, 3, 2, 1, 0, 2, 0, 1), 5, 5, 2, 0, in_bits=7, images=1),  # 1x3, wide left pad
    IConv(9, 8, 3, 3, (5, 5, 2, 2, 2, 2, 2, 2), 8, 4, 1, 1, images=4),  # K5 S2 P2
    IConv(6, 6, 1, 1, (3, 3, 1, 1, 0, 0, 0, 0), 26, 26, 5, 1, nout=3, images=2),  # 78-bit output words
]
# The same cases through the synthesis view: the fast path must agree word for word and count for count.
CASES += [replace(c, variant="portable") for c in CASES[:3]]
CASES += [pytest.param(replace(c, variant="portable"), marks=pytest.mark.slow) for c in CASES[3:7]]


def _id(c):
    return (("portable-" if c.variant == "portable" else "") + f"{c.h}x{c.w}x{c.c}-simd{c.simd}-"
            + "k{}x{}-s{}x{}-p{}{}{}{}".format(*c.rect) + f"-mh{c.mh}-pe{c.pe}-m{c.m}-act{c.act}"
            + f"-{'s' if c.signed else 'u'}{c.in_bits}-img{c.images}")


@pytest.mark.parametrize("cfg", CASES, ids=_id)
def test_int_conv(cfg, tb_builder, tmp_path):
    rng = np.random.default_rng(11)
    kh, kw, sh, sw, pt, pl, pb, pr = cfg.rect
    lo, hi = (-(2 ** (cfg.in_bits - 1)), 2 ** (cfg.in_bits - 1)) if cfg.signed else (0, 2 ** cfg.in_bits)
    x = rng.integers(lo, hi, size=(cfg.images, cfg.h, cfg.w, cfg.c))
    x[0, 0] = hi - 1  # extremes in a corner row that padded windows also see
    x[-1, -1] = lo
    win = ref.sliding_window(x, (kh, kw), (sh, sw), (pt, pl, pb, pr))  # (B, OH, OW, KH, KW, C)
    oh, ow = win.shape[1:3]
    mw = kh * kw * cfg.c
    vecs = win.reshape(-1, mw)  # (B*OH*OW, MW) in (ky, kx, c) order, images major
    wb = rng.integers(0, 2, size=(cfg.m, cfg.mh, mw), dtype=np.uint8)
    dots = ref.int_dots(vecs, wb)  # (V, MH, M, 1)
    tokens = [cfg.images] + gen.weight_tokens(wb, cfg.pe, cfg.simd)
    if cfg.act == 1:
        a = gen.rand_coeffs(rng, (cfg.mh, cfg.m), 4)
        b = np.array([1])
        acc = ref.mb_accumulate(dots, a, b)
        acc_max = ref.mb_acc_max(cfg.m, 1, mw * ref.int_pixel_max(cfg.in_bits, bool(cfg.signed)), 4, 2)
        thr = gen.rand_thresholds(rng, acc, cfg.nout, acc_max)
        pos = gen.rand_pos(rng, cfg.mh)
        tokens += gen.threshold_tokens(a, b, thr, pos, cfg.pe)
    tokens += ref.words_to_hex(ref.int_pixels_to_words(x.reshape(-1, cfg.c), cfg.simd, cfg.in_bits))
    res = run_spec(cfg.spec(), tokens, tmp_path)
    v = cfg.images * oh * ow
    if cfg.act == 0:
        dw = ref.int_dot_bits(mw, cfg.in_bits, bool(cfg.signed))
        np.testing.assert_array_equal(gen.decode_dots(res.words, v, cfg.mh, cfg.pe, cfg.m, 1, dw), dots)
    else:
        got = gen.decode_bits(res.words, v, cfg.mh, cfg.pe, cfg.nout)
        np.testing.assert_array_equal(got, ref.mb_threshold(acc, thr, pos))
    cf = cfg.c // cfg.simd
    swg_iters = ref.sliding_window_iters(cfg.h, cfg.w, cf, (kh, kw), (sh, sw), (pt, pl, pb, pr), cfg.images)
    assert res.counts["swg"] == (swg_iters, 1)
    assert (res.iters, res.calls) == (ref.mvu_iters(mw, cfg.mh, cfg.simd, cfg.pe, v), 1)
