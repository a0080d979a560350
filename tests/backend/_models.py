"""Test models for the backend: BNN-PYNQ 1W1A, zoo lenet and random small ABC networks, exported
to QONNX files (random weights, one training step, calibrated batch norm, some negative BN scales
so both threshold directions occur)."""
from __future__ import annotations

import contextlib
import io
import os
import warnings

import sys
from pathlib import Path

import numpy as np
import torch

# the compiler tests' model builders are the single source of test networks and data
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "compiler"))
from _builders import abc_net as _build_abc_net  # noqa: E402
from _builders import cifar_like, mnist  # noqa: E402,F401  (re-exported for conftest and scripts)


def _calibrate(model: torch.nn.Module, x: np.ndarray, rng, neg: float = 0.25, batch: int = 100) -> None:
    """Batch-norm statistics from data, with a fraction ``neg`` of the scales made negative (both
    threshold directions occur). Handles torch's batch norms and our ABCBatchNorm."""
    from abcn_hw.nn import ABCBatchNorm

    for mod in model.modules():
        if isinstance(mod, (torch.nn.modules.batchnorm._BatchNorm, ABCBatchNorm)):
            if isinstance(mod, ABCBatchNorm):  # exponential average (momentum 0.1) over the passes
                mod.running_mean.zero_()
                mod.running_var.fill_(1.0)
            else:
                mod.reset_running_stats()
                mod.momentum = None
            if mod.weight is not None:
                with torch.no_grad():
                    flip = torch.from_numpy(rng.random(mod.num_features) < neg)
                    mod.weight[flip] *= -1
    model.train()
    with torch.no_grad():
        for i in range(0, len(x), batch):
            model(torch.from_numpy(x[i:i + batch]))
    model.eval()


def export(model: torch.nn.Module, shape: tuple[int, ...], path: str) -> str:
    from abcn_hw.qonnx_export import export_to_qonnx

    model.eval()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        export_to_qonnx(model, shape, path)
    return path


def bnn_pynq_raw(name: str, path: str, dynamo: bool, seed: int = 0) -> tuple[str, np.ndarray]:
    """BNN-PYNQ ``name`` as a Brevitas user exports it: ``export_qonnx`` with either torch exporter
    (``dynamo``: the default one, which writes the weights to ``path + '.data'``), no clean-up;
    random weights, calibrated batch norm. Returns (path, test inputs)."""
    from brevitas.export import export_qonnx
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _ = model_with_cfg(name, pretrained=False)
    cnv = name.startswith("cnv")
    x, shape = (cifar_like(300, seed), (3, 32, 32)) if cnv else (mnist("train")[0][:300], (1, 28, 28))
    _calibrate(model, x, np.random.default_rng(seed))
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        export_qonnx(model, torch.rand((1,) + shape), export_path=path, dynamo=dynamo)
    return path, (cifar_like(64, seed + 1) if cnv else mnist("test")[0])


def bnn_pynq(name: str, path: str, seed: int = 0) -> tuple[str, np.ndarray]:
    """BNN-PYNQ ``name`` (tfc_1w1a, cnv_1w1a, ...) exported with Brevitas' QONNX exporter; returns
    (path, test inputs)."""
    from brevitas.export import export_qonnx
    from brevitas_examples.bnn_pynq.models import model_with_cfg
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    import onnx

    from abcn_hw.qonnx_export import normalise_opsets

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _ = model_with_cfg(name, pretrained=False)
    rng = np.random.default_rng(seed)
    if name.startswith("cnv"):
        x, shape = cifar_like(300, seed), (3, 32, 32)
    else:
        x, shape = mnist("train")[0][:300], (1, 28, 28)
    _calibrate(model, x, rng)
    raw = path + ".raw.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        export_qonnx(model, torch.rand((1,) + shape), export_path=raw, dynamo=False)
    proto = normalise_opsets(onnx.load(raw))
    onnx.save(normalise_opsets(cleanup_model(ModelWrapper(proto)).model), path)
    os.remove(raw)
    return path, (cifar_like(64, seed + 1) if name.startswith("cnv") else mnist("test")[0])


def zoo(name: str, m: int, n: int, path: str, seed: int = 0, grid: str = "fixed") -> tuple[str, np.ndarray]:
    """Zoo model (untrained: one SGD step + calibrated BN), exported; returns (path, test inputs)."""
    from abcn_hw.models import build_model

    torch.manual_seed(seed)
    model = build_model(name, m, n, scale_grid=grid)
    shape = tuple(model.config["input_shape"])
    x = mnist("train")[0][:256] if shape == (1, 28, 28) else cifar_like(256, seed)
    _step(model, x)
    _calibrate(model, x, np.random.default_rng(seed))
    export(model, shape, path)
    return path, (mnist("test")[0] if shape == (1, 28, 28) else cifar_like(64, seed + 1))


def _step(model: torch.nn.Module, x: np.ndarray) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    model.train()
    out = model(torch.from_numpy(x[:64]))
    out.pow(2).mean().backward()
    opt.step()
    opt.zero_grad()


def abc_net(spec: dict, path: str, seed: int = 0) -> tuple[str, np.ndarray]:
    """A small ABC network from the compiler tests' builder (``spec``: convs [(out_ch, k, stride,
    pad)], m, n per layer, hw, in_channels, pool, classes, neg_bn ...), trained one step, batch norm
    calibrated with some scales negative; exported to ``path``. Returns (path, test inputs)."""
    net, _ = _build_abc_net(spec, seed)
    c_in, hw = spec.get("in_channels", 1), spec.get("hw", 10)
    export(net, (c_in, hw, hw), path)
    xt = mnist("test")[0][:200, :, :hw, :hw].copy() if c_in == 1 and hw <= 28 else \
        np.random.default_rng(seed + 1).random((200, c_in, hw, hw)).astype(np.float32)
    return path, xt
