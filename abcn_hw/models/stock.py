"""The peer baseline: the ``lenet`` topology built from Brevitas' *stock* binary quantizers in the
BNN-PYNQ recipe (one binary base, constant scales), for an accuracy comparison with ABC-Net.

    QuantIdentity(8-bit unsigned, scale 2**-8)        (same input grid as the ABC first layer)
    QuantConv2d(C->16, 5x5, binary weights) - BatchNorm2d - QuantIdentity(binary) - MaxPool2d(2)
    QuantConv2d(16->32, 5x5, binary weights) - BatchNorm2d - QuantIdentity(binary) - MaxPool2d(2)
    QuantLinear(512->100, binary weights) - BatchNorm1d - QuantIdentity(binary)
    QuantLinear(100->num_classes, binary weights) - BatchNorm1d   (learned scale/bias of the logits)

Weights use ``SignedBinaryWeightPerTensorConst`` (values +-0.1, the latent weights clipped in
place to [-0.1, 0.1] in training, as BNN-PYNQ's ``clip_weights`` does); activations use
``SignedBinaryActPerTensorConst`` (+-1, a clamped straight-through estimator). Batch norms are
plain ``torch.nn`` ones, so the QONNX export carries ONNX ``BatchNormalization`` nodes.

The model's config has ``weight_bases = act_bases = "brevitas-binary"`` and ``scale_grid =
scale_bits = None`` (not applicable); :func:`abcn_hw.models.model_from_config` rebuilds it.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from brevitas.core.scaling import ScalingImplType
from brevitas.inject.enum import RestrictValueType, ScalingPerOutputType
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst
from brevitas.quant.base import UintQuant
from brevitas.quant.solver import ActQuantSolver
from torch import nn

from ..errors import UsageError
from ..nn import INPUT_SCALE
from .base import INPUT_BITS, ABCModel, check_input_shape, check_num_classes
from .lenet import CHANNELS, HIDDEN, KERNEL, lenet_feature_shape

STOCK_BINARY = "brevitas-binary"
"""``weight_bases`` / ``act_bases`` value in the config of a stock Brevitas binary model."""


class Uint8InputConst(UintQuant, ActQuantSolver):
    """Unsigned 8-bit input on the grid 2**-8: x_q = clip(round(x * 256), 0, 255) / 256, i.e.
    exactly the ABC first layer's ``InputQuant(8)``. Constant scale: Brevitas derives it as
    max_val / (2**8 - 1) = 2**-8 (exact in float32)."""

    bit_width = INPUT_BITS
    scaling_impl_type = ScalingImplType.CONST
    restrict_scaling_type = RestrictValueType.FP
    scaling_per_output_type = ScalingPerOutputType.TENSOR
    max_val = (2 ** INPUT_BITS - 1) * INPUT_SCALE


def _conv(cin: int, cout: int) -> QuantConv2d:
    return QuantConv2d(cin, cout, KERNEL, bias=False, weight_quant=SignedBinaryWeightPerTensorConst)


def _linear(fin: int, fout: int) -> QuantLinear:
    return QuantLinear(fin, fout, bias=False, weight_quant=SignedBinaryWeightPerTensorConst)


def _binary_act() -> QuantIdentity:
    return QuantIdentity(act_quant=SignedBinaryActPerTensorConst)


class StockBinaryLeNet(ABCModel):
    """``lenet`` with Brevitas' stock binary quantizers (see module docstring)."""

    default_input_shape = (1, 28, 28)

    def __init__(self, config: Mapping):
        super().__init__(config)
        c_in = self.input_shape[0]
        fc, fh, fw = lenet_feature_shape(self.input_shape, name=self.name)
        c1, c2 = CHANNELS
        self.features = nn.Sequential(
            QuantIdentity(act_quant=Uint8InputConst),
            _conv(c_in, c1), nn.BatchNorm2d(c1), _binary_act(), nn.MaxPool2d(2),
            _conv(c1, c2), nn.BatchNorm2d(c2), _binary_act(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            _linear(fc * fh * fw, HIDDEN), nn.BatchNorm1d(HIDDEN), _binary_act(),
            _linear(HIDDEN, self.num_classes), nn.BatchNorm1d(self.num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


STOCK_MODELS = {"lenet": StockBinaryLeNet}


def build_stock_binary_model(name: str = "lenet", num_classes: int = 10, *,
                             input_shape=None) -> ABCModel:
    """Build topology ``name`` (only ``lenet``) with Brevitas' stock binary quantizers.

    ``input_shape`` defaults to the zoo model's (1, 28, 28). Raises UsageError for an unknown
    name, a bad ``num_classes`` or an input shape the topology cannot take.
    """
    if name not in STOCK_MODELS:
        raise UsageError(f"no stock Brevitas binary variant of model '{name}'",
                         fix=f"stock binary models: {', '.join(sorted(STOCK_MODELS))}")
    check_num_classes(num_classes)
    shape = check_input_shape(STOCK_MODELS[name].default_input_shape if input_shape is None else input_shape)
    config = {"name": name, "weight_bases": STOCK_BINARY, "act_bases": STOCK_BINARY, "scale_grid": None,
              "scale_bits": None, "num_classes": num_classes, "input_shape": list(shape)}
    return STOCK_MODELS[name](config)


def stock_from_config(config: Mapping) -> ABCModel:
    """Rebuild a stock binary model from its config (keys already checked); UsageError if the
    values are not those :func:`build_stock_binary_model` writes."""
    if config["weight_bases"] != STOCK_BINARY or config["act_bases"] != STOCK_BINARY:
        raise UsageError(f"a stock binary model has weight_bases = act_bases = '{STOCK_BINARY}', got "
                         f"{config['weight_bases']!r} / {config['act_bases']!r}")
    if config["scale_grid"] is not None or config["scale_bits"] is not None:
        raise UsageError("a stock binary model has scale_grid = scale_bits = None, got "
                         f"{config['scale_grid']!r} / {config['scale_bits']!r}")
    return build_stock_binary_model(config["name"], config["num_classes"], input_shape=config["input_shape"])


__all__ = ["STOCK_BINARY", "StockBinaryLeNet", "Uint8InputConst", "build_stock_binary_model", "stock_from_config"]
