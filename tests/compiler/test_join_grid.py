"""Residual joins that must round (docs/residual-networks.md, abcn_hw.nn.joins): random fixed-grid
blocks at high M * N and 512 channels, where one fixed grid per join exceeds 2**24 quanta, choose a
coarser join grid from the static bound and round onto it. PyTorch == export bit for bit, the
static verdicts hold, the lowered graph carries rounding ResidualAdds (``shift``) and equals the
export on every element, with no float op between the input quantizer and the logits."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from _builders import export_abc
from _residual_nets import BlockNet, randomise_bn

from abcn_hw.compiler import compare, lower
from abcn_hw.compiler.accelerated import check_integer_only, float_ops_in_accelerated_part, float_regions
from abcn_hw.models.base import LayerFactory
from abcn_hw.models.exactness import export_exactness
from abcn_hw.nn.joins import Dyadic, plan_join
from abcn_hw.qonnx_export import check_fidelity


@pytest.mark.parametrize("seed,m,n,c0,blocks,hw", [
    (3, 6, 6, 16, [(128, 2), (128, 1)], 4),
    # 512 channels (resnet18's last stage): minutes on 2 shared cores
    pytest.param(0, 3, 3, 64, [(512, 2), (512, 1)], 4, marks=pytest.mark.slow),
    pytest.param(1, 8, 8, 64, [(512, 2), (512, 1)], 4, marks=pytest.mark.slow),
    pytest.param(2, 4, 5, 32, [(32, 1), (256, 2), (256, 1)], 6, marks=pytest.mark.slow),
])
def test_rounding_joins_are_exact(seed, m, n, c0, blocks, hw):
    torch.manual_seed(seed)
    net = BlockNet(LayerFactory(m, n, "fixed", 4), 3, hw, blocks, c0=c0)
    rng = np.random.default_rng(seed)
    x = rng.random((40, 3, hw, hw)).astype(np.float32)
    randomise_bn(net, seed, x[:32], gain=(0.5, 4.0), bias=1.0, batch=32)
    with torch.no_grad():
        net(torch.from_numpy(x[32:]))
    plans = net.plans()
    assert all(p is not None and p.exact for p in plans)
    # the old grid (no rounding, one grid per join) breaks the bound here: a plan rounds only then
    assert any(p.rounds for p in plans), [(p.shifts, p.grid) for p in plans]
    verdicts = export_exactness(net)
    assert verdicts.exact, verdicts.summary()
    assert sum("rounds" in v.reason for v in verdicts.layers) == sum(p.rounds for p in plans)
    exp = export_abc(net, (3, hw, hw))
    assert any(nd.op_type == "Round" for nd in exp.graph.node)
    fid = check_fidelity(net, exp, x[32:])
    assert fid.equal_fraction == 1.0, fid.summary()  # PyTorch == export, bit for bit
    low, _ = lower(exp)
    assert float_ops_in_accelerated_part(low.model) == [], [nd.name for nd in float_ops_in_accelerated_part(low.model)]
    check_integer_only(low.model)
    assert not float_regions(low.model)
    shifted = [nd for nd in low.graph.node if nd.op_type == "ResidualAdd"
               and any(a.name == "shift" and a.i > 0 for a in nd.attribute)]
    assert shifted
    cmp = compare(exp, low, x[32:])
    assert cmp.output_equal == 1.0, cmp.summary()
    assert cmp.layer_equal_bits and all(v == 1.0 for v in cmp.layer_equal_bits.values()), cmp.layer_equal_bits


def _bn_branch(exp: int, bound: float, c: int = 3):
    """A branch whose output sits on 2**(exp + h) with rne(bound / 2**h) quanta (a unit scale)."""
    def branch(h):
        b = np.round(np.full(c, bound) / 2.0 ** h)
        return Dyadic(np.full(c, exp + h), b), float(b.max())
    return branch


def test_plan_is_the_finest_exact_grid():
    # fits: nothing rounds
    p = plan_join([_bn_branch(-10, 2.0 ** 22)], Dyadic(np.full(3, -10), np.full(3, 2.0 ** 22)))
    assert p.exact and not p.rounds and p.out.peak == 2.0 ** 23
    # 2^23.6 + 2^23.6 on one grid: one step coarser for both
    p = plan_join([_bn_branch(-10, 1.2e7)], Dyadic(np.full(3, -10), np.full(3, 1.2e7)))
    assert p.exact and p.shifts == (1,) and p.grid == -9 and p.out.peak == 1.2e7
    # the identity on a finer grid is rounded up to the branch's own grid, not beyond
    p = plan_join([_bn_branch(-5, 2.0 ** 23)], Dyadic(np.full(3, -12), np.full(3, 2.0 ** 20)))
    assert p.exact and p.shifts == (0,) and p.grid == -5 and p.out.peak == 2.0 ** 23 + 2.0 ** 13
    # a branch alone over 2^24 (a stem): its own shift
    p = plan_join([_bn_branch(0, 2.0 ** 26 + 1)])
    assert p.exact and p.shifts == (3,) and p.grid is None and p.out.peak == 2.0 ** 23
    # the sum pool's limit
    p = plan_join([_bn_branch(0, 2.0 ** 20)], limit=(2 ** 31 - 1) / 1024)
    assert p.exact and p.shifts == (0,)
    p = plan_join([_bn_branch(0, 2.0 ** 21)], limit=(2 ** 31 - 1) / 1024)
    assert p.exact and p.shifts == (1,)
