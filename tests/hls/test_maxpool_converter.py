"""BitMaxPool (OR pooling) and MultiBaseWidthConverter."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from . import reference as ref
from .tbutil import Spec, run_spec


@dataclass(frozen=True)
class Pool:
    h: int
    w: int
    c: int
    n: int
    simd: int
    pool: int
    reps: int = 2

    def spec(self):
        return Spec.of("tb_maxpool", IFM_H=self.h, IFM_W=self.w, CF=self.c // self.simd,
                       WORD_W=self.n * self.simd, POOL=self.pool)

    def specs(self):
        return [self.spec()]


POOLS = [
    Pool(4, 4, 4, 1, 4, 2),
    Pool(5, 7, 6, 2, 3, 2),    # odd sizes: floor mode drops the last row/column
    Pool(9, 9, 2, 3, 1, 3),
    Pool(6, 8, 4, 2, 2, 3),    # 8 % 3 != 0
    Pool(3, 3, 8, 1, 8, 3, reps=3),
]


@pytest.mark.parametrize("cfg", POOLS, ids=lambda c: f"{c.h}x{c.w}x{c.c}-n{c.n}-simd{c.simd}-pool{c.pool}")
def test_bit_maxpool(cfg, tb_builder, tmp_path):
    rng = np.random.default_rng(3)
    # sparse ones so that OR results are mixed
    x = (rng.random((cfg.reps, cfg.h, cfg.w, cfg.n, cfg.c)) < 0.2).astype(np.uint8)
    words = ref.bit_pixels_to_words(x, cfg.simd)
    res = run_spec(cfg.spec(), [cfg.reps] + ref.words_to_hex(words), tmp_path)
    oh, ow = cfg.h // cfg.pool, cfg.w // cfg.pool
    got = ref.hex_to_words(res.words, cfg.n * cfg.simd).reshape(cfg.reps, oh, ow, cfg.c // cfg.simd, -1)
    expect = ref.bit_maxpool(x, cfg.pool)
    np.testing.assert_array_equal(ref.words_to_bit_pixels(got, cfg.n), expect)
    assert 0 < expect.sum() < expect.size
    # max of +-1 values == OR of bits
    np.testing.assert_array_equal(2 * expect.astype(int) - 1, ref.bit_maxpool(2 * x.astype(int) - 1, cfg.pool))
    assert res.iters == ref.maxpool_iters(cfg.h, cfg.w, cfg.c // cfg.simd, cfg.reps)


@dataclass(frozen=True)
class WC:
    n: int
    in_w: int
    out_w: int
    in_words: int
    reps: int = 2

    def spec(self):
        return Spec.of("tb_width_converter", N=self.n, IN_W=self.in_w, OUT_W=self.out_w,
                       NUM_IN_WORDS=self.in_words)

    def specs(self):
        return [self.spec()]


CONVERTERS = [
    WC(1, 8, 2, 6),      # split
    WC(2, 2, 8, 12),     # combine
    WC(3, 4, 6, 9),      # neither divides the other
    WC(2, 6, 4, 6),
    WC(1, 5, 5, 4),      # identity
    WC(2, 64, 96, 6),    # wide words (> 64 bits per base in the buffer)
    WC(1, 24, 8, 5),     # integer pixel stream: 3 x uint8 -> 1 x uint8
]


@pytest.mark.parametrize("cfg", CONVERTERS, ids=lambda c: f"n{c.n}-{c.in_w}to{c.out_w}-w{c.in_words}")
def test_width_converter(cfg, tb_builder, tmp_path):
    rng = np.random.default_rng(4)
    total = cfg.in_words * cfg.in_w  # elements per base per image
    seq = rng.integers(0, 2, size=(cfg.reps, cfg.n, total), dtype=np.uint8)
    in_words = ref.bit_pixels_to_words(seq, cfg.in_w)  # (reps, IN_WORDS, N*IN_W)
    res = run_spec(cfg.spec(), [cfg.reps] + ref.words_to_hex(in_words), tmp_path)
    got = ref.hex_to_words(res.words, cfg.n * cfg.out_w).reshape(cfg.reps, total // cfg.out_w, -1)
    np.testing.assert_array_equal(got, ref.bit_pixels_to_words(seq, cfg.out_w))
    assert res.iters == ref.width_converter_iters(cfg.in_w, cfg.out_w, cfg.in_words, cfg.reps)
