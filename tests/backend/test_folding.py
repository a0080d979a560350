"""Folding choice and estimates (no C++ build needed)."""
from __future__ import annotations

import json

from abcn_hw.backend import compile
from abcn_hw.backend.folding import _layer_stage_cycles, divisors, layer_resources


def test_auto_folding_is_cheapest_per_layer(lenet33, tmp_path):
    path = lenet33[0]
    for fps in (2_000, 20_000, 200_000):
        res = compile(path, tmp_path / f"b{fps}", target_fps=fps, clock_mhz=200)
        est, net = res.estimate, res.network
        budget = 200e6 / fps
        if est.target_met:
            assert est.ii <= budget
        prev = None
        for li, layer in enumerate(net.layers):
            if not hasattr(layer, "pe"):
                continue
            mine = max(c for _, c in _layer_stage_cycles(net, li, layer.pe, layer.simd, prev))
            if mine <= budget:  # no cheaper pair meets the budget
                for pe in divisors(layer.mh):
                    for simd in divisors(layer.simd_len):
                        if pe * simd < layer.pe * layer.simd:
                            assert max(c for _, c in _layer_stage_cycles(net, li, pe, simd, prev)) > budget
            prev = layer.pe
        rep = json.loads((tmp_path / f"b{fps}" / "report.json").read_text())
        assert rep["estimate"]["target_fps"] == fps and rep["estimate"]["target_met"] == est.target_met
    # a faster target never costs less parallelism
    cost = [sum(l.pe * l.simd for l in compile(path, tmp_path / f"c{f}", target_fps=f).network.matrix_layers)
            for f in (1_000, 10_000, 100_000)]
    assert cost == sorted(cost)


def test_resource_model_grows_with_parallelism(tfc, tmp_path):
    res = compile(tfc[0], tmp_path / "b")
    layer = res.network.matrix_layers[1]
    small = layer_resources(layer)
    layer.pe *= 2
    assert layer_resources(layer)["lut"] > small["lut"]


def test_wide_words_up_to_limit_and_refused_beyond(lenet33, tmp_path, monkeypatch):
    import numpy as np
    import pytest

    from abcn_hw.backend import limits
    from abcn_hw.errors import UsageError
    from abcn_hw.sim import simulate

    path, x, build = lenet33
    res = compile(path, tmp_path / "a")
    fc = [l for l in res.network.matrix_layers if l.geom is None][0]
    assert fc.n * fc.mw > 1024  # wider than ap_int's default AP_INT_MAX_W
    fold = {fc.ident: {"PE": 1, "SIMD": fc.mw}}
    with monkeypatch.context() as m:
        m.setattr(limits, "MAX_WORD_BITS", 1024)
        with pytest.raises(UsageError, match="stream words"):
            compile(path, tmp_path / "b", folding=fold)
    compile(path, tmp_path / "c", folding=fold)
    r = simulate(tmp_path / "c", x[:20])
    assert r.cycles_match and np.array_equal(r.output, simulate(build, x[:20]).output)


def test_xnor_lane_estimate_is_the_popcount_tree():
    """The binary lane's LUTs follow abcn::popcount's structure (common.hpp), worked by hand."""
    import numpy as np

    from abcn_hw.backend.ir import MatrixLayer
    from abcn_hw.backend.kernels.mvu import popcount_luts

    # SIMD 16 = groups of 6, 6, 4 bits: 3 + 3 + 3 LUT6 for their counts (0..6, 0..6, 0..4: 3 bits each);
    # the tree adds groups 1 + 2 (3-bit operands: 3 LUTs, sum 0..10), then group 0 + that (4 LUTs)
    assert popcount_luts(16) == 16
    assert popcount_luts(12) == 9    # 3 + 3 and one 3-bit adder
    assert popcount_luts(7) == 6     # 3 + a 1-bit group (a wire) and one 3-bit adder
    assert popcount_luts(1) == 0     # one bit: a wire
    # 64 = ten 6-bit groups + one of 4: 11 * 3 LUT6 = 33; tree of 5 | 6 groups: left (2 | 3) adders
    # 3 + (3 + 4) + 5 = 15 (sum 0..30), right (3 | 3) (3 + 4) + (3 + 4) + 5 = 19 (0..34), root 6: 73
    assert popcount_luts(64) == 33 + 15 + 19 + 6
    # a final FC layer, MW 32, MH 4, M 2, N 1, PE 2, SIMD 16, ACC_W 10: per lane 16 XNOR + 16 (tree) +
    # 7 popcount bits (|dot| <= 32), 2 lanes + the combiner (2 * 10), no thresholds; WMEM = 4 words in
    # LUTRAM: c2 = M*PE*SIMD = 64; LUT = int(300 + 1.1 * 2 * (2 * 39 + 20) + 64) = 579
    layer = MatrixLayer(index=0, ident="L0", node="n", op="XnorPopcountMatMul", kind="xnor", c_in=32, mw=32,
                        mh=4, m=2, n=1, weights=np.zeros((2, 4, 32), np.uint8), a=None, b=None, geom=None,
                        final=True, acc_w=10, dot_max=32, simd=16, pe=2)
    assert layer_resources(layer) == {"lut": 579, "bram18": 0, "wmem": 4, "tmem": 2}
