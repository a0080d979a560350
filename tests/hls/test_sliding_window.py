"""SlidingWindow (line-buffer window generator) against the numpy reference."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from . import reference as ref
from .tbutil import Spec, run_spec


@dataclass(frozen=True)
class SWG:
    h: int
    w: int
    c: int
    n: int  # activation bases (bit stream) -- or 0 for an integer pixel stream
    simd: int
    k: int
    s: int
    p: int
    reps: int = 2
    in_bits: int = 8  # integer streams only
    rect: tuple = ()  # (KH, KW, SH, SW, PT, PL, PB, PR): SlidingWindowRect instead of k, s, p
    maxpool: bool = False  # BitMaxPoolRect (rect parameters)

    @property
    def geom(self):
        """(k, s, p) in reference form."""
        if self.rect:
            kh, kw, sh, sw, pt, pl, pb, pr = self.rect
            return (kh, kw), (sh, sw), (pt, pl, pb, pr)
        return self.k, self.s, self.p

    @property
    def cf(self):
        return self.c // self.simd

    @property
    def word_w(self):
        return self.n * self.simd if self.n else self.simd * self.in_bits

    def spec(self, variant="default"):
        if self.rect:
            geo = dict(zip(("KH", "KW", "SH", "SW", "PT", "PL", "PB", "PR"), self.rect))
            if self.maxpool:
                geo["MAXPOOL"] = 1
        else:
            geo = dict(K=self.k, S=self.s, P=self.p)
        return Spec.of("tb_sliding_window", variant, IFM_H=self.h, IFM_W=self.w, CF=self.cf,
                       WORD_W=self.word_w, **geo)

    def specs(self):
        return [self.spec()]


CASES = [
    SWG(5, 5, 4, 1, 4, 3, 1, 1),
    SWG(7, 6, 6, 2, 3, 3, 2, 1),      # odd sizes, stride 2, SIMD < C
    SWG(6, 7, 4, 3, 2, 3, 1, 2),      # padding 2, M=3-like N=3
    SWG(5, 4, 2, 1, 1, 1, 1, 0),      # 1x1, SIMD 1
    SWG(9, 8, 3, 2, 3, 5, 2, 2),      # K5 S2 P2
    SWG(8, 8, 2, 2, 2, 2, 2, 0),      # K2 S2
    SWG(7, 7, 2, 1, 2, 1, 3, 0),      # stride > kernel: rows/cols skipped
    SWG(10, 7, 4, 2, 4, 3, 3, 1),     # stride == kernel, unused trailing rows
    SWG(4, 4, 1, 3, 1, 3, 1, 1, reps=3),
    SWG(3, 3, 2, 1, 2, 3, 1, 0, reps=3),  # single output pixel
    SWG(6, 6, 3, 0, 3, 3, 1, 1),      # integer pixels (uint8), SIMD = C
    SWG(7, 5, 3, 0, 1, 3, 2, 1),      # integer pixels, SIMD 1, stride 2
    # SlidingWindowRect: rectangular kernels, per-axis strides, asymmetric padding
    SWG(6, 9, 4, 2, 2, 0, 0, 0, rect=(3, 2, 1, 2, 1, 0, 2, 1)),
    SWG(7, 5, 2, 1, 2, 0, 0, 0, rect=(1, 3, 2, 1, 0, 2, 0, 1)),
    SWG(5, 6, 3, 0, 3, 0, 0, 0, rect=(2, 3, 2, 2, 0, 1, 1, 0)),  # integer pixels
]

# BitMaxPoolRect (general bit max pool: SlidingWindowRect + BitWindowOr)
POOLS = [
    SWG(8, 8, 4, 2, 2, 0, 0, 0, rect=(3, 3, 2, 2, 1, 1, 1, 1), maxpool=True),  # 3x3 s2 p1
    SWG(5, 7, 2, 3, 1, 0, 0, 0, rect=(2, 2, 1, 1, 0, 0, 0, 0), maxpool=True),  # overlapping
    SWG(6, 6, 3, 1, 3, 0, 0, 0, rect=(2, 2, 2, 2, 0, 0, 0, 0), maxpool=True),  # = BitMaxPool
]


def _ids(c):
    kind = f"n{c.n}" if c.n else f"int{c.in_bits}"
    geo = "rect" + "".join(map(str, c.rect)) if c.rect else f"k{c.k}s{c.s}p{c.p}"
    return f"{c.h}x{c.w}x{c.c}-{kind}-simd{c.simd}-{geo}-r{c.reps}"


def run_case(cfg: SWG, tmp_path, seed=0, variant="default"):
    rng = np.random.default_rng(seed)
    if cfg.n:
        x = rng.integers(0, 2, size=(cfg.reps, cfg.h, cfg.w, cfg.n, cfg.c), dtype=np.uint8)
        words = ref.bit_pixels_to_words(x, cfg.simd)  # (B, H, W, CF, N*SIMD)
    else:
        x = rng.integers(0, 256, size=(cfg.reps, cfg.h, cfg.w, cfg.c))
        words = ref.int_pixels_to_words(x, cfg.simd, cfg.in_bits)
    res = run_spec(cfg.spec(variant), [cfg.reps] + ref.words_to_hex(words), tmp_path)
    k, s, p = cfg.geom
    win_words = ref.sliding_window(words, k, s, p)  # (B, OH, OW, KH, KW, CF, WORD_W)
    oh, ow, kh, kw = win_words.shape[1:5]
    got = ref.hex_to_words(res.words, cfg.word_w)
    assert res.calls == (2 if cfg.maxpool else 1)  # BitMaxPoolRect = window generator + OR
    if cfg.maxpool:
        got = got.reshape(cfg.reps, oh, ow, cfg.cf, cfg.word_w)
        expect = ref.bit_maxpool_general(x, k, s, p)  # on the tensor: OR with pad bit 0
        np.testing.assert_array_equal(ref.words_to_bit_pixels(got, cfg.n), expect)
        assert 0 < expect.sum() < expect.size
        assert res.iters == (ref.sliding_window_iters(cfg.h, cfg.w, cfg.cf, k, s, p, cfg.reps)
                             + cfg.reps * oh * ow * kh * kw * cfg.cf)
        return res
    got = got.reshape(cfg.reps, oh, ow, kh, kw, cfg.cf, cfg.word_w)
    # 1) word-level reference: windows of words, pad word 0
    np.testing.assert_array_equal(got, win_words)
    # 2) semantic check through the layout: windows of the tensor itself, pad bit 0 / pixel 0
    if cfg.n:
        win = ref.words_to_bit_pixels(got, cfg.n)  # (B, OH, OW, KH, KW, N, C)
    else:
        win = ref.int_fields(got, cfg.in_bits, signed=False).reshape(cfg.reps, oh, ow, kh, kw, cfg.c)
    np.testing.assert_array_equal(win, ref.sliding_window(x, k, s, p))
    assert res.iters == ref.sliding_window_iters(cfg.h, cfg.w, cfg.cf, k, s, p, cfg.reps)
    return res


@pytest.mark.parametrize("cfg", CASES, ids=_ids)
def test_sliding_window(cfg, tb_builder, tmp_path):
    run_case(cfg, tmp_path, seed=len(_ids(cfg)))


@pytest.mark.parametrize("cfg", POOLS, ids=_ids)
def test_bit_maxpool_rect(cfg, tb_builder, tmp_path):
    run_case(cfg, tmp_path, seed=3)


def test_padding_is_minus_one_in_every_base(tb_builder, tmp_path):
    """All-ones input (+1 everywhere): exactly the padded positions come out as bit 0 (-1)."""
    cfg = CASES[2]
    x = np.ones((1, cfg.h, cfg.w, cfg.n, cfg.c), np.uint8)
    words = ref.bit_pixels_to_words(x, cfg.simd)
    res = run_spec(cfg.spec(), [1] + ref.words_to_hex(words), tmp_path)
    oh, ow = ref.conv_out_dim(cfg.h, cfg.k, cfg.s, cfg.p), ref.conv_out_dim(cfg.w, cfg.k, cfg.s, cfg.p)
    got = ref.hex_to_words(res.words, cfg.word_w).reshape(1, oh, ow, cfg.k, cfg.k, cfg.cf, cfg.word_w)
    win = ref.words_to_bit_pixels(got, cfg.n)
    # window tap (oy, ox, ky, kx) is padding iff outside the image
    iy = np.arange(oh)[:, None] * cfg.s + np.arange(cfg.k)[None, :] - cfg.p  # (OH, K)
    ix = np.arange(ow)[:, None] * cfg.s + np.arange(cfg.k)[None, :] - cfg.p
    inside = ((iy >= 0) & (iy < cfg.h))[:, None, :, None] & ((ix >= 0) & (ix < cfg.w))[None, :, None, :]
    expect = np.broadcast_to(inside[..., None, None], win.shape[1:]).astype(np.uint8)
    np.testing.assert_array_equal(win[0], expect)
    assert 0 < expect.sum() < expect.size
