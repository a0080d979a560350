"""Export -> lower -> compile -> csim equals onnxruntime (the lowered graph) on every element, and
the cycle estimate equals the csim's loop counts."""
from __future__ import annotations

import numpy as np
import pytest
from _native import assert_native_host_exact
from hypothesis import HealthCheck, given, settings, strategies as st

from abcn_hw.backend import compile
from abcn_hw.sim import csim, simulate, verify


def _check(res, n):
    assert res.images == n
    assert res.bit_exact, res.summary()
    assert res.mismatches == 0
    assert res.contract_ok and res.lowering_exact, res.summary()
    assert res.prediction_agreement == 1.0
    assert res.cycles_match, res.cycles
    d = res.to_dict()
    assert {"bit_exact", "mismatches", "prediction_agreement", "images"} <= set(d)


def test_tfc_1w1a_bit_exact(tfc):
    path, x, build = tfc
    res = verify(path, build, x[:1000])
    _check(res, 1000)
    y = csim(build, x[:7])
    assert y.dtype == np.float32 and y.shape == (7, 10)
    # verify's single-run reference agrees with the compiler's own compare()
    import onnx

    from abcn_hw.compiler import compare

    cmp = compare(onnx.load(path), onnx.load(str(build / "host" / "lowered.onnx")), x[:1000])
    assert cmp.output_equal == res.lowered_vs_exported["output_equal"] == 1.0
    assert cmp.layer_equal_bits == res.lowered_vs_exported["layer_equal_bits"]


def test_result_independent_of_threads_and_simulation_variant(tfc, tmp_path):
    """The batch split over threads and the synthesis view (the synthesizable loop code and ap_uint
    ROM words, as Vitis HLS compiles them) give the same outputs and loop counts as the default
    single-thread fast path; SIMD > 64 exercises the wide (multi-chunk) weight words."""
    path, x, _ = tfc
    res = compile(path, tmp_path / "b", folding={"L0_MatMul_0_XnorPop": {"PE": 4, "SIMD": 196},
                                                 "L1_MatMul_1_XnorPop": {"PE": 2, "SIMD": 64}})
    assert res.folding["L0_MatMul_0_XnorPop"]["SIMD"] == 196
    params = (tmp_path / "b" / "src" / "params_L0_MatMul_0_XnorPop.hpp").read_text()
    assert "ABCN_ROM_WIDE(ap_uint<196>(" in params
    xs = x[:37]
    ref = simulate(tmp_path / "b", xs, threads=1)
    for kwargs in ({"threads": 3}, {"threads": 2, "variant": "synth"}):
        r = simulate(tmp_path / "b", xs, **kwargs)
        assert np.array_equal(r.output, ref.output) and np.array_equal(r.accumulators, ref.accumulators), kwargs
        per_image = [(c["id"], c["estimated"], c["counted"]) for c in r.counts]
        assert per_image == [(c["id"], c["estimated"], c["counted"]) for c in ref.counts], kwargs
        assert r.cycles_match, kwargs
        assert r.threads == kwargs["threads"] and r.sim_seconds > 0
    with pytest.raises(Exception, match="variant"):
        simulate(tmp_path / "b", xs, variant="vitis")
    with pytest.raises(Exception, match="threads"):
        simulate(tmp_path / "b", xs, threads=0)


def test_simulation_keeps_its_design_process(tfc, monkeypatch):
    """simulate() loads the compiled design as a shared library in one child process that serves
    every later batch: no process, no compiler run per call (the per-layer dump still uses the
    driver executable)."""
    import subprocess

    path, x, build = tfc
    simulate(build, x[:4])  # built (and loaded) already
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("spawned a process"))
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail("spawned a process"))
    r = simulate(build, x[:9], threads=2)
    assert r.output.shape == (9, 10) and r.cycles_match
    assert sorted(p.name for p in (build / ".csim").rglob("libabcn_csim.so"))


def test_verify_reuses_a_given_csim_result(tfc, monkeypatch):
    """The flow hands its csim stage's result to verify, which then does not simulate again."""
    import sys

    from abcn_hw.errors import UsageError

    verify_mod = sys.modules["abcn_hw.sim.verify"]  # the module (abcn_hw.sim.verify is the function)

    path, x, build = tfc
    r = simulate(build, x[:50])
    monkeypatch.setattr(verify_mod, "simulate", lambda *a, **k: pytest.fail("simulated again"))
    _check(verify(path, build, x[:50], csim_result=r), 50)
    with pytest.raises(UsageError, match="50 images"):
        verify(path, build, x[:40], csim_result=r)


def test_lenet33_bit_exact(lenet33):
    path, x, build = lenet33
    _check(verify(path, build, x[:300]), 300)


