"""Pooling on integer streams (int_pool.hpp): GlobalSumPool and IntMaxPool (padding never wins)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from . import reference as ref
from .tbutil import Spec, run_spec


@dataclass(frozen=True)
class GSP:
    c: int
    pe: int
    pixels: int
    in_w: int
    out_w: int = 0  # 0: global_sum_pool_bits (exact)
    reps: int = 3
    variant: str = "default"

    @property
    def ow(self):
        return self.out_w or ref.global_sum_pool_bits(self.in_w, self.pixels)

    def id(self):
        return f"c{self.c}-pe{self.pe}-px{self.pixels}-in{self.in_w}-out{self.ow}-{self.variant}"

    def spec(self):
        return Spec.of("tb_int_pool", self.variant, OP=0, C=self.c, PE=self.pe, PIXELS=self.pixels,
                       IN_W=self.in_w, OUT_W=self.ow)

    def specs(self):
        return [self.spec()]


GSPS = [
    GSP(8, 2, 9, 8),          # 3x3 map
    GSP(6, 6, 16, 13),        # PE = C, power-of-two pixel count: the width bound is tight
    GSP(5, 1, 7, 20),         # PE 1 (NF = C: the accumulator recurs every 5 iterations)
    GSP(4, 4, 1, 9),          # one pixel: the sum is the input
    pytest.param(GSP(12, 3, 49, 24, reps=2), marks=pytest.mark.slow),
    GSP(8, 4, 6, 10, variant="portable"),
]


@pytest.mark.parametrize("cfg", GSPS, ids=lambda c: (c if isinstance(c, GSP) else c.values[0]).id())
def test_global_sum_pool(cfg, tb_builder, tmp_path):
    rng = np.random.default_rng(cfg.pixels + cfg.c)
    lo, hi = -(2 ** (cfg.in_w - 1)), 2 ** (cfg.in_w - 1) - 1
    x = rng.integers(lo, hi + 1, size=(cfg.reps, cfg.pixels, cfg.c), dtype=np.int64)
    x[0, :, 0] = lo  # the most negative sum: needs every bit of global_sum_pool_bits
    x[0, :, 1] = hi
    res = run_spec(cfg.spec(), [cfg.reps] + ref.int_stream_words(x, cfg.pe, cfg.in_w), tmp_path)
    got = ref.int_stream_values(res.words, cfg.pe, cfg.ow, (cfg.reps, cfg.c))
    expect = ref.global_sum_pool(x)
    assert ref.signed_bits(int(expect.min()), int(expect.max())) <= cfg.ow
    np.testing.assert_array_equal(got, expect)
    assert res.calls == 1 and res.iters == cfg.reps * cfg.pixels * (cfg.c // cfg.pe)


@dataclass(frozen=True)
class IMP:
    h: int
    w: int
    c: int
    pe: int
    in_w: int
    k: tuple
    s: tuple
    p: tuple  # (PT, PL, PB, PR)
    reps: int = 3
    variant: str = "default"

    def spec(self):
        geo = dict(zip(("KH", "KW", "SH", "SW", "PT", "PL", "PB", "PR"), (*self.k, *self.s, *self.p)))
        return Spec.of("tb_int_pool", self.variant, OP=1, H=self.h, W=self.w, C=self.c, PE=self.pe,
                       IN_W=self.in_w, **geo)

    def specs(self):
        return [self.spec()]


IMPS = [
    IMP(9, 9, 4, 2, 12, (3, 3), (2, 2), (1, 1, 1, 1)),      # resnet18's stem pool, odd map
    IMP(8, 6, 3, 1, 9, (3, 3), (2, 2), (1, 1, 1, 1)),       # even map: last window on real pixels only
    IMP(5, 7, 6, 6, 16, (2, 2), (2, 2), (0, 0, 0, 0)),      # non-overlapping, floor mode drops a column
    IMP(6, 5, 4, 4, 7, (3, 2), (1, 2), (2, 0, 1, 1)),       # asymmetric kernel, strides and pads
    IMP(4, 4, 2, 1, 32, (3, 3), (1, 1), (1, 1, 1, 1)),      # 32-bit values, every border window padded
    IMP(7, 7, 4, 2, 10, (3, 3), (2, 2), (1, 1, 1, 1), variant="portable"),
]


def _imp_id(c):
    return (f"{c.h}x{c.w}x{c.c}-pe{c.pe}-in{c.in_w}-k{c.k[0]}{c.k[1]}-s{c.s[0]}{c.s[1]}-p{''.join(map(str, c.p))}"
            + ("" if c.variant == "default" else f"-{c.variant}"))


@pytest.mark.parametrize("cfg", IMPS, ids=_imp_id)
def test_int_maxpool(cfg, tb_builder, tmp_path):
    rng = np.random.default_rng(cfg.h * cfg.w + cfg.c)
    lo, hi = -(2 ** (cfg.in_w - 1)), 2 ** (cfg.in_w - 1) - 1
    x = rng.integers(lo, hi + 1, size=(cfg.reps, cfg.h, cfg.w, cfg.c), dtype=np.int64)
    x[1] = np.maximum(-np.abs(x[1]) - 1, lo)  # all negative: a padding value of 0 would win at the border
    x[1, 0, 0, 0] = lo                  # the most negative value alone in a corner window row
    x[2, :, :, 0] = lo                  # a whole channel at the minimum: the max is the minimum
    x[2, -1, -1, 1 % cfg.c] = hi
    res = run_spec(cfg.spec(), [cfg.reps] + ref.int_stream_words(x, cfg.pe, cfg.in_w), tmp_path)
    expect = ref.int_maxpool(x, cfg.k, cfg.s, cfg.p)
    got = ref.int_stream_values(res.words, cfg.pe, cfg.in_w, expect.shape)
    np.testing.assert_array_equal(got, expect)
    # the zero-padded max differs somewhere: the test would catch padding that wins
    if any(cfg.p):
        zero_pad = ref.sliding_window(x, cfg.k, cfg.s, cfg.p).max(axis=(3, 4))
        assert np.any(zero_pad != expect)
    cf = cfg.c // cfg.pe
    swg = ref.sliding_window_iters(cfg.h, cfg.w, cf, cfg.k, cfg.s, cfg.p, cfg.reps)
    mx = ref.int_window_max_iters(cfg.h, cfg.w, cf, cfg.k, cfg.s, cfg.p, cfg.reps)
    assert res.counts["swg"] == (swg, 1) and res.counts["max"] == (mx, 1)
    assert (res.iters, res.calls) == (swg + mx, 2)
