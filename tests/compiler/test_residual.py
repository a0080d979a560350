"""Exact integer residual networks (docs/residual-networks.md): random fixed-grid blocks and the
zoo ResNets lower to ResidualAdd / IntegerThreshold / GlobalSumPool / IntegerMaxPool with no float
op between the input quantizer and the final accumulator, and equal the export on every element;
a Brevitas residual net with float batch norms keeps its float joins (exact in onnxruntime) and is
refused for integer hardware by name."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from _builders import calibrate_bn, cifar_like, export_abc, export_brevitas, mnist
from _residual_nets import BlockNet, randomise_bn
from torch import nn

from abcn_hw import models
from abcn_hw.compiler import compare, lower
from abcn_hw.compiler.accelerated import check_integer_only, float_ops_in_accelerated_part, float_regions
from abcn_hw.errors import UnsupportedModelError
from abcn_hw.models.base import LayerFactory
from abcn_hw.models.exactness import export_exactness
from abcn_hw.nn import FixedPointBatchNorm
from abcn_hw.qonnx_export import check_fidelity

RESIDUAL_OPS = {"ResidualAdd", "IntegerThreshold", "GlobalSumPool", "IntegerMaxPool"}


def _check_exact(net: nn.Module, shape, x: np.ndarray) -> tuple:
    """PyTorch == export bit for bit, lowered == export on every element and every activation bit,
    no float op in the accelerated part. Returns (lowered, report)."""
    verdicts = export_exactness(net)
    assert verdicts.exact, verdicts.summary()
    exp = export_abc(net, shape)
    fid = check_fidelity(net, exp, x)
    assert fid.equal_fraction == 1.0, fid.summary()
    low, rep = lower(exp)
    ops = {n.op_type for n in low.graph.node}
    assert {"ResidualAdd", "IntegerThreshold", "GlobalSumPool"} <= ops
    assert float_ops_in_accelerated_part(low.model) == [], [n.name for n in float_ops_in_accelerated_part(low.model)]
    check_integer_only(low.model)
    assert not float_regions(low.model)
    cmp = compare(exp, low, x)
    assert cmp.output_equal == 1.0, cmp.summary()
    assert cmp.layer_equal_bits and all(v == 1.0 for v in cmp.layer_equal_bits.values()), cmp.layer_equal_bits
    return low, rep


@pytest.mark.parametrize("seed,m,n,c_in,hw,blocks,stem_pool", [
    (0, 1, 1, 1, 6, [(4, 1)], False),
    (1, 2, 3, 3, 7, [(8, 2)], False),
    (2, 3, 2, 2, 9, [(4, 2), (4, 1)], True),
    (3, 2, 2, 3, 8, [(6, 1), (8, 2)], False),
])
def test_random_fixed_grid_blocks_are_exact(seed, m, n, c_in, hw, blocks, stem_pool):
    torch.manual_seed(seed)
    net = BlockNet(LayerFactory(m, n, "fixed", 4), c_in, hw, blocks, stem_pool)
    rng = np.random.default_rng(seed)
    x = rng.random((48, c_in, hw, hw)).astype(np.float32)
    randomise_bn(net, seed, x[:32])
    low, _ = _check_exact(net, (c_in, hw, hw), x[32:])
    ops = [n.op_type for n in low.graph.node]
    assert ("IntegerMaxPool" in ops) == stem_pool
    joins = [n for n in low.graph.node if n.op_type == "ResidualAdd"]
    # the stem's affine is a k = 1 ResidualAdd where its value is read as an integer (an identity
    # shortcut, a padded max pool); feeding only a quantizer it is an ordinary threshold unit
    stem_int = stem_pool or blocks[0][1] == 1
    assert [len(n.input) - 2 for n in joins] == [1] * stem_int + [2] * len(blocks)
    assert all(n.overload == f"k{len(n.input) - 2}" for n in joins)


def test_fixed_point_batch_norm_is_dyadic_and_trains():
    bn = FixedPointBatchNorm(6, scale_bits=3, shift_bits=5)
    x = torch.randn(8, 6, 4, 4, requires_grad=True)
    y = bn(x)
    y.sum().backward()
    assert bn.weight.grad is not None and x.grad is not None  # straight-through: gradients flow
    bn.eval()
    s, t = bn.affine()
    mant, _ = np.frexp(s.numpy())
    assert np.all(np.abs(np.round(mant * 2 ** 3) - mant * 2 ** 3) == 0)  # 3 significant bits
    assert np.all(t.numpy() * 2 ** 5 == np.round(t.numpy() * 2 ** 5))
    assert torch.equal(bn(x.detach()), x.detach() * s.view(1, -1, 1, 1) + t.view(1, -1, 1, 1))


def test_fixed_point_batch_norm_puts_every_channel_on_one_grid():
    """With the input's quantum (2**-9 .. 2**-5 per channel), every output channel is an integer
    multiple of one power of two, and s * unit has at most scale_bits significant bits."""
    torch.manual_seed(1)
    bn = FixedPointBatchNorm(5, scale_bits=4)
    unit = torch.tensor([2.0 ** -9, 2.0 ** -5, 2.0 ** -7, 2.0 ** -9, 2.0 ** -6])
    acc = torch.randint(-3000, 3000, (16, 5, 3, 3)).float()
    x = acc * unit.view(1, -1, 1, 1)  # exact: integers times powers of two
    bn.train()
    bn(x, unit=unit)
    bn.eval()
    s, t = bn.affine(unit)
    v = (s * unit).numpy().astype(np.float64)
    grid = 2.0 ** (np.floor(np.log2(np.abs(v).max())) - 3)
    assert np.all(v / grid == np.round(v / grid)) and np.abs(v / grid).max() <= 15
    assert np.all(t.numpy() / grid == np.round(t.numpy() / grid))
    y = bn(x, unit=unit).numpy().astype(np.float64)
    assert np.all(y / grid == np.round(y / grid))


def _zoo(name: str, m: int, n: int, shape, images: int = 12):
    torch.manual_seed(0)
    net = models.build_model(name, m, n, input_shape=shape)
    if shape[0] == 1:
        x = mnist("train")[0][:64 + images]
        x = x if shape[1:] == (28, 28) else np.random.default_rng(0).random((64 + images,) + shape, dtype=np.float32)
    else:
        x = cifar_like(64 + images) if shape[1:] == (32, 32) else \
            np.random.default_rng(0).random((64 + images,) + tuple(shape), dtype=np.float32)
    calibrate_bn(net, x[:64], batch=32)
    return net, x[64:]


# slow: the multi-base cases repeat the (1,1) case's structure checks; their exact lowering of
# multi-base joins is also checked by tests/backend/test_residual_compile.py (M, N = 2, 3, verified)
@pytest.mark.parametrize("m,n,shape", [
    (1, 1, (3, 32, 32)),
    pytest.param(2, 2, (3, 32, 32), marks=pytest.mark.slow),
    pytest.param(2, 3, (1, 28, 28), marks=pytest.mark.slow),
    pytest.param(3, 3, (1, 28, 28), marks=pytest.mark.slow),
])
def test_zoo_resnet8_lowers_to_integers(m, n, shape):
    net, x = _zoo("resnet8", m, n, shape)
    low, rep = _check_exact(net, shape, x)
    joins = [nd for nd in low.graph.node if nd.op_type == "ResidualAdd"]
    assert len(joins) == 4 and sum(nd.op_type == "IntegerThreshold" for nd in low.graph.node) == 4
    assert [layer.threshold for layer in rep.layers] == ["residual", "fused", "residual", "residual", "fused",
                                                          "residual", "residual", "fused", "residual", "final"]


@pytest.mark.slow
def test_zoo_resnet18_lowers_to_integers():
    """The paper's topology at 32x32 (the joins' bounds do not depend on the input size; the export
    alone takes minutes on 2 shared cores)."""
    net, x = _zoo("resnet18", 1, 1, (3, 32, 32), images=4)
    low, _ = _check_exact(net, (3, 32, 32), x)
    assert sum(nd.op_type == "ResidualAdd" for nd in low.graph.node) == 9  # stem + 8 blocks
    assert sum(nd.op_type == "IntegerMaxPool" for nd in low.graph.node) == 1


# -- residual nets written with Brevitas and float batch norm -----------------------------------------

class BrevitasResNet(nn.Module):
    """uint8 input -> QuantConv2d - nn.BatchNorm2d -> [binary act -> QuantConv2d - BN] + skip -> binary
    act -> QuantLinear: the join adds two float batch-norm outputs (24-bit mantissas). ``w_scale``:
    the binary weights' constant scale (0.25 dyadic: exact layers; Brevitas' default 0.1: rounded)."""

    def __init__(self, w_scale: float = 0.25):
        super().__init__()
        from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
        from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst, \
            Uint8ActPerTensorFixedPoint

        wq = type("BinW", (SignedBinaryWeightPerTensorConst,), {"scaling_const": w_scale})
        self.inp = QuantIdentity(act_quant=Uint8ActPerTensorFixedPoint, return_quant_tensor=True)
        self.c1 = QuantConv2d(1, 4, 3, padding=1, weight_quant=wq, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.a1 = QuantIdentity(act_quant=SignedBinaryActPerTensorConst)
        self.c2 = QuantConv2d(4, 4, 3, padding=1, weight_quant=wq, bias=False)
        self.bn2 = nn.BatchNorm2d(4)
        self.a2 = QuantIdentity(act_quant=SignedBinaryActPerTensorConst)
        self.fc = QuantLinear(4 * 6 * 6, 3, weight_quant=wq, bias=False)

    def forward(self, x):
        r = self.bn1(self.c1(self.inp(x)))
        r = self.bn2(self.c2(self.a1(r))) + r
        return self.fc(torch.flatten(self.a2(r), 1))


def _brevitas_res(w_scale: float):
    torch.manual_seed(0)
    net = BrevitasResNet(w_scale)
    x = np.random.default_rng(0).random((72, 1, 6, 6)).astype(np.float32)
    calibrate_bn(net, x[:32], batch=16)
    return export_brevitas(net, (1, 6, 6)), x[32:]


def test_brevitas_float_bn_residual_keeps_float_join_and_is_refused_for_hardware():
    exp, x = _brevitas_res(0.25)
    low, rep = lower(exp)
    assert rep.exact and not any(nd.op_type == "ResidualAdd" for nd in low.graph.node)
    cmp = compare(exp, low, x)
    assert cmp.output_equal == 1.0  # the float join is kept verbatim: exact in onnxruntime
    regions = float_regions(low.model)
    assert regions and all("float batch norm" in why for why in regions.values()), regions
    bad = float_ops_in_accelerated_part(low.model)
    assert {nd.op_type for nd in bad} >= {"Add", "BatchNormalization"}
    with pytest.raises(UnsupportedModelError) as e:
        check_integer_only(low.model, "res.onnx")
    msg = str(e.value)
    assert "\n" not in msg and "res.onnx" in msg and f"'{bad[0].name}'" in msg and "float batch norm" in msg


def test_brevitas_float_bn_residual_with_rounded_scales_meets_the_contract():
    """Brevitas' default binary scale 0.1 is not dyadic: the layers are rounded and the enforced
    rounding contract (>= 99.9 % prediction agreement) holds for the residual net as for chains."""
    from abcn_hw.compiler.contract import lower_to_contract

    exp, x = _brevitas_res(0.1)
    low, rep = lower_to_contract(exp, lambda: (x, f"{len(x)} inputs"), 0.999)
    assert not rep.exact and rep.calibration_agreement >= 0.999
    assert compare(exp, low, x).prediction_agreement >= 0.999
    with pytest.raises(UnsupportedModelError):
        check_integer_only(low.model)