@st.composite
def configs(draw):
    """One binary conv layer of random shape between an integer-input conv and the FC logits,
    plus a random valid folding."""
    c1 = draw(st.integers(1, 4))
    k1 = draw(st.sampled_from([1, 3]))
    p1 = draw(st.integers(0, k1 // 2))
    c2 = draw(st.integers(1, 6))
    k = draw(st.integers(1, 4))
    s = draw(st.integers(1, 2))
    p = draw(st.integers(0, k - 1))
    pool = draw(st.booleans())
    size = 10 + 2 * p1 - k1 + 1
    size = size // 2 if pool else size
    if size + 2 * p < k:
        k, p = 1, 0
    spec = dict(convs=[(c1, k1, 1, p1), (c2, k, s, p)], m=[draw(st.integers(1, 3)) for _ in range(3)],
                n=[None, draw(st.integers(1, 3)), draw(st.integers(1, 3))], hw=10, pool=0 if pool else None,
                classes=draw(st.integers(2, 5)))
    return spec, draw(st.integers(0, 1000)), draw(st.integers(0, 1000))


def _random_folding(res, seed):
    from abcn_hw.backend import limits
    from abcn_hw.backend.folding import divisors, word_bits

    rng = np.random.default_rng(seed)
    fold = {}
    for layer in res.network.matrix_layers:
        ok = [(pe, simd) for pe in divisors(layer.mh) for simd in divisors(layer.simd_len)
              if word_bits(layer, pe, simd) <= limits.MAX_WORD_BITS]
        pe, simd = ok[int(rng.integers(len(ok)))]
        fold[layer.ident] = {"PE": int(pe), "SIMD": int(simd)}
    return fold


def _random_layer(tmp_path, case):
    from _models import abc_net

    spec, seed, fseed = case
    path, x = abc_net(spec, str(tmp_path / "m.onnx"), seed)
    res = compile(path, tmp_path / "b0")
    fold = _random_folding(res, fseed)
    compile(path, tmp_path / "b", folding=fold)
    r = verify(path, tmp_path / "b", x[:64])
    _check(r, 64)
    assert_native_host_exact(tmp_path / "b", x, seed=seed)


@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(configs())
def test_random_layers_bit_exact(tmp_path_factory, case):
    _random_layer(tmp_path_factory.mktemp("rnd"), case)


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(configs())
def test_random_layers_bit_exact_many(tmp_path_factory, case):
    _random_layer(tmp_path_factory.mktemp("rnd"), case)


def test_padded_strided_conv_and_rect_pool(tmp_path):
    """Asymmetric geometry through the generic window generator; an overlapping pool would need the
    rect pool (covered when the lowering emits one)."""
    from _models import abc_net

    spec = dict(convs=[(3, 3, 1, 1), (5, 3, 2, 2)], m=[2, 2, 1], n=[None, 2, 2], hw=11, pool=None, classes=3)
    path, x = abc_net(spec, str(tmp_path / "m.onnx"), 3)
    compile(path, tmp_path / "b", folding={"L0_Conv_0_IntegerIn": {"PE": 1, "SIMD": 1}})
    _check(verify(path, tmp_path / "b", x[:50]), 50)


def test_target_fps_folding_meets_rate_and_counts_match(tfc, tmp_path):
    path, x, _ = tfc
    res = compile(path, tmp_path / "b", target_fps=200_000, clock_mhz=100)
    est = res.estimate
    assert est.target_met and est.fps >= 200_000
    assert est.ii <= 500
    # cheapest: halving any layer's PE or SIMD would miss the target or break divisibility
    for layer in res.network.matrix_layers:
        assert layer.pe * layer.simd >= 1
    r = simulate(tmp_path / "b", x[:100])
    assert r.cycles_match, r.cycles_table()


def test_cnv_1w1a_bit_exact(tmp_path):
    from _models import bnn_pynq

    path, x = bnn_pynq("cnv_1w1a", str(tmp_path / "cnv.onnx"))
    compile(path, tmp_path / "b")
    _check(verify(path, tmp_path / "b", x[:32]), 32)
    assert_native_host_exact(tmp_path / "b", x, images=16)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sfc_1w1a", "lfc_1w1a"])
def test_bnn_pynq_fc_1w1a_bit_exact(name, tmp_path):
    """The other BNN-PYNQ 1W1A exports (TFC above, CNV just before)."""
    from _models import bnn_pynq

    path, x = bnn_pynq(name, str(tmp_path / f"{name}.onnx"))
    compile(path, tmp_path / "b")
    _check(verify(path, tmp_path / "b", x[:300]), 300)
    assert_native_host_exact(tmp_path / "b", x)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tfc_1w2a", "tfc_2w2a"])
def test_bnn_pynq_multibit_inputs_native_host(name, tmp_path):
    """The 2-bit-activation BNN-PYNQ nets quantise their input with Mul/Sub/Div/Clip/Round/Cast."""
    from _models import bnn_pynq

    path, x = bnn_pynq(name, str(tmp_path / f"{name}.onnx"))
    compile(path, tmp_path / "b")
    assert_native_host_exact(tmp_path / "b", x)


@pytest.mark.slow
@pytest.mark.parametrize("name,m,n", [("tfc", 2, 2), ("sfc", 1, 3), ("lfc", 3, 1), ("cnv", 2, 2), ("lenet", 5, 5)])
def test_registry_models_bit_exact(name, m, n, tmp_path):
    """Every chain model of the registry (resnet8 is refused, see test_errors_security)."""
    from _models import zoo

    path, x = zoo(name, m, n, str(tmp_path / f"{name}.onnx"))
    compile(path, tmp_path / "b")
    _check(verify(path, tmp_path / "b", x[:64]), 64)
    assert_native_host_exact(tmp_path / "b", x, images=16 if name == "cnv" else 64)


def _fast_equals_synthesis_view(build, x):
    """The project as Vitis HLS sees it (synthesizable loops, ap_uint ROMs and streams, the ap_int
    threshold and first-layer code) gives the fast C simulation's outputs, accumulators and loop
    counts (every C-simulation fast path: XnorMVU, IntMVU, csim_act, the sliding window, the width
    converter, the popcount, the first layer's fused window generator + IntMVU)."""
    fast = simulate(build, x, threads=1)
    synth = simulate(build, x, threads=2, variant="synth")
    assert np.array_equal(fast.output, synth.output) and np.array_equal(fast.accumulators, synth.accumulators)
    # per-image iterations of every stage (the calls per stage follow the thread split: cycles_match)
    assert [(c["id"], c["counted"]) for c in fast.counts] == [(c["id"], c["counted"]) for c in synth.counts]
    assert synth.cycles_match and fast.cycles_match


@pytest.mark.slow
def test_lenet33_synthesis_view_equals_fast_csim(lenet33):
    path, x, build = lenet33
    _fast_equals_synthesis_view(build, x[:12])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tfc_1w1a", "sfc_1w1a", "lfc_1w1a", "cnv_1w1a"])
def test_bnn_pynq_synthesis_view_equals_fast_csim(name, tmp_path):
    """Every BNN-PYNQ 1W1A net at its default folding (PE = 1 streams on LFC, the integer first
    layer and the sliding windows on CNV): the fast paths against the synthesis view, a few images
    (each synthesis-view build is a minute or more of g++)."""
    from _models import bnn_pynq

    path, x = bnn_pynq(name, str(tmp_path / f"{name}.onnx"))
    compile(path, tmp_path / "b")
    _fast_equals_synthesis_view(tmp_path / "b", x[:4])


@pytest.mark.slow
def test_lenet33_bit_exact_full_test_set(lenet33):
    path, x, build = lenet33
    _check(verify(path, build, x), len(x))


def test_non_factoring_coefficients_use_backend_glue(tmp_path, monkeypatch):
    """Layers whose C[m, n, o] do not factor as a[m, o] * b[n] use abcn_backend::MultiBaseThresholdC
    (forced here for every layer)."""
    from _models import abc_net

    from abcn_hw.backend import frontend

    monkeypatch.setattr(frontend, "factor_coefficients", lambda c: None)
    spec = dict(convs=[(3, 3, 1, 0)], m=[2, 3], n=[None, 2], hw=8, pool=0, classes=4)
    path, x = abc_net(spec, str(tmp_path / "m.onnx"), 5)
    res = compile(path, tmp_path / "b")
    assert all(layer.a is None for layer in res.network.matrix_layers)
    assert "abcn_backend::MultiBaseThresholdC" in "".join(p.read_text() for p in (tmp_path / "b" / "src").glob("*.hpp"))
    _check(verify(path, tmp_path / "b", x[:64]), 64)
    assert_native_host_exact(tmp_path / "b", x)


def test_factor_coefficients():
    from abcn_hw.backend.frontend import factor_coefficients

    a = np.array([[3, -2, 0], [1, 5, 7]])
    b = np.array([2, 6, -4])
    c = a[:, None, :] * b[None, :, None]
    fa, fb = factor_coefficients(c)
    assert np.array_equal(fa[:, None, :] * fb[None, :, None], c)
    assert list(fb) == [1, 3, -2]
    c2 = c.copy()
    c2[0, 0, 0] += 1
    assert factor_coefficients(c2) is None
