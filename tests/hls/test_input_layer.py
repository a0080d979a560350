"""IntMVU (integer first layer: pixels x binary weight bases, add/subtract only)."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest

from . import gen
from . import reference as ref
from .tbutil import Spec, run_spec


@dataclass(frozen=True)
class IMVU:
    mw: int
    mh: int
    simd: int
    pe: int
    m: int
    in_bits: int
    signed: int
    act: int  # 0 dots, 1 threshold (N=1), 2 logits
    nout: int = 1
    vectors: int = 6
    a_w: int = 4
    b_w: int = 2
    variant: str = "default"  # "portable": -DABCN_SIM_SYNTH_PATH (the synthesizable code, no fast path)

    def spec(self):
        return Spec.of("tb_input_layer", self.variant, MW=self.mw, MH=self.mh, SIMD=self.simd, PE=self.pe,
                       M=self.m, IN_BITS=self.in_bits, IN_SIGNED=self.signed, ACT=self.act, NOUT=self.nout,
                       A_W=self.a_w, B_W=self.b_w)

    def specs(self):
        return [self.spec()]


CASES = [
    IMVU(27, 8, 3, 2, 3, 8, 0, 0),
    IMVU(27, 8, 9, 4, 2, 8, 1, 0),          # int8
    IMVU(75, 6, 25, 3, 1, 8, 0, 0),         # 5x5x3 window
    IMVU(9, 4, 1, 1, 2, 8, 0, 1, nout=2),
    IMVU(27, 6, 27, 6, 3, 8, 0, 1, nout=3),
    IMVU(48, 10, 16, 5, 2, 8, 1, 1, nout=2, a_w=7),
    IMVU(12, 4, 4, 2, 3, 4, 1, 1, nout=1),  # 4-bit signed pixels
    IMVU(27, 10, 9, 5, 2, 8, 0, 2, a_w=6),
    IMVU(16, 4, 8, 1, 3, 8, 1, 2),
    # input words wider than 64 bits with pixels straddling 64-bit chunks; 32-bit pixels (64-bit dots)
    IMVU(30, 4, 10, 2, 2, 7, 1, 0),
    IMVU(30, 6, 10, 3, 3, 7, 0, 1, nout=2),
    IMVU(8, 4, 4, 2, 2, 32, 0, 0),
    IMVU(8, 4, 4, 2, 2, 32, 1, 0),
]
# The default build uses IntMVU's C-simulation fast path; the same cases through the synthesizable
# code path (ABCN_SIM_SYNTH_PATH) must give the same outputs and iteration counts.
# Cases 1 and 9 (int8; chunk-straddling 7-bit pixels) always, the others with the slow tests.
CASES += [replace(CASES[i], variant="portable") for i in (1, 9)]
CASES += [pytest.param(replace(CASES[i], variant="portable"), marks=pytest.mark.slow) for i in (0, 6, 12)]


def _id(c):
    return (("portable-" if c.variant == "portable" else "")
            + f"mw{c.mw}-mh{c.mh}-simd{c.simd}-pe{c.pe}-m{c.m}-{'s' if c.signed else 'u'}{c.in_bits}"
            f"-act{c.act}-nout{c.nout}")


@pytest.mark.parametrize("cfg", CASES, ids=_id)
def test_input_layer(cfg, tb_builder, tmp_path):
    rng = np.random.default_rng(5)
    lo, hi = (-(2 ** (cfg.in_bits - 1)), 2 ** (cfg.in_bits - 1)) if cfg.signed else (0, 2 ** cfg.in_bits)
    x = rng.integers(lo, hi, size=(cfg.vectors, cfg.mw))
    x[0] = hi - 1                  # extremes: all max / all min
    x[1] = lo
    wb = rng.integers(0, 2, size=(cfg.m, cfg.mh, cfg.mw), dtype=np.uint8)
    wb[:, 0] = 1                   # channel 0: all +1 -> dot = sum(x)
    dots = ref.int_dots(x, wb)     # (V, MH, M, 1)
    assert dots[0, 0, 0, 0] == cfg.mw * (hi - 1)
    a = gen.rand_coeffs(rng, (cfg.mh, cfg.m), cfg.a_w)
    b = np.array([1])
    acc = ref.mb_accumulate(dots, a, b)
    dot_max = cfg.mw * ref.int_pixel_max(cfg.in_bits, bool(cfg.signed))
    acc_max = ref.mb_acc_max(cfg.m, 1, dot_max, cfg.a_w, cfg.b_w)
    tokens = [cfg.vectors] + gen.weight_tokens(wb, cfg.pe, cfg.simd)
    if cfg.act == 1:
        thr = gen.rand_thresholds(rng, acc, cfg.nout, acc_max)
        pos = gen.rand_pos(rng, cfg.mh)
        tokens += gen.threshold_tokens(a, b, thr, pos, cfg.pe)
    elif cfg.act == 2:
        tokens += gen.coeff_tokens(a, b, cfg.pe)
    tokens += ref.words_to_hex(ref.int_pixels_to_words(x, cfg.simd, cfg.in_bits))
    res = run_spec(cfg.spec(), tokens, tmp_path)
    if cfg.act == 0:
        dw = ref.int_dot_bits(cfg.mw, cfg.in_bits, bool(cfg.signed))
        got = gen.decode_dots(res.words, cfg.vectors, cfg.mh, cfg.pe, cfg.m, 1, dw)
        np.testing.assert_array_equal(got, dots)
    elif cfg.act == 1:
        got = gen.decode_bits(res.words, cfg.vectors, cfg.mh, cfg.pe, cfg.nout)
        np.testing.assert_array_equal(got, ref.mb_threshold(acc, thr, pos))
    else:
        acc_w = ref.mb_acc_bits(cfg.m, 1, dot_max, cfg.a_w, cfg.b_w)
        np.testing.assert_array_equal(gen.decode_acc(res.words, cfg.vectors, cfg.mh, cfg.pe, acc_w), acc)
    assert res.calls == 1
    assert res.iters == ref.mvu_iters(cfg.mw, cfg.mh, cfg.simd, cfg.pe, cfg.vectors)
