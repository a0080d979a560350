"""A whole ABC basic residual block (identity shortcut) wired from the library kernels, as the
graph backend wires them: fork of the integer residual, IntThreshold, two zero-padded 3x3 binary
convs (the second with a MultiBaseAccumulate activation), the fused join with the next block's
threshold, and the global sum pool; against numpy, every output element and every kernel's count."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from abcn_hw.backend.ir import ConvGeom
from abcn_hw.backend.padding import pad_correction

from . import gen
from . import reference as ref
from .tbutil import Spec, run_spec
from .test_zeropad_conv import zero_padded_dots

A_W, B_W, S_W, T_W = 4, 3, 4, 12  # as tb_residual_block.cpp


@dataclass(frozen=True)
class Block:
    h: int
    w: int
    c: int
    pe: int
    m: int
    n: int
    n2: int
    n3: int
    r_w: int
    reps: int = 2
    variant: str = "default"

    @property
    def mw(self):
        return 9 * self.c

    @property
    def acc_w(self):
        return ref.mb_acc_bits(self.m, self.n2, self.mw, A_W, B_W)

    @property
    def out_w(self):
        return ref.residual_sum_bits(self.acc_w, self.r_w, S_W, T_W)

    def id(self):
        return (f"{self.h}x{self.w}x{self.c}-pe{self.pe}-m{self.m}-n{self.n}.{self.n2}.{self.n3}-r{self.r_w}"
                f"-{self.variant}")

    def spec(self):
        return Spec.of("tb_residual_block", self.variant, H=self.h, W=self.w, C=self.c, PE=self.pe, M=self.m,
                       N=self.n, N2=self.n2, N3=self.n3, R_W=self.r_w, OUT_W=self.out_w)

    def specs(self):
        return [self.spec()]


BLOCKS = [
    Block(5, 6, 4, 2, 2, 2, 2, 3, 10),
    pytest.param(Block(4, 4, 6, 3, 1, 3, 1, 2, 16, variant="portable"), marks=pytest.mark.slow),
]


def _conv(rng, xbits, cfg, g, tokens):
    """Random weights of a 3x3 zero-padded C -> C conv: tokens for weights + correction, dots."""
    wb = rng.integers(0, 2, size=(cfg.m, cfg.c, 3, 3, cfg.c), dtype=np.uint8)
    wflat = wb.reshape(cfg.m, cfg.c, cfg.mw)  # window order (ky, kx, c)
    pc = pad_correction(wflat, g, cfg.c)
    assert pc.table.shape[2:] == (3, 3)
    table = pc.table.reshape(cfg.m, cfg.c, -1).transpose(1, 0, 2)
    tokens += gen.weight_tokens(wflat, cfg.pe, cfg.pe) + [int(v) for v in pc.row] + [int(v) for v in pc.col]
    tokens += [int(v) for v in ref.fold_channels(table, cfg.pe).reshape(-1)]
    return zero_padded_dots(xbits, wb, g).reshape(-1, cfg.c, cfg.m, xbits.shape[3])


def _thr_tokens(thr, pos, pe):
    return [int(v) for v in ref.fold_channels(thr, pe).reshape(-1)] + [int(v) for v in ref.fold_channels(pos, pe).reshape(-1)]


@pytest.mark.parametrize("cfg", BLOCKS, ids=lambda c: (c if isinstance(c, Block) else c.values[0]).id())
def test_residual_block(cfg, tb_builder, tmp_path):
    rng = np.random.default_rng(cfg.c * 100 + cfg.h)
    b, h, w, c, pe = cfg.reps, cfg.h, cfg.w, cfg.c, cfg.pe
    v = b * h * w
    g = ConvGeom(h, w, 3, 3, 1, 1, 1, 1, 1, 1)
    r = rng.integers(-(2 ** (cfg.r_w - 1)), 2 ** (cfg.r_w - 1), size=(b, h, w, c), dtype=np.int64)
    rv = r.reshape(v, c)
    tokens = [b]
    # block input quantizer: N bases of r
    thr0 = gen.rand_thresholds(rng, rv, cfg.n, 2 ** cfg.r_w - 2)
    pos0 = gen.rand_pos(rng, c)
    tokens += _thr_tokens(thr0, pos0, pe)
    q = ref.int_threshold(rv, thr0, pos0).reshape(b, h, w, cfg.n, c)
    # conv1 + threshold (N -> N2 bases)
    dots1 = _conv(rng, q, cfg, g, tokens)
    a1, b1 = gen.rand_coeffs(rng, (c, cfg.m), A_W), gen.rand_coeffs(rng, (cfg.n,), B_W)
    acc1 = ref.mb_accumulate(dots1, a1, b1)
    thr1 = gen.rand_thresholds(rng, acc1, cfg.n2, ref.mb_acc_max(cfg.m, cfg.n, cfg.mw, A_W, B_W))
    pos1 = gen.rand_pos(rng, c)
    tokens += gen.threshold_tokens(a1, b1, thr1, pos1, pe)
    h1 = ref.mb_threshold(acc1, thr1, pos1).reshape(b, h, w, cfg.n2, c)
    # conv2: integer accumulator
    dots2 = _conv(rng, h1, cfg, g, tokens)
    a2, b2 = gen.rand_coeffs(rng, (c, cfg.m), A_W), gen.rand_coeffs(rng, (cfg.n2,), B_W)
    acc2 = ref.mb_accumulate(dots2, a2, b2)
    tokens += gen.coeff_tokens(a2, b2, pe)
    # join: y = s0*acc2 + s1*r + t, the next block's N3 bases and the sum
    s = gen.rand_coeffs(rng, (2, c), S_W)
    t = gen.rand_coeffs(rng, (c,), T_W)
    tokens += [int(x) for x in ref.fold_channels(s.T, pe).reshape(-1)] + [int(x) for x in ref.fold_channels(t, pe).reshape(-1)]
    y = ref.residual_add([acc2, rv], s, t)
    thr3 = gen.rand_thresholds(rng, y, cfg.n3, 2 ** (cfg.out_w + 1) - 2)
    pos3 = gen.rand_pos(rng, c)
    tokens += _thr_tokens(thr3, pos3, pe)
    tokens += ref.int_stream_words(r, pe, cfg.r_w)
    res = run_spec(cfg.spec(), tokens, tmp_path)

    nwords = v * c // pe
    words = res.words
    np.testing.assert_array_equal(gen.decode_bits(words[:nwords], v, c, pe, cfg.n3), ref.int_threshold(y, thr3, pos3))
    np.testing.assert_array_equal(ref.int_stream_values(words[nwords:2 * nwords], pe, cfg.out_w, y.shape), y)
    gsp_w = ref.global_sum_pool_bits(cfg.out_w, h * w)
    pooled = ref.int_stream_values(words[2 * nwords:], pe, gsp_w, (b, c))
    np.testing.assert_array_equal(pooled, ref.global_sum_pool(y.reshape(b, h * w, c)))
    assert 0 < q.sum() < q.size and 0 < h1.sum() < h1.size  # both bit values flow through
    assert np.any(y != 0) and ref.signed_bits(int(y.min()), int(y.max())) > cfg.r_w  # the join widens r
    per_image = b * h * w * (c // pe)
    swg = ref.sliding_window_iters(h, w, c // pe, 3, 1, 1, b)
    mvu = ref.mvu_iters(cfg.mw, c, pe, pe, v)
    expect = dict(dup=per_image, thr0=per_image, swg1=swg, mvu1=mvu, swg2=swg, mvu2=mvu, join=per_image,
                  dup2=per_image, pool=per_image)
    assert res.counts == {k: (n, 1) for k, n in expect.items()}
