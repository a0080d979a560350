"""The testbench harness itself: exact build flags, strict warnings, and that malformed inputs or
bad configurations are rejected loudly (nothing is accepted or dropped silently)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from . import reference as ref
from .tbutil import Spec, builder, run_raw, run_spec

# one representative configuration per testbench
REPRESENTATIVE = {
    "tb_sliding_window": dict(IFM_H=5, IFM_W=4, CF=2, WORD_W=6, K=3, S=2, P=1),
    "tb_xnor_mvu": dict(MW=18, MH=8, SIMD=6, PE=4, M=2, N=3, ACT=1, NOUT=2, A_W=4, B_W=3),
    "tb_input_layer": dict(MW=27, MH=8, SIMD=3, PE=2, M=3, IN_BITS=8, IN_SIGNED=1, ACT=2, NOUT=1, A_W=4, B_W=2),
    "tb_int_conv": dict(IFM_H=6, IFM_W=5, C=2, SIMD=1, IN_BITS=8, IN_SIGNED=1, KH=3, KW=2, SH=2, SW=1, PT=1, PL=0,
                        PB=1, PR=1, MH=4, PE=2, M=2, ACT=1, NOUT=2),
    "tb_threshold": dict(MH=6, PE=3, M=2, N=2, DW=7, DOT_MAX=50, NOUT=3, A_W=4, B_W=3, ACT=1),
    "tb_maxpool": dict(IFM_H=5, IFM_W=7, CF=2, WORD_W=6, POOL=2),
    "tb_width_converter": dict(N=2, IN_W=3, OUT_W=2, NUM_IN_WORDS=8),
    "tb_network": dict(H0=6, W0=6, C0=3, K0=3, S0=1, P0=1, SIMD0=3, PE0=2, M0=2, C1=4, N1=2, POOL=2,
                       SIMD1=2, K1=3, S1=1, P1=1, PE1=2, M1=2, C2=4, N2=2, SIMD2=4, PE2=2, M2=2, CLASSES=4),
    "tb_zeropad_conv": dict(H=5, W=7, C=4, N=2, SIMD=2, KH=3, KW=3, SH=1, SW=1, PT=1, PL=1, PB=1, PR=1, MH=6, PE=3,
                            M=2, RC=3, CC=3, CW=7, ACT=1, NOUT=2),
    "tb_residual": dict(C=6, PE=3, PIXELS=5, K=2, MODE=2, IN0_W=9, IN1_W=7, OUT_W=12, S_W=4, T_W=10, NOUT=2,
                        THR_W=14),
    "tb_duplicate": dict(WORD_W=13, WORDS=5),
    "tb_residual_block": dict(H=5, W=6, C=4, PE=2, M=2, N=2, N2=2, N3=3, R_W=10, OUT_W=20),
    "tb_int_pool": dict(OP=1, H=7, W=6, C=6, PE=2, IN_W=8, KH=3, KW=3, SH=2, SW=2, PT=1, PL=1, PB=1, PR=1),
    "tb_popcount": dict(),
}


# extra builds for the strict check: the other code paths of tb_sliding_window
STRICT_EXTRA = {
    "tb_sliding_window-rect-maxpool": ("tb_sliding_window", dict(
        IFM_H=6, IFM_W=5, CF=2, WORD_W=4, KH=3, KW=2, SH=2, SW=1, PT=1, PL=0, PB=1, PR=1, MAXPOOL=1)),
    "tb_sliding_window-rect": ("tb_sliding_window", dict(
        IFM_H=6, IFM_W=5, CF=2, WORD_W=4, KH=3, KW=2, SH=2, SW=1, PT=1, PL=0, PB=1, PR=1)),
    "tb_residual-k1-threshold": ("tb_residual", dict(
        C=6, PE=3, PIXELS=5, K=1, MODE=3, IN0_W=9, IN1_W=1, OUT_W=1, S_W=1, T_W=1, NOUT=2, THR_W=64)),
    "tb_residual-k1-sum": ("tb_residual", dict(
        C=6, PE=3, PIXELS=5, K=1, MODE=0, IN0_W=9, IN1_W=1, OUT_W=12, S_W=4, T_W=10, NOUT=1, THR_W=1)),
    "tb_int_pool-sum": ("tb_int_pool", dict(OP=0, C=6, PE=2, PIXELS=9, IN_W=8, OUT_W=12)),
    "tb_zeropad_conv-acc": ("tb_zeropad_conv", dict(
        H=5, W=7, C=4, N=2, SIMD=2, KH=3, KW=3, SH=1, SW=1, PT=1, PL=1, PB=1, PR=1, MH=6, PE=3, M=2, RC=3, CC=3,
        CW=7, ACT=2)),
}


@dataclass(frozen=True)
class BuildCase:
    name: str
    variant: str
    pch: bool

    def spec(self):
        tb, cfg = STRICT_EXTRA.get(self.name, (self.name, REPRESENTATIVE.get(self.name)))
        return Spec.of(tb, self.variant, self.pch, **cfg)

    def specs(self):
        return [self.spec()]


EXACT = [BuildCase(tb, "default", False) for tb in REPRESENTATIVE]
STRICT = [BuildCase(tb, "strict", False) for tb in [*REPRESENTATIVE, *STRICT_EXTRA]]


@pytest.mark.slow
@pytest.mark.parametrize("case", EXACT, ids=lambda c: c.name)
def test_builds_with_exact_flags(case, tb_builder):
    """g++ -std=c++14 -O2 -Wall -Werror -I hls/include -I <ap_types>, no precompiled header."""
    assert builder().get(case.spec()).is_file()


@pytest.mark.slow
@pytest.mark.parametrize("case", STRICT, ids=lambda c: c.name)
def test_library_is_warning_clean(case, tb_builder):
    """The library headers as user code: -Wall -Wextra -Werror (ap_types via -isystem)."""
    builder().get(case.spec())  # raises BuildError on any warning


SWG = Spec.of("tb_sliding_window", **REPRESENTATIVE["tb_sliding_window"])


class _SWG:
    @staticmethod
    def specs():
        return [SWG, Spec.of("tb_threshold", **REPRESENTATIVE["tb_threshold"])]


def _swg_tokens(reps=1):
    c = REPRESENTATIVE["tb_sliding_window"]
    rng = np.random.default_rng(0)
    words = rng.integers(0, 2, size=(reps, c["IFM_H"], c["IFM_W"], c["CF"], c["WORD_W"]), dtype=np.uint8)
    return [reps] + ref.words_to_hex(words)


@pytest.mark.parametrize("_", [_SWG()], ids=[""])
@pytest.mark.parametrize("mutate,message", [
    (lambda t: t[:-1], "input ended"),                       # one stream word missing
    (lambda t: t + ["0"], "leftover input token"),           # one word too many
    (lambda t: t[:1] + ["7f"] + t[2:], "wider than the stream"),  # 7 bits into a 6-bit word
    (lambda t: t[:1] + ["g"] + t[2:], "bad hex digit"),
    (lambda t: ["x"] + t[1:], "bad integer"),
], ids=["missing", "extra", "too-wide", "bad-hex", "bad-int"])
def test_malformed_input_is_rejected(_, mutate, message, tb_builder, tmp_path):
    proc = run_raw(builder().get(SWG), mutate(_swg_tokens()), tmp_path)
    assert proc.returncode != 0
    assert message in proc.stderr


@pytest.mark.parametrize("_", [_SWG()], ids=[""])
def test_zero_reps(_, tb_builder, tmp_path):
    res = run_spec(SWG, [0], tmp_path)
    assert res.words == [] and res.iters == 0 and res.calls == 1


@pytest.mark.parametrize("_", [_SWG()], ids=[""])
@pytest.mark.parametrize("which", ["threshold-range", "pos"])
def test_bad_parameters_are_rejected(_, which, tb_builder, tmp_path):
    c = REPRESENTATIVE["tb_threshold"]
    nf = c["MH"] // c["PE"]
    acc_w = ref.mb_acc_bits(c["M"], c["N"], c["DOT_MAX"], c["A_W"], c["B_W"])
    a = [0] * (c["PE"] * nf * c["M"])
    b = [1] * c["N"]
    thr = [0] * (c["PE"] * nf * c["NOUT"])
    pos = [1] * (c["PE"] * nf)
    if which == "threshold-range":
        thr[3] = 2 ** (acc_w - 1)  # does not fit ap_int<ACC_W>
    else:
        pos[0] = 2
    tokens = [0] + a + b + thr + pos
    proc = run_raw(builder().get(Spec.of("tb_threshold", **c)), tokens, tmp_path)
    assert proc.returncode != 0 and "TB-FAIL" in proc.stderr


@pytest.mark.parametrize("tb,override,message", [
    ("tb_xnor_mvu", dict(SIMD=5), "SIMD must divide MW"),
    ("tb_sliding_window", dict(P=3), "padding must be smaller than the kernel"),
    ("tb_int_pool", dict(PR=3), "padding must be smaller than the kernel"),
    ("tb_residual", dict(PE=4), "PE must divide the channel count"),
])
def test_bad_configuration_fails_to_compile(tb, override, message, tb_builder):
    cfg = dict(REPRESENTATIVE[tb], **override)
    assert message in builder().compile_error(Spec.of(tb, **cfg))
    assert builder().compile_error(Spec.of(tb, **REPRESENTATIVE[tb])) == ""


@pytest.mark.parametrize("ci,outcome", [(None, pytest.skip.Exception), ("", pytest.skip.Exception),
                                        ("false", pytest.skip.Exception), ("true", pytest.fail.Exception),
                                        ("1", pytest.fail.Exception)])
def test_missing_dependency_skips_locally_and_fails_in_ci(monkeypatch, ci, outcome):
    from .conftest import skip_unless_ci

    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="g\\+\\+ not found"):
        skip_unless_ci("g++ not found")
