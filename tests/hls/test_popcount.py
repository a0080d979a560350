"""abcn::popcount<W> and popcount_xnor<W>: the synthesizable LUT6 compressor tree (synthesis view)
and the C-simulation fast path against Python's count of 1 bits, on edge words and random words of widths around the
6-bit groups, the 60- and 64-bit chunks, and those of real layers."""
from __future__ import annotations

import numpy as np
import pytest

from .tbutil import Spec, run_spec

# the widths tb_popcount.cpp instantiates, in its order
WIDTHS = [1, 2, 5, 6, 7, 12, 16, 59, 60, 61, 63, 64, 65, 119, 120, 121, 128, 130, 196, 400, 1024]


def words(width: int, rng) -> list[int]:
    full = (1 << width) - 1
    ws = [0, full, 1, 1 << (width - 1)]
    # one bit on each side of every 6-bit group and 60/64-bit chunk boundary, and all ones but it
    for b in sorted({b for k in (6, 60, 64) for m in range(k, width + 1, k) for b in (m - 1, m) if b < width}):
        ws += [1 << b, full ^ (1 << b)]
    # every 6-bit group equal to v, for each of the 64 values (every entry of the group table in
    # every group position), and alternating bits
    for v in range(64):
        ws.append(sum(v << (6 * g) for g in range((width + 5) // 6)) & full)
    ws += [int("01" * width, 2) & full, int("10" * width, 2) & full]
    # random words of random density
    for p in (0.1, 0.5, 0.9):
        for _ in range(40):
            bits = rng.random(width) < p
            ws.append(sum(1 << i for i in np.flatnonzero(bits).tolist()))
    return ws


class Case:
    def __init__(self, variant: str):
        self.variant = variant

    def specs(self):
        return [Spec.of("tb_popcount", self.variant)]


@pytest.mark.parametrize("case", [Case("default"), Case("portable")], ids=["fast", "synthesizable"])
def test_popcount_every_width(case, tmp_path):
    rng = np.random.default_rng(12)
    tokens, expect = [], []
    for w in WIDTHS:
        ws = words(w, rng)
        tokens += [len(ws)] + [format(v, "x") for v in ws]
        for prev, v in zip([0] + ws, ws):  # popcount(x_i), then popcount(XNOR(x_i, x_(i-1))) on w bits
            expect += [bin(v).count("1"), w - bin(v ^ prev).count("1")]
    res = run_spec(case.specs()[0], tokens, tmp_path)
    assert [int(t) for t in res.words] == expect
    assert (res.iters, res.calls) == (len(expect) // 2, len(WIDTHS))
