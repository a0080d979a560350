"""Zero-padded binary convolutions (Brevitas ``padding=p``) compiled to HLS: XnorConvMVU with the
border correction table; C simulation bit-exact against the lowered graph, which equals the export
(dyadic scales); the synthesis view equals the fast path; the estimate counts the correction."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "compiler"))
from _zeropad_nets import abc_export_zero_padded, export_brevitas_file, zero_pad_net  # noqa: E402

from abcn_hw.backend import compile  # noqa: E402
from abcn_hw.sim import simulate, verify  # noqa: E402

HW = (10, 12)


def _check(res, n):
    assert res.images == n
    assert res.bit_exact and res.mismatches == 0, res.summary()
    assert res.contract_ok and res.lowering_exact, res.summary()
    assert res.lowered_vs_exported["output_equal"] == 1.0
    assert res.prediction_agreement == 1.0
    assert res.cycles_match, res.cycles


def _zero_padded_layers(build) -> list[str]:
    top = (build / "src" / "top.cpp").read_text()
    return [ln for ln in top.splitlines() if "abcn::XnorConvMVU<" in ln]


def test_brevitas_zero_padded_net_compiles_bit_exact(tmp_path):
    """One channel per PE (every neuron fold indexes the table), one input bit per SIMD lane; the
    synthesis view (synthesizable MVU loop, ap_int correction ROM) equals the fast path."""
    net, x = zero_pad_net(11, k=3, s=1, p=1, n_bases=2, hw=HW, n_images=48)
    path = export_brevitas_file(net, (1,) + HW, str(tmp_path / "zp.onnx"), dynamo=False)
    fold = {ident: {"PE": 1, "SIMD": 1} for ident in ("L1_c2_Conv_XnorPopc", "L2_c3_Conv_XnorPopc")}
    res = compile(path, tmp_path / "b", folding=fold)
    assert len(_zero_padded_layers(tmp_path / "b")) == 2  # both binary convs; the 8-bit layer pads 0 itself
    padded = [l for l in res.estimate.to_dict()["layers"] if "pad_corr_bits" in l]
    assert [(l["id"], l["PE"], l["SIMD"]) for l in padded] == [(i, 1, 1) for i in fold]
    assert all(l["pad_corr_bits"] > 0 for l in padded)
    _check(verify(path, tmp_path / "b", x), len(x))
    # the padded 8-bit first conv: the fast view's fused window generator + IntMVU call
    assert "abcn::SlidingWindowIntMVU_csim<" in (tmp_path / "b" / "src" / "top.cpp").read_text()
    fast = simulate(tmp_path / "b", x[:10], threads=1)
    synth = simulate(tmp_path / "b", x[:10], threads=2, variant="synth")
    assert np.array_equal(fast.output, synth.output) and np.array_equal(fast.accumulators, synth.accumulators)
    assert [(c["id"], c["counted"]) for c in fast.counts] == [(c["id"], c["counted"]) for c in synth.counts]
    assert synth.cycles_match and fast.cycles_match


@pytest.mark.slow
@pytest.mark.parametrize("kw, dynamo", [
    (dict(k=5, s=2, p=2, n_bases=3, w_bits=2), True),
    (dict(k=3, s=2, p=1, n_bases=1), True),
    (dict(k=5, s=1, p=2, n_bases=2, w_bits=2), False),
], ids=["k5s2p2-M2N3-dynamo", "k3s2p1-dynamo", "k5s1p2-M2N2-static"])
def test_brevitas_zero_padded_variants_bit_exact(kw, dynamo, tmp_path):
    net, x = zero_pad_net(12, **kw, hw=HW, n_images=48)
    path = export_brevitas_file(net, (1,) + HW, str(tmp_path / "zp.onnx"), dynamo=dynamo)
    compile(path, tmp_path / "b")
    assert len(_zero_padded_layers(tmp_path / "b")) == 2
    _check(verify(path, tmp_path / "b", x), len(x))
    fast = simulate(tmp_path / "b", x[:6], threads=1)
    synth = simulate(tmp_path / "b", x[:6], threads=1, variant="synth")
    assert np.array_equal(fast.accumulators, synth.accumulators)


@pytest.mark.slow
def test_abc_multi_base_zero_padded_convs_bit_exact(tmp_path):
    """M, N = 3, 2 and 2, 3 bases in one zero-padded conv (pad 2, stride 1 and 2; our exporter's
    idiom with the padding in the Conv): each weight base's correction, scaled per base pair."""
    import onnx

    exp, x = abc_export_zero_padded("conv")
    path = str(tmp_path / "abc_zp.onnx")
    onnx.save(exp, path)
    compile(path, tmp_path / "b")
    assert len(_zero_padded_layers(tmp_path / "b")) == 2
    _check(verify(path, tmp_path / "b", x[:64]), 64)
