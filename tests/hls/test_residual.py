"""Residual-network kernels on integer streams (residual.hpp): ResidualAdd (1 or 2 inputs),
ResidualAddThreshold, ResidualAddThresholdSum, IntThreshold and DuplicateStreams, against numpy."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from . import gen
from . import reference as ref
from .tbutil import Spec, run_spec

SUM, BITS, BOTH, THRESH = 0, 1, 2, 3


@dataclass(frozen=True)
class Join:
    c: int
    pe: int
    pixels: int
    k: int          # inputs
    mode: int       # SUM, BITS, BOTH, THRESH
    in0_w: int
    in1_w: int = 1
    s_w: int = 4
    t_w: int = 10
    nout: int = 2
    thr_w: int = 0  # 0: just wide enough for the sum
    out_w: int = 0  # 0: residual_sum_bits (worst case); < that: the sum wraps (documented)
    reps: int = 2
    variant: str = "default"
    shift: int = 0  # the join's rounding shift (ties to even)

    @property
    def y_w(self):
        return ref.residual_sum_bits(self.in0_w, self.in1_w if self.k == 2 else 1, self.s_w, self.t_w)

    @property
    def ow(self):
        return self.out_w or self.y_w

    @property
    def tw(self):
        return self.thr_w or self.y_w + 1

    def spec(self):
        return Spec.of("tb_residual", self.variant, C=self.c, PE=self.pe, PIXELS=self.pixels, K=self.k,
                       MODE=self.mode, IN0_W=self.in0_w, IN1_W=self.in1_w, OUT_W=self.ow, S_W=self.s_w,
                       T_W=self.t_w, NOUT=self.nout, THR_W=self.tw, **({"SHIFT": self.shift} if self.shift else {}))

    def specs(self):
        return [self.spec()]


CASES = [
    Join(8, 4, 6, 2, SUM, 12, 9),                      # conv acc + previous residual, different widths
    Join(6, 1, 5, 2, BITS, 7, 16, nout=3),             # PE 1
    Join(16, 16, 3, 2, BOTH, 20, 20, s_w=6, t_w=24),   # PE = C
    Join(6, 3, 4, 1, SUM, 11, s_w=5, t_w=14),          # stem affine (one input)
    pytest.param(Join(4, 2, 7, 1, BITS, 9, nout=1), marks=pytest.mark.slow),
    Join(10, 5, 3, 1, BOTH, 13, nout=3, reps=3),
    Join(6, 2, 5, 1, THRESH, 16, nout=3),              # IntThreshold
    Join(4, 4, 4, 1, THRESH, 40, nout=2, thr_w=64),    # 64-bit thresholds (the rounded lowering's int64 T)
    Join(40, 40, 2, 1, THRESH, 12, nout=3),            # 120-bit threshold words (several 64-bit chunks)
    Join(4, 2, 4, 2, BOTH, 32, 31, s_w=16, t_w=40),    # 50-bit exact sum
    Join(6, 3, 4, 2, SUM, 8, 8, s_w=2, t_w=3, out_w=9),  # OUT_W below the worst case: wraps mod 2^OUT_W
    # a 64-bit join (the C-simulation fast path needs <= 63: the ap_int code runs), 60-bit sum out
    Join(4, 2, 3, 2, BOTH, 48, 40, s_w=14, t_w=20, thr_w=64, out_w=60),
    Join(8, 4, 5, 2, BOTH, 12, 10, nout=3, variant="portable"),
    pytest.param(Join(6, 3, 4, 1, THRESH, 12, nout=2, variant="portable"), marks=pytest.mark.slow),
    # rounding shifts (a join's requantisation): ties to even, both C-simulation paths
    Join(8, 4, 6, 2, SUM, 12, 9, shift=3),
    Join(6, 3, 5, 1, BOTH, 11, s_w=5, t_w=14, nout=3, shift=1),
    Join(6, 2, 5, 2, BOTH, 10, 12, shift=6, variant="portable"),
]


def _id(c):
    if not isinstance(c, Join):
        c = c.values[0]
    mode = ("sum", "bits", "both", "thr")[c.mode]
    return (f"c{c.c}-pe{c.pe}-px{c.pixels}-k{c.k}-{mode}-in{c.in0_w}.{c.in1_w}-s{c.s_w}t{c.t_w}"
            f"-nout{c.nout}-thr{c.tw}-out{c.ow}" + (f"-shift{c.shift}" if c.shift else "")
            + ("" if c.variant == "default" else f"-{c.variant}"))


def _rand_int(rng, shape, w):
    return rng.integers(-(2 ** (w - 1)), 2 ** (w - 1), size=shape, dtype=np.int64)


def _extremes(x, w):
    """Pixel 0 of image 0 at the most negative value, pixel 1 at the most positive."""
    x[0, 0] = -(2 ** (w - 1))
    x[0, 1] = 2 ** (w - 1) - 1


@pytest.mark.parametrize("cfg", CASES, ids=_id)
def test_residual_join(cfg, tb_builder, tmp_path):
    rng = np.random.default_rng(cfg.c * 7 + cfg.pixels)
    shape = (cfg.reps, cfg.pixels, cfg.c)
    xs = [_rand_int(rng, shape, cfg.in0_w)]
    if cfg.k == 2:
        xs.append(_rand_int(rng, shape, cfg.in1_w))
    for x, w in zip(xs, (cfg.in0_w, cfg.in1_w)):
        _extremes(x, w)
    tokens = [cfg.reps]
    if cfg.mode == THRESH:
        y = xs[0]
    else:
        s = _rand_int(rng, (cfg.k, cfg.c), cfg.s_w)
        t = _rand_int(rng, (cfg.c,), cfg.t_w)
        s[:, 0], s[:, 1] = -(2 ** (cfg.s_w - 1)), 2 ** (cfg.s_w - 1) - 1  # largest products
        t[0], t[1] = 2 ** (cfg.t_w - 1) - 1, -(2 ** (cfg.t_w - 1))
        if cfg.shift:  # channel 2 = x0: exact ties with odd and even quotients, both signs
            s[:, 2], s[0, 2], t[2] = 0, 1, 0
            half = 2 ** (cfg.shift - 1)
            ties = np.array([1, 3, 5, 7, -1, -3, -5, -7]) * half
            xs[0][0, :, 2] = np.resize(ties, cfg.pixels)
            xs[0][-1, :, 2] = np.resize(ties[::-1] + 1, cfg.pixels)
        tokens += [int(v) for v in ref.fold_channels(s.T, cfg.pe).reshape(-1)]
        tokens += [int(v) for v in ref.fold_channels(t, cfg.pe).reshape(-1)]
        y = ref.residual_add(xs, s, t, cfg.shift)
    yv = y.reshape(-1, cfg.c)
    assert ref.signed_bits(int(yv.min()), int(yv.max())) <= cfg.y_w
    if cfg.mode != SUM:
        thr_max = 2 ** (cfg.tw - 1) - 2
        thr = gen.rand_thresholds(rng, yv, cfg.nout, thr_max)
        pos = gen.rand_pos(rng, cfg.c)
        tokens += [int(v) for v in ref.fold_channels(thr, cfg.pe).reshape(-1)]
        tokens += [int(v) for v in ref.fold_channels(pos, cfg.pe).reshape(-1)]
    tokens += ref.int_stream_words(xs[0], cfg.pe, cfg.in0_w)
    if cfg.k == 2:
        tokens += ref.int_stream_words(xs[1], cfg.pe, cfg.in1_w)
    res = run_spec(cfg.spec(), tokens, tmp_path)

    v = yv.shape[0]
    nwords = v * cfg.c // cfg.pe
    words = res.words
    if cfg.mode != SUM:
        got = gen.decode_bits(words[:nwords], v, cfg.c, cfg.pe, cfg.nout)
        expect = ref.int_threshold(yv, thr, pos)
        np.testing.assert_array_equal(got, expect)
        assert 0 < expect.sum() < expect.size
        words = words[nwords:]
    if cfg.mode in (SUM, BOTH):
        got = ref.int_stream_values(words, cfg.pe, cfg.ow, yv.shape)
        np.testing.assert_array_equal(got, ref.wrap_signed(yv, cfg.ow))
        if cfg.out_w:  # the wrapping case must actually wrap
            assert np.any(got != yv)
        words = []
    assert words == []
    assert res.calls == 1 and res.iters == cfg.reps * cfg.pixels * (cfg.c // cfg.pe)


def test_threshold_equality_and_direction(tb_builder, tmp_path):
    """y == T fires in both directions; pos=1 is >=, pos=0 is <= (IntThreshold)."""
    cfg = next(c for c in CASES if isinstance(c, Join) and c.mode == THRESH and c.in0_w == 16)
    c, pe = cfg.c, cfg.pe
    t0 = np.arange(c) * 1000 - 2500
    thr = np.stack([t0, t0 + 1, t0 - 1], axis=1)
    pos = np.array([1, 0] * (c // 2))
    x = np.zeros((cfg.reps, cfg.pixels, c), np.int64)
    for p, off in enumerate((-1, 0, 1, 2, -2)[:cfg.pixels]):
        x[:, p] = t0 + off
    tokens = ([cfg.reps] + [int(v) for v in ref.fold_channels(thr, pe).reshape(-1)]
              + [int(v) for v in ref.fold_channels(pos, pe).reshape(-1)] + ref.int_stream_words(x, pe, cfg.in0_w))
    res = run_spec(cfg.spec(), tokens, tmp_path)
    got = gen.decode_bits(res.words, cfg.reps * cfg.pixels, c, pe, cfg.nout)
    off = np.array((-1, 0, 1, 2, -2)[:cfg.pixels])[:, None, None]  # (P, 1, 1) vs base thresholds t0 + (0, 1, -1)
    d = off - np.array([0, 1, -1])[None, :, None]                    # y - T per (pixel, base)
    expect = np.where(pos[None, None] == 1, d >= 0, d <= 0).astype(np.uint8)
    np.testing.assert_array_equal(got.reshape(cfg.reps, cfg.pixels, cfg.nout, c), np.broadcast_to(expect, got.reshape(cfg.reps, cfg.pixels, cfg.nout, c).shape))


@dataclass(frozen=True)
class Dup:
    word_w: int
    words: int
    reps: int = 3

    def spec(self):
        return Spec.of("tb_duplicate", WORD_W=self.word_w, WORDS=self.words)

    def specs(self):
        return [self.spec()]


@pytest.mark.parametrize("cfg", [Dup(1, 7), Dup(130, 4)], ids=lambda c: f"w{c.word_w}-n{c.words}")
def test_duplicate_streams(cfg, tb_builder, tmp_path):
    rng = np.random.default_rng(cfg.word_w)
    bits = rng.integers(0, 2, size=(cfg.reps * cfg.words, cfg.word_w), dtype=np.uint8)
    hexw = ref.words_to_hex(bits)
    res = run_spec(cfg.spec(), [cfg.reps] + hexw, tmp_path)
    assert res.words == hexw + hexw
    assert res.calls == 1 and res.iters == cfg.reps * cfg.words
