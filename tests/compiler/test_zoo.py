"""Zoo models (fixed scale grid, BN calibrated on data) lower exactly."""
from __future__ import annotations

import pytest
import torch
from _builders import cifar_like, export_abc, mnist

from abcn_hw import models
from abcn_hw.compiler import lower, measure


def _zoo(name: str, m: int, n: int, n_images: int, batch: int, grid: str = "fixed"):
    torch.manual_seed(0)
    net = models.build_model(name, m, n, scale_grid=grid)
    shape = tuple(net.input_shape)
    if shape[0] == 1:
        x, xt = mnist("train")[0][:300], mnist("test")[0][:n_images]
    else:
        x, xt = cifar_like(300), cifar_like(n_images, seed=1)
    net.train()
    with torch.no_grad():
        for i in range(0, len(x), 100):
            net(torch.from_numpy(x[i:i + 100]))
    net.eval()
    exp = export_abc(net, shape)
    low, rep = lower(exp)
    measure(rep, exp, low, xt, batch=batch)
    if grid == "float":  # statistical contract
        assert rep.prediction_agreement >= 0.999, rep.table()
        return rep
    assert rep.exact, rep.table()
    assert rep.output_equal == 1.0 and rep.prediction_agreement == 1.0, rep.table()
    return rep


def test_lenet_3x3_exact():
    rep = _zoo("lenet", 3, 3, 300, 100)
    assert [layer.threshold for layer in rep.layers] == ["fused", "fused", "fused", "final"]


def test_tfc_2x2_exact():
    _zoo("tfc", 2, 2, 500, 250)


@pytest.mark.slow
@pytest.mark.parametrize("name,m,n,images,batch", [
    ("lenet", 1, 1, 2000, 250), ("lenet", 5, 5, 2000, 100), ("tfc", 3, 3, 2000, 500),
    ("sfc", 2, 2, 2000, 500), ("lfc", 1, 1, 2000, 250), ("cnv", 2, 2, 64, 16), ("resnet8", 2, 2, 64, 16)])
def test_zoo_exact(name, m, n, images, batch):
    rep = _zoo(name, m, n, images, batch)
    if name == "resnet8":  # residual joins are integer ResidualAdds (tests/compiler/test_residual.py)
        assert {layer.threshold for layer in rep.layers} == {"residual", "fused", "final"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lenet", "sfc"])
def test_zoo_float_scales_agreement(name):
    """Float (non-grid) scales: rounded coefficients, >= 99.9% prediction agreement."""
    rep = _zoo(name, 3, 3, 2000, 250, grid="float")
    assert not rep.exact and all(layer.scales_rounded for layer in rep.layers)
