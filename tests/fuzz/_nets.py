"""Random small binary networks written the way a Brevitas user writes them (plain
``brevitas.nn.QuantConv2d`` / ``QuantLinear`` / ``QuantIdentity`` with binary quantizers,
``nn.BatchNorm2d/1d``, ``nn.MaxPool2d``, multi-branch ABC layers Σₙ βₙ Σₘ conv(Aₙ, Bₘ)), described by a
:class:`NetSpec` that a hypothesis strategy draws (:func:`net_specs`).

No abcn_hw.nn layers: these nets test the compiler on graphs we did not write ourselves.
"""
from __future__ import annotations

import contextlib
import io
import os
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from hypothesis import strategies as st
from torch import nn

#: weight quantizers: Brevitas' own binary quantizer (scale 0.1), a constant scale 1 or 2^-k,
#: per-output-channel scales from the weights' mean |w| (power of two, or float as XNOR-Net)
WEIGHT_QUANTS = ("const1", "const0.1", "const_pot", "pot_channel", "float_channel")
#: input quantizers: binary (QuantIdentity sign), 8-bit fixed point (power-of-two scale), none (float input)
INPUT_QUANTS = ("binary", "int8pot", "none")


@dataclass
class ConvSpec:
    out: int
    k: int
    stride: int
    pad: int
    pool: bool
    bn: bool
    wq: str
    m: int = 1  # weight branches (QuantConv2d modules summed)
    n: int = 1  # activation branches (shifted QuantIdentity of the previous float output)
    bias: bool = False


@dataclass
class FCSpec:
    out: int
    bn: bool
    wq: str


@dataclass
class NetSpec:
    in_ch: int
    hw: int
    in_quant: str
    convs: list[ConvSpec]
    fcs: list[FCSpec]
    classes: int
    final_wq: str
    final_bn: bool
    act_scale: float  # the hidden binary activations' constant scale
    dynamo: bool
    seed: int
    neg_bn: float = 0.3
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def short(self) -> str:
        convs = ",".join(f"c{c.out}k{c.k}s{c.stride}p{c.pad}{'P' if c.pool else ''}{'' if c.bn else 'nobn'}"
                         f"{c.wq}{f'M{c.m}N{c.n}' if c.m * c.n > 1 else ''}{'+b' if c.bias else ''}" for c in self.convs)
        fcs = ",".join(f"f{f.out}{'' if f.bn else 'nobn'}{f.wq}" for f in self.fcs)
        return (f"{self.in_ch}x{self.hw}x{self.hw} in={self.in_quant} [{convs}] [{fcs}] cls={self.classes}"
                f"{self.final_wq}{'+bn' if self.final_bn else ''} act={self.act_scale} "
                f"{'dynamo' if self.dynamo else 'torchscript'} seed={self.seed}")


@st.composite
def net_specs(draw, multi_branch: float = 0.25) -> NetSpec:
    """A random small net; ``multi_branch``: rough share of conv layers written as ABC branches."""
    in_ch = draw(st.integers(1, 3))
    hw = draw(st.integers(5, 12))
    # hypothesis starts from the simplest draws: make those the common, supported choices
    in_quant = draw(st.sampled_from(INPUT_QUANTS[:2]) if draw(st.integers(0, 9)) < 9 else st.just("none"))
    convs: list[ConvSpec] = []
    size = hw
    for i in range((draw(st.integers(0, 3)) + 1) % 4):  # simplest draw: one conv layer
        k = draw(st.integers(1, 3))
        pad = draw(st.integers(0, 1))
        stride = draw(st.integers(1, 2))
        if size + 2 * pad < k:
            break
        out_size = (size + 2 * pad - k) // stride + 1
        pool = out_size >= 2 and draw(st.booleans())
        abc = i > 0 and draw(st.floats(0, 1)) < multi_branch
        convs.append(ConvSpec(out=draw(st.integers(1, 8)), k=k, stride=stride, pad=pad, pool=pool,
                              bn=draw(st.integers(0, 9)) < 9, wq=draw(st.sampled_from(WEIGHT_QUANTS)),
                              m=draw(st.integers(1, 3)) if abc else 1, n=draw(st.integers(1, 3)) if abc else 1,
                              bias=draw(st.integers(0, 14)) == 14))
        size = out_size // 2 if pool else out_size
    fcs = [FCSpec(out=draw(st.integers(2, 24)), bn=draw(st.integers(0, 9)) < 9, wq=draw(st.sampled_from(WEIGHT_QUANTS)))
           for _ in range(draw(st.integers(0, 2)))]
    return NetSpec(in_ch=in_ch, hw=hw, in_quant=in_quant, convs=convs, fcs=fcs, classes=draw(st.integers(2, 10)),
                   final_wq=draw(st.sampled_from(WEIGHT_QUANTS)), final_bn=draw(st.booleans()),
                   act_scale=draw(st.sampled_from([1.0, 1.0, 0.5])), dynamo=draw(st.booleans()),
                   seed=draw(st.integers(0, 2 ** 16)))


