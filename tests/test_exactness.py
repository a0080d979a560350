"""The 2^24 rule (abcn_hw.exactness) and its per-layer verdicts on models (abcn_hw.models.exactness).

The rule is checked against the arithmetic it describes: float32 dot products accumulated in many
different orders are all equal when the bound holds, and differ for operands that break it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from abcn_hw.exactness import EXACT_LIMIT, dyadic, product_exactness, worst_case_exactness
from abcn_hw.models import build_model, build_stock_binary_model
from abcn_hw.models.exactness import decided_failures, export_exactness, planned_exactness


def _orders(terms: np.ndarray, n: int = 40, seed: int = 0) -> set[float]:
    """The float32 sums of ``terms`` accumulated sequentially in ``n`` random orders."""
    rng = np.random.default_rng(seed)
    sums = set()
    for _ in range(n):
        acc = np.float32(0)
        for t in terms[rng.permutation(len(terms))]:
            acc = np.float32(acc + t)
        sums.add(float(acc))
    return sums


def _binary_terms(alpha, beta, k, seed=1) -> np.ndarray:
    """The K products A[k] * W[k] of one output channel, A = sum_n +-beta_n, W = sum_m +-alpha_m."""
    rng = np.random.default_rng(seed)
    a = (rng.choice([-1, 1], (k, len(beta))) * np.asarray(beta, np.float32)).sum(1, dtype=np.float32)
    w = (rng.choice([-1, 1], (k, len(alpha))) * np.asarray(alpha, np.float32)).sum(1, dtype=np.float32)
    return (a * w).astype(np.float32)


def test_dyadic_decomposition():
    k, e = dyadic(np.array([[0.75, 0.5], [0.125, -3.0]], np.float32), axis=0)
    assert k.tolist() == [[6, 1], [1, -6]] and e.tolist() == [-3, -1]
    k, e = dyadic(np.float32(0.1))  # 0.1f = 13421773 * 2**-27: dyadic, but far from small
    assert int(k) == 13421773 and int(e) == -27


def test_bound_is_the_arithmetic_and_the_limit_is_sharp():
    alpha = np.array([[0.75], [0.25]], np.float32)  # a = 3, 1 (2**-2): sum |a| = 4
    beta = np.array([0.5, 0.25, 0.125], np.float32)  # b = 4, 2, 1 (2**-3): sum |b| = 7
    v = product_exactness("l", 100, alpha, beta)
    assert v.exact and v.bound == 100 * 7 * 4
    k_at = EXACT_LIMIT // 28  # K * 28 just below / at 2**24
    assert product_exactness("l", k_at, alpha, beta).exact
    assert not product_exactness("l", k_at + 1, alpha, beta).exact
    # integer input: K * max|x| * sum|a|
    v = product_exactness("first", 25, alpha, None, input_scale=2.0 ** -8, input_max=255)
    assert v.exact and v.bound == 25 * 255 * 4
    assert not product_exactness("first", 25, alpha, None, input_scale=0.1, input_max=255).exact


def test_exact_layers_sum_equally_in_every_order():
    alpha, beta = np.array([0.75, 0.25], np.float32), np.array([0.5, 0.25, 0.125], np.float32)
    assert product_exactness("l", 2000, alpha[:, None], beta).exact
    assert len(_orders(_binary_terms(alpha, beta, 2000))) == 1


def test_non_dyadic_or_large_layers_depend_on_the_order():
    # Brevitas' constant binary scale 0.1 (the stock baseline): not provable, and order matters
    alpha, beta = np.array([0.1], np.float32), np.array([1.0], np.float32)
    assert not product_exactness("l", 2000, alpha[:, None], beta).exact
    assert len(_orders(_binary_terms(alpha, beta, 2000))) > 1
    # dyadic but too wide: 16-bit fixed-point scales, 3 x 3 bases
    alpha = np.array([65535, 40961, 32769], np.float32) * np.float32(2.0 ** -16)
    beta = np.array([65535, 50001, 12345], np.float32) * np.float32(2.0 ** -16)
    v = product_exactness("l", 2000, alpha[:, None], beta)
    assert not v.exact and v.bound > EXACT_LIMIT
    assert len(_orders(_binary_terms(alpha, beta, 2000))) > 1


@pytest.mark.parametrize("k,m,n,grid,bits,exact", [
    (2304, 3, 3, "fixed", 4, True),     # cnv's widest conv, 3 x 3 bases: 2304 * 45 * 45
    (2304, 6, 6, "fixed", 4, False),    # ... with 6 x 6 bases: 2304 * 90 * 90 >= 2**24
    (784, 1, 1, "fixed", 16, False),    # 16-bit scales
    (1024, 1, 1, "pow2", 4, True),      # one base: +-2**e, nothing to spread
])
def test_worst_case_from_the_configuration(k, m, n, grid, bits, exact):
    v = worst_case_exactness("l", k, m, n, grid, bits)
    assert v.exact is exact and v.bound is not None
    assert v.bound == k * (n * (2 ** bits - 1) if grid == "fixed" else 1) * m * (2 ** bits - 1 if grid == "fixed" else 1)


def test_worst_case_undecided_for_spread_or_float_scales():
    for grid, m in (("pow2", 2), ("float", 1)):
        v = worst_case_exactness("l", 100, m, 2, grid, 4)
        assert not v.exact and v.bound is None


# -- models --------------------------------------------------------------------------------------

def test_small_fixed_models_are_provably_exact():
    for name in ("lenet", "tfc"):
        r = export_exactness(build_model(name, 3, 3).eval())
        assert r.exact and r.first_failure is None, r.summary()
        assert len(r.layers) == 4


def test_failing_layer_is_named():
    r = export_exactness(build_model("tfc", 2, 2, scale_bits=16).eval())
    assert not r.exact and r.first_failure.layer == "classifier.0", r.summary()
    assert r.to_json()["first_failing_layer"] == "classifier.0" and "2^24" in r.to_json()["reason"]
    # pow2 with spread exponents: alpha = +-1 and +-2**-20 in one channel
    model = build_model("tfc", 2, 1, scale_grid="pow2").eval()
    layer = model.classifier[2]
    shifted, alpha = layer.weight_constants()
    alpha[1] = alpha[0] * 2.0 ** -20
    r = export_exactness(model)
    assert r.first_failure is not None and r.first_failure.layer == "classifier.2", r.summary()


def test_float_reference_resnet_and_stock_are_not_provable():
    r = export_exactness(build_model("lenet", "float", "float").eval())
    assert [v.reason for v in r.layers] == ["float weights"] * 4
    r = export_exactness(build_model("resnet8", "float", "float").eval())
    assert r.layers and not any(v.exact for v in r.layers)
    # the ABC resnet8: fixed-point joins and the integer sum pool have verdicts of their own
    r = export_exactness(build_model("resnet8", 1, 1).eval())
    joins = [v for v in r.layers if v.layer in ("stem.1", "stages.0", "stages.1", "stages.2", "pool")]
    assert len(joins) == 5 and all(v.exact for v in joins), r.summary()
    stock = build_stock_binary_model().eval()
    r = export_exactness(stock)
    assert [v.layer for v in r.layers] == ["features.1", "features.5", "classifier.0", "classifier.3"]
    assert not any(v.exact for v in r.layers)  # scale 0.1 = 13421773 * 2**-27
    assert [v.layer for v in decided_failures(planned_exactness(stock))] == [v.layer for v in r.layers]


def test_planned_verdicts():
    assert decided_failures(planned_exactness(build_model("cnv", 3, 3))) == []
    bad = decided_failures(planned_exactness(build_model("cnv", 6, 6)))
    assert [v.layer for v in bad] == ["features.12"], [v.layer for v in bad]  # the 256 -> 256 3x3 conv
    assert decided_failures(planned_exactness(build_model("lenet", 2, 3, scale_grid="pow2"))) == []
    assert len(decided_failures(planned_exactness(build_model("tfc", 1, 1, scale_bits=16)))) == 4

