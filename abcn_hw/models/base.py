"""Shared pieces of the model zoo: the :class:`ABCModel` base class, the model config, the layer
factory every topology builds its layers with, and input-shape arithmetic.

Block convention (all topologies): ``ABCConv2d/ABCLinear -> ABCBatchNorm [-> MaxPool2d]`` and the
*next* ABC layer binarizes that pre-activation with its own N activation bases (the ABC-Net H_v
nonlinearity lives in the next layer's input quantizer, so there is no ReLU/Hardtanh between
blocks). The first layer takes the unsigned 8-bit input; the last is an ABC linear layer producing
the logits, followed by ``ABCBatchNorm(num_classes)`` (the scale-and-shift of BNN-PYNQ's
TensorNorm, per class). With ``weight_bases = act_bases = "float"`` every layer is full precision
and clips its input to [0, 1] (the float analogue of H_v): the reference of the same topology.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

from torch import nn

from ..errors import UsageError
from ..nn import ABCBatchNorm, ABCConv2d, ABCLinear, FixedPointBatchNorm

FLOAT = "float"
"""The value of ``weight_bases`` / ``act_bases`` for the full-precision reference."""

INPUT_BITS = 8
"""Bit width of the first layer's unsigned input (grid 2**-8)."""

CONFIG_KEYS = ("name", "weight_bases", "act_bases", "scale_grid", "scale_bits", "num_classes", "input_shape")
"""The keys of a model config, in this order; nothing else is allowed."""


@dataclass(frozen=True)
class LayerFactory:
    """Makes the layers of one model with its weight bases M, activation bases N and scale grid.

    ``weight_bases = act_bases = None`` makes full-precision layers (the float reference).
    """

    weight_bases: int | None
    act_bases: int | None
    scale_grid: str
    scale_bits: int

    @classmethod
    def from_config(cls, config: Mapping) -> "LayerFactory":
        m, n = config["weight_bases"], config["act_bases"]
        return cls(None if m == FLOAT else m, None if n == FLOAT else n,
                   config["scale_grid"], config["scale_bits"])

    @property
    def is_float(self) -> bool:
        return self.weight_bases is None

    def _quant(self, first: bool) -> dict:
        if self.is_float:
            return dict(weight_bases=None, act_bases=None, input_bits=None)
        q = dict(weight_bases=self.weight_bases, scale_grid=self.scale_grid, scale_bits=self.scale_bits)
        if first:
            q.update(act_bases=None, input_bits=INPUT_BITS)
        else:
            q.update(act_bases=self.act_bases, input_bits=None)
        return q

    def conv(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
             padding: int = 0, *, first: bool = False) -> ABCConv2d:
        """ABC convolution (no bias); ``first`` takes the 8-bit input instead of binarizing it."""
        return ABCConv2d(in_channels, out_channels, kernel_size, stride, padding, **self._quant(first))

    def linear(self, in_features: int, out_features: int, *, first: bool = False) -> ABCLinear:
        """ABC dense layer (no bias); ``first`` takes the 8-bit input instead of binarizing it."""
        return ABCLinear(in_features, out_features, **self._quant(first))

    @staticmethod
    def bn(num_features: int) -> ABCBatchNorm:
        return ABCBatchNorm(num_features)

    def fixed_bn(self, num_features: int) -> ABCBatchNorm:
        """The batch norm of a residual join: a fixed-point affine (scale on the ``fixed`` grid with
        the model's scale bits) for ABC models; a plain one for the float reference."""
        if self.is_float:
            return ABCBatchNorm(num_features)
        return FixedPointBatchNorm(num_features, scale_bits=self.scale_bits)


class ABCModel(nn.Module):
    """Base class of every zoo model.

    ``config`` is a plain JSON-serialisable dict (keys :data:`CONFIG_KEYS`) from which
    :func:`abcn_hw.models.model_from_config` rebuilds the same architecture, so a checkpoint is
    ``{"config": model.config, "state_dict": model.state_dict()}``. The model takes a batch of
    shape ``(B, *input_shape)`` with pixel values in [0, 1] and returns logits ``(B, num_classes)``.
    """

    def __init__(self, config: Mapping):
        super().__init__()
        self._config = copy.deepcopy(dict(config))

    @property
    def config(self) -> dict:
        """A copy of the model config (editing it does not change the model)."""
        return copy.deepcopy(self._config)

    @property
    def name(self) -> str:
        return self._config["name"]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self._config["input_shape"])

    @property
    def num_classes(self) -> int:
        return self._config["num_classes"]

    def extra_repr(self) -> str:
        c = self._config
        return (f"name={c['name']}, M={c['weight_bases']}, N={c['act_bases']}, grid={c['scale_grid']}, "
                f"input_shape={tuple(c['input_shape'])}, num_classes={c['num_classes']}")


# -- input-shape arithmetic ----------------------------------------------------------------------

def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a convolution / pooling window along one axis (may be <= 0)."""
    return (size + 2 * padding - kernel) // stride + 1


def pool_out(size: int, kernel: int = 2) -> int:
    """Output length of ``MaxPool2d(kernel)`` (stride = kernel, no padding, floor)."""
    return size // kernel


def shape_error(name: str, input_shape, needs: str) -> UsageError:
    """The UsageError for an input shape topology ``name`` cannot take."""
    return UsageError(f"model '{name}' cannot take input shape {tuple(input_shape)} (C, H, W)",
                      fix=f"{name} needs {needs}")


# -- argument checks shared by the registry and the stock baseline --------------------------------

def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_input_shape(input_shape) -> tuple[int, int, int]:
    """A (C, H, W) sequence of three positive integers, returned as a tuple; UsageError otherwise."""
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if shape is None or len(shape) != 3 or not all(is_int(v) and v > 0 for v in shape):
        raise UsageError(f"input shape must be three positive integers (C, H, W), got {input_shape!r}")
    return shape


def check_num_classes(num_classes) -> int:
    if not is_int(num_classes) or num_classes < 2:
        raise UsageError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    return num_classes