# -- quantizers (class attributes, the Brevitas way) ----------------------------------------------------

def _weight_quant(kind: str, rng: np.random.Generator):
    from brevitas.core.function_wrapper import CeilSte
    from brevitas.inject.enum import RestrictValueType, ScalingImplType, ScalingPerOutputType, StatsOp
    from brevitas.quant.binary import SignedBinaryWeightPerTensorConst

    if kind == "const0.1":
        return SignedBinaryWeightPerTensorConst
    if kind in ("const1", "const_pot"):
        value = 1.0 if kind == "const1" else 2.0 ** -int(rng.integers(1, 5))
        return type("BinaryWeightConst", (SignedBinaryWeightPerTensorConst,), {"scaling_const": value})
    attrs = {"scaling_impl_type": ScalingImplType.STATS, "scaling_stats_op": StatsOp.AVE,
             "scaling_per_output_type": ScalingPerOutputType.CHANNEL, "scaling_min_val": 1e-6}
    if kind == "pot_channel":
        attrs |= {"restrict_scaling_type": RestrictValueType.POWER_OF_TWO, "restrict_value_float_to_int_impl": CeilSte}
    return type("BinaryWeightPerChannel", (SignedBinaryWeightPerTensorConst,), attrs)


def _act_quant(scale: float):
    from brevitas.quant.binary import SignedBinaryActPerTensorConst

    if scale == 1.0:
        return SignedBinaryActPerTensorConst
    return type("BinaryActConst", (SignedBinaryActPerTensorConst,), {"min_val": -scale, "max_val": scale})


class ABCConv(nn.Module):
    """One ABC layer as the paper writes it: N shifted binary activations of the float input,
    M binary-weight convolutions, out = Σₙ βₙ Σₘ conv_m(sign(x + uₙ))."""

    def __init__(self, cin, cout, k, stride, pad, m, n, wq, rng):
        import brevitas.nn as qnn

        super().__init__()
        self.register_buffer("shifts", torch.linspace(-0.5, 0.5, n) if n > 1 else torch.zeros(1))
        self.betas = [float(2.0 ** -i) for i in range(n)]
        self.acts = nn.ModuleList(qnn.QuantIdentity(act_quant=_act_quant(1.0)) for _ in range(n))
        self.convs = nn.ModuleList(qnn.QuantConv2d(cin, cout, k, stride=stride, padding=pad, bias=False,
                                                   weight_quant=_weight_quant(wq, rng)) for _ in range(m))

    def forward(self, x):
        out = None
        for beta, act, u in zip(self.betas, self.acts, self.shifts):
            a = act(x + u)
            s = None
            for conv in self.convs:
                y = conv(a)
                s = y if s is None else s + y
            s = s * beta
            out = s if out is None else out + s
        return out


