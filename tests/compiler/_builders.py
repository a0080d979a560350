"""Model builders shared by the compiler tests (BNN-PYNQ with calibrated batch norm, ABC layers)."""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from functools import lru_cache

import numpy as np
import onnx
import torch


@lru_cache(maxsize=1)
def mnist(split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    from abcn_hw.data import load_dataset

    ds = load_dataset("mnist")
    s = getattr(ds, split)
    return np.asarray(s.images, np.float32), np.asarray(s.labels)


def cifar_like(n: int, seed: int = 0) -> np.ndarray:
    """3x32x32 images in [0, 1] built from MNIST digits (padded to 32, colour-tinted) plus noise."""
    x, _ = mnist("train")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(x), n, replace=len(x) < n)
    d = np.pad(x[idx, 0], ((0, 0), (2, 2), (2, 2)))
    tint = rng.uniform(0.3, 1.0, size=(n, 3, 1, 1)).astype(np.float32)
    img = d[:, None] * tint + rng.uniform(0, 0.3, size=(n, 3, 32, 32)).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32)


def calibrate_bn(model: torch.nn.Module, x: np.ndarray, batch: int = 100) -> None:
    """Realistic batch-norm statistics: run data in train mode (no grad), cumulative averages."""
    for mod in model.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.reset_running_stats()
            mod.momentum = None
    model.train()
    with torch.no_grad():
        for i in range(0, len(x), batch):
            model(torch.from_numpy(x[i:i + batch]))
    model.eval()


def export_brevitas(model: torch.nn.Module, shape: tuple[int, ...]) -> onnx.ModelProto:
    from brevitas.export import export_qonnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    from abcn_hw.qonnx_export import normalise_opsets

    model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.onnx")
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            export_qonnx(model, torch.rand((1,) + tuple(shape)), export_path=raw, dynamo=False)
        proto = normalise_opsets(onnx.load(raw))
    return normalise_opsets(cleanup_model(ModelWrapper(proto)).model)


def bnn_pynq(name: str, calib: int = 400, seed: int = 0, negative_bn: float = 0.2) -> tuple[onnx.ModelProto, np.ndarray]:
    """A BNN-PYNQ model (random weights, some negative BN scales, calibrated BN) exported to
    QONNX, and test inputs."""
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _ = model_with_cfg(name, pretrained=False)
    rng = np.random.default_rng(seed)
    for mod in model.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                flip = torch.from_numpy(rng.random(mod.num_features) < negative_bn)
                mod.weight[flip] *= -1
                mod.bias.copy_(torch.from_numpy(rng.normal(0, 0.2, mod.num_features).astype(np.float32)))
    if name.startswith("cnv"):
        x = cifar_like(calib + 200, seed)
        shape = (3, 32, 32)
    else:
        xm, _ = mnist("train")
        x = xm[:calib + 200]
        shape = (1, 28, 28)
    calibrate_bn(model, x[:calib])
    return export_brevitas(model, shape), x[calib:]


def abc_net(spec: dict, seed: int = 0):
    """A small ABC network from our layers, described by ``spec`` (see test_abc_layers), trained
    one step and with calibrated batch norm (some scales forced negative)."""
    from torch import nn

    from abcn_hw.nn.layers import ABCBatchNorm, ABCConv2d, ABCLinear

    torch.manual_seed(seed)
    c_in, hw = spec.get("in_channels", 1), spec.get("hw", 10)
    layers: list[nn.Module] = []
    first = dict(input_bits=spec.get("input_bits", 8)) if spec.get("int_input", True) else dict(act_bases=spec["n"][0])
    extra = dict(spec.get("layer_kw", {}))
    c = c_in
    for i, (co, k, s, p) in enumerate(spec["convs"]):
        kw = first if i == 0 else dict(act_bases=spec["n"][i])
        layers += [ABCConv2d(c, co, k, stride=s, padding=p, weight_bases=spec["m"][i], scale_grid=spec.get("grid", "fixed"),
                             **kw, **extra),
                   ABCBatchNorm(co)]
        if spec.get("pool") == i:
            layers.append(nn.MaxPool2d(2))
        c = co
    layers.append(nn.Flatten())
    net = nn.Sequential(*layers)
    net.eval()
    with torch.no_grad():
        feat = net(torch.zeros(1, c_in, hw, hw)).shape[1]
    j = len(spec["convs"])
    fc_kw = dict(act_bases=spec["n"][j]) if j else first
    net.append(ABCLinear(feat, spec.get("classes", 10), weight_bases=spec["m"][j], scale_grid=spec.get("grid", "fixed"),
                         **fc_kw, **extra))
    net.append(ABCBatchNorm(spec.get("classes", 10)))
    rng = np.random.default_rng(seed)
    x = rng.random((64, c_in, hw, hw)).astype(np.float32)
    if c_in == 1 and hw <= 28:
        xm, _ = mnist("train")
        x = xm[:128, :, :hw, :hw].copy()
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    net.train()
    loss = net(torch.from_numpy(x)).pow(2).mean()
    loss.backward()
    opt.step()
    for mod in net.modules():
        if isinstance(mod, ABCBatchNorm):
            with torch.no_grad():
                neg = torch.from_numpy(rng.random(mod.num_features) < spec.get("neg_bn", 0.3))
                mod.weight[neg] *= -1
    # calibrate: a few forward passes in train mode update running stats
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.from_numpy(x))
    net.eval()
    return net, x


def export_abc(net, shape) -> onnx.ModelProto:
    from abcn_hw.qonnx_export import export_to_qonnx

    with tempfile.TemporaryDirectory() as tmp:
        return export_to_qonnx(net, shape, os.path.join(tmp, "m.onnx"))
