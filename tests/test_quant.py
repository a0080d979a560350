"""Quantizer math: weight bases, least-squares alpha vs numpy, H_v at exact thresholds, STEs, grids."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from abcn_hw.errors import UsageError
from abcn_hw.nn import ABCActQuant, ABCBatchNorm, ABCConv2d, ABCLinear, InputQuant
from abcn_hw.quant import (
    ABCWeightQuant, ActQuantConfig, WeightQuantConfig, abc_act_ste, base_shifts, bipolar, grid_integers, hv_ste,
    initial_shifts, least_squares_alpha, sign_ste, snap_to_grid,
)


def test_bipolar_maps_zero_to_plus_one():
    x = torch.tensor([-1.0, -0.0, 0.0, 1e-30, -1e-30])
    assert bipolar(x).tolist() == [-1.0, 1.0, 1.0, 1.0, -1.0]


def test_base_shifts_evenly_spread():
    assert base_shifts(1).tolist() == [0.0]
    assert torch.allclose(base_shifts(3), torch.tensor([-1.0, 0.0, 1.0]))
    assert torch.allclose(base_shifts(5), torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]))


@pytest.mark.parametrize("m", [1, 2, 3, 5])
def test_weight_bases_follow_definition(m):
    torch.manual_seed(m)
    w = torch.randn(6, 4, 3, 3)
    q = ABCWeightQuant(WeightQuantConfig(bases=m, scale_grid="float"))
    shifted, alpha = q(w)
    w2 = w.reshape(6, -1).double().numpy()
    mean = w2.mean(1, keepdims=True)
    std = w2.std(1, keepdims=True)
    for i, u in enumerate(base_shifts(m).tolist()):
        expect = np.where(w2 - mean + u * std >= 0, 1.0, -1.0)
        got = bipolar(shifted[i]).reshape(6, -1).numpy()
        # values within float32 rounding of the boundary may legitimately differ: there are none here
        assert (got == expect).all()
    assert alpha.shape == (m, 6)


@given(o=st.integers(1, 6), k=st.integers(2, 40), m=st.integers(1, 5), seed=st.integers(0, 10_000))
@settings(max_examples=40, deadline=None)
def test_least_squares_alpha_matches_numpy(o, k, m, seed):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((o, k)).astype(np.float32)
    bases = np.where(rng.standard_normal((m, o, k)) >= 0, 1.0, -1.0).astype(np.float32)
    alpha = least_squares_alpha(torch.from_numpy(w), torch.from_numpy(bases)).numpy()
    for row in range(o):
        a = bases[:, row, :].T.astype(np.float64)  # (K, M)
        ref, *_ = np.linalg.lstsq(a, w[row].astype(np.float64), rcond=None)
        # same minimiser: compare residuals (robust to rank deficiency) and the fitted values
        fit = a @ alpha[:, row].astype(np.float64)
        assert np.allclose(fit, a @ ref, atol=1e-4)


def test_least_squares_alpha_rank_deficient_is_finite():
    w = torch.randn(2, 9)
    b = torch.ones(3, 2, 9)  # three identical bases
    alpha = least_squares_alpha(w, b)
    assert torch.isfinite(alpha).all()
    assert torch.allclose(alpha.sum(0), w.mean(1), atol=1e-5)


def test_per_tensor_statistics_share_alpha():
    w = torch.randn(4, 10)
    q = ABCWeightQuant(WeightQuantConfig(bases=3, per_channel=False, scale_grid="float"))
    _, alpha = q(w)
    assert torch.allclose(alpha, alpha[:, :1].expand_as(alpha))


def test_ternary_is_two_tied_bases():
    torch.manual_seed(0)
    w = torch.randn(3, 50)
    q = ABCWeightQuant(WeightQuantConfig(bases=2, ternary=True, scale_grid="float"))
    shifted, alpha = q(w)
    wq = (bipolar(shifted) * alpha.view(2, 3, 1)).sum(0)
    for row in range(3):
        a = float(alpha[0, row]) * 2
        levels = set(wq[row].tolist())
        assert levels <= {-a, 0.0, a} and 0.0 in levels
        delta = 0.7 * w[row].abs().mean()
        assert torch.equal(wq[row] == 0, w[row].abs() < delta)
    assert torch.equal(alpha[0], alpha[1])
    with pytest.raises(UsageError):
        WeightQuantConfig(bases=3, ternary=True).validate()


def test_hv_thresholds_exact():
    # H_v(x) = +1 iff clip(x + v, 0, 1) >= 0.5, exactly at the boundary too
    act = ABCActQuant(ActQuantConfig(bases=1, scale_grid="float"))
    with torch.no_grad():
        act.params.v.fill_(0.25)
        act.params.beta.fill_(1.0)
    act.eval()
    x = torch.tensor([0.25, 0.2499999, 0.25000003, -5.0, 5.0])
    expect = torch.where(torch.clamp(x + 0.25, 0, 1) >= 0.5, 1.0, -1.0)
    assert torch.equal(act(x), expect)
    act.train()
    assert torch.equal(act(x), expect)


def test_initial_shifts_spread_thresholds():
    v = initial_shifts(3)
    assert torch.allclose(0.5 - v, torch.tensor([1 / 6, 0.5, 5 / 6]))


def test_ste_gradients():
    x = torch.tensor([-2.0, -0.3, 0.0, 0.3, 2.0], requires_grad=True)
    sign_ste(x).sum().backward()
    assert x.grad.tolist() == [1.0] * 5  # identity for weights
    t = torch.tensor([-0.6, -0.5, 0.0, 0.5, 0.6], requires_grad=True)
    hv_ste(t).sum().backward()
    assert t.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]  # derivative of clip(x + v, 0, 1)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_fused_activation_equals_per_base_sum(n):
    """The one-pass training activation gives exactly the values and gradients of
    sum_n beta_n hv_ste(x + c_n) (dyadic inputs, upstream gradients and scales: every sum exact),
    including points on the thresholds (bipolar(0) = +1) and on the window edges |x + c_n| = 0.5."""
    g = torch.Generator().manual_seed(n)
    x = torch.randint(-64, 64, (4, 3, 5, 5), generator=g).float() / 32
    c = torch.randint(-16, 16, (n,), generator=g).float() / 32
    beta = torch.randint(1, 16, (n,), generator=g).float() / 16
    up = torch.randint(-8, 8, x.shape, generator=g).float() / 8
    grads = []
    for fused in (True, False):
        xs, cs, bs = (t.clone().requires_grad_(True) for t in (x, c, beta))
        if fused:
            a = abc_act_ste(xs, cs, bs)
        else:
            a = hv_ste(xs + cs[0]) * bs[0]
            for i in range(1, n):
                a = a + hv_ste(xs + cs[i]) * bs[i]
        (a * up).sum().backward()
        grads.append((a.detach(), xs.grad, cs.grad, bs.grad))
    for got, want in zip(*grads):
        assert torch.equal(got, want)
    assert (grads[0][1] != 0).any() and (grads[0][1] == 0).any()  # some inside, some outside the window


def test_activation_shift_receives_gradient():
    act = ABCActQuant(ActQuantConfig(bases=2, scale_grid="float"))
    x = torch.rand(8, 4)
    act(x).sum().backward()
    assert act.params.v.grad is not None and act.params.v.grad.abs().sum() > 0
    assert act.params.beta.grad is not None


@pytest.mark.parametrize("grid", ["fixed", "pow2"])
def test_grid_values_are_exact_integers_times_powers_of_two(grid):
    torch.manual_seed(1)
    s = torch.rand(3, 7) * 0.3 - 0.05
    q = snap_to_grid(s, grid, 4, group_dims=(0,))
    k, e = grid_integers(q, grid, 4, group_dims=(0,))
    assert torch.equal(k.double() * torch.exp2(e.double()), q.double())
    if grid == "fixed":
        assert k.abs().max() <= 15
        assert (e == e[:1]).all()  # one exponent per column (output channel)


def test_fixed_grid_keeps_gradient():
    s = torch.tensor([0.3, 0.7], requires_grad=True)
    snap_to_grid(s, "fixed", 4, (0,)).sum().backward()
    assert s.grad.tolist() == [1.0, 1.0]


def test_layer_equals_sum_of_mn_binary_convs():
    torch.manual_seed(3)
    layer = ABCConv2d(3, 5, 3, stride=2, padding=1, weight_bases=3, act_bases=2)
    layer.eval()
    x = torch.rand(2, 3, 9, 9)
    y = layer(x)
    shifted, alpha = layer.weight_constants()
    c, beta = layer.input_quant.constants()
    ref = torch.zeros_like(y)
    for m in range(3):
        for n in range(2):
            h = bipolar(x + c[n])
            h = torch.nn.functional.pad(h, (1, 1, 1, 1), value=-1.0)  # bit 0 padding
            conv = torch.nn.functional.conv2d(h, bipolar(shifted[m]), stride=2)
            ref += alpha[m].view(1, -1, 1, 1) * beta[n] * conv
    assert torch.allclose(y, ref, atol=1e-5)


def test_eval_cache_follows_weight_updates():
    layer = ABCLinear(8, 4, weight_bases=2, act_bases=1)
    layer.eval()
    x = torch.rand(3, 8)
    y1 = layer(x)
    with torch.no_grad():
        layer.weight.mul_(-1)
    y2 = layer(x)
    assert not torch.equal(y1, y2)
    layer.load_state_dict({k: v.clone() for k, v in layer.state_dict().items()})
    assert torch.equal(layer(x), y2)


def test_batchnorm_eval_is_mul_then_add():
    bn = ABCBatchNorm(3)
    bn.train()
    bn(torch.randn(16, 3, 4, 4) * 3 + 1)
    bn.eval()
    x = torch.randn(2, 3, 4, 4)
    s, t = bn.affine()
    assert torch.equal(bn(x), x * s.view(1, -1, 1, 1) + t.view(1, -1, 1, 1))


def test_input_quant_grid():
    q = InputQuant(8).eval()
    x = torch.tensor([0.0, 1.0, 0.5, 1 / 255, 2.0, -1.0])
    assert torch.equal(q(x) * 256, torch.tensor([0.0, 255.0, 128.0, 1.0, 255.0, 0.0]))


@pytest.mark.parametrize("kwargs", [
    dict(weight_bases=0, act_bases=1), dict(weight_bases=9, act_bases=1), dict(weight_bases=1, act_bases=0),
    dict(weight_bases=1, act_bases=1, input_bits=8), dict(weight_bases=1, act_bases=1, scale_grid="weird"),
])
def test_bad_layer_parameters_are_usage_errors(kwargs):
    with pytest.raises(UsageError):
        ABCConv2d(2, 2, 3, **kwargs)


def test_eval_cache_follows_learned_alpha():
    layer = ABCLinear(8, 4, weight_bases=2, act_bases=1, learn_alpha=True, scale_grid="float").eval()
    x = torch.rand(3, 8)
    y0 = layer(x)
    with torch.no_grad():
        layer.weight_quant.alpha.mul_(2)
    assert not torch.equal(layer(x), y0)