class FuzzNet(nn.Module):
    def __init__(self, spec: NetSpec):
        import brevitas.nn as qnn
        from brevitas.quant.fixed_point import Int8ActPerTensorFixedPoint

        super().__init__()
        rng = np.random.default_rng(spec.seed)
        self.inq = {"binary": lambda: qnn.QuantIdentity(act_quant=_act_quant(1.0)),
                    "int8pot": lambda: qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint),
                    "none": lambda: nn.Identity()}[spec.in_quant]()
        layers: list[nn.Module] = []
        c = spec.in_ch
        for i, cs in enumerate(spec.convs):
            nxt = spec.convs[i + 1] if i + 1 < len(spec.convs) else None
            abc_next = nxt is not None and nxt.m * nxt.n > 1
            if cs.m * cs.n > 1:
                layers.append(ABCConv(c, cs.out, cs.k, cs.stride, cs.pad, cs.m, cs.n, cs.wq, rng))
            else:
                layers.append(qnn.QuantConv2d(c, cs.out, cs.k, stride=cs.stride, padding=cs.pad, bias=cs.bias,
                                              weight_quant=_weight_quant(cs.wq, rng)))
            if cs.bn:
                layers.append(nn.BatchNorm2d(cs.out))
            if cs.pool:
                layers.append(nn.MaxPool2d(2))
            if not abc_next:  # an ABC layer quantizes the float output itself
                layers.append(qnn.QuantIdentity(act_quant=_act_quant(spec.act_scale)))
            c = cs.out
        self.features = nn.Sequential(*layers)
        fc: list[nn.Module] = []
        f = c * _spatial(spec) ** 2
        for fs in spec.fcs:
            fc.append(qnn.QuantLinear(f, fs.out, bias=False, weight_quant=_weight_quant(fs.wq, rng)))
            if fs.bn:
                fc.append(nn.BatchNorm1d(fs.out))
            fc.append(qnn.QuantIdentity(act_quant=_act_quant(spec.act_scale)))
            f = fs.out
        fc.append(qnn.QuantLinear(f, spec.classes, bias=False, weight_quant=_weight_quant(spec.final_wq, rng)))
        if spec.final_bn:
            fc.append(nn.BatchNorm1d(spec.classes))
        self.classifier = nn.Sequential(*fc)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(self.inq(x)), 1))


def _spatial(spec: NetSpec) -> int:
    s = spec.hw
    for c in spec.convs:
        s = (s + 2 * c.pad - c.k) // c.stride + 1
        s = s // 2 if c.pool else s
    return s


def inputs(spec: NetSpec, n: int, seed: int) -> np.ndarray:
    """Normalised-image-like inputs: standard normal, float32, the net's input shape."""
    return np.random.default_rng(seed).standard_normal((n, spec.in_ch, spec.hw, spec.hw)).astype(np.float32)


def build(spec: NetSpec, calib: int = 256) -> nn.Module:
    """The net with batch norm calibrated on data (cumulative statistics), then a share
    ``spec.neg_bn`` of its scales made negative and small random biases, so that activations are
    neither constant nor all equal and both threshold directions occur."""
    torch.manual_seed(spec.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = FuzzNet(spec)
    rng = np.random.default_rng(spec.seed + 1)
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    net.train()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net(torch.from_numpy(inputs(spec, calib, spec.seed + 2)))
        for bn in bns:
            flip = torch.from_numpy(rng.random(bn.num_features) < spec.neg_bn)
            bn.weight.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, bn.num_features).astype(np.float32)))
            bn.weight[flip] *= -1
            bn.bias.copy_(torch.from_numpy(rng.normal(0, 0.3, bn.num_features).astype(np.float32)))
    net.eval()
    return net


def export(net: nn.Module, spec: NetSpec, path: str) -> str:
    """``brevitas.export.export_qonnx`` as a user calls it (raw export, no clean-up of ours)."""
    from brevitas.export import export_qonnx

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        export_qonnx(net, torch.zeros(1, spec.in_ch, spec.hw, spec.hw), export_path=path, dynamo=spec.dynamo)
    for junk in (path + ".data",):
        if os.path.exists(junk) and os.path.getsize(junk) == 0:
            os.remove(junk)
    return path


#: a fixed, small, fully supported net (the base of the hostile-file corpus)
BASE_SPEC = NetSpec(in_ch=1, hw=8, in_quant="binary",
                    convs=[ConvSpec(out=4, k=3, stride=1, pad=0, pool=True, bn=True, wq="const1")],
                    fcs=[FCSpec(out=8, bn=True, wq="pot_channel")], classes=4, final_wq="const1", final_bn=True,
                    act_scale=1.0, dynamo=False, seed=7)
