"""The model zoo registry: names -> :class:`ModelSpec`, and building / rebuilding models.

    build_model("lenet", 3, 3)                  # ABC-Net with M = 3 weight and N = 3 activation bases
    build_model("cnv", "float", "float")         # full-precision reference of the same topology
    model_from_config(ckpt["config"])            # same architecture as a saved model
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..errors import CheckpointError, UsageError
from ..quant import MAX_BASES
from ..quant.grid import SCALE_GRIDS, check_grid
from .base import CONFIG_KEYS, FLOAT, ABCModel, is_int, check_input_shape, check_num_classes
from .cnv import CNV
from .lenet import LeNet
from .mlp import MLP
from .resnet import ResNet
from .stock import STOCK_BINARY, stock_from_config


@dataclass(frozen=True)
class ModelSpec:
    """One zoo entry. ``builder(config) -> ABCModel`` builds the model from a validated config
    (and raises UsageError for an input shape the topology cannot take)."""

    name: str
    description: str
    input_shape: tuple[int, int, int]
    default_dataset: str
    builder: Callable[[Mapping], ABCModel]


MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec("lenet", "LeNet-style CNN: 2 x (conv5x5 - BN - maxpool), FC 100, FC 10",
              (1, 28, 28), "mnist", LeNet),
    ModelSpec("tfc", "BNN-PYNQ TFC MLP: 3 hidden FC layers of 64", (1, 28, 28), "mnist", MLP),
    ModelSpec("sfc", "BNN-PYNQ SFC MLP: 3 hidden FC layers of 256", (1, 28, 28), "mnist", MLP),
    ModelSpec("lfc", "BNN-PYNQ LFC MLP: 3 hidden FC layers of 1024", (1, 28, 28), "mnist", MLP),
    ModelSpec("cnv", "BNN-PYNQ CNV: 6 unpadded conv3x3 (64,64/128,128/256,256), FC 512, 512, 10",
              (3, 32, 32), "cifar10", CNV),
    ModelSpec("resnet8", "small ResNet: padded conv3x3 stem + 3 basic blocks (16, 32, 64), sum-pool, FC 10; "
              "exact integer residual joins; default on the bundled MNIST subset (CIFAR-10: --dataset cifar10)",
              (1, 28, 28), "mnist", ResNet),
    ModelSpec("resnet18", "ABC-Net paper's ResNet-18: conv7x7/2 stem, max-pool, 4 stages of 2 basic blocks "
              "(64-512), sum-pool, FC; any input size (default 224x224)", (3, 224, 224), "cifar10", ResNet),
)}


def list_models() -> list[ModelSpec]:
    """All zoo entries, in registry order."""
    return list(MODELS.values())


def get_spec(name: str) -> ModelSpec:
    """The zoo entry ``name``; UsageError listing the valid names otherwise."""
    if not isinstance(name, str) or name not in MODELS:
        raise UsageError(f"unknown model {name!r}", fix=f"valid models: {', '.join(MODELS)}")
    return MODELS[name]


def _check_bases(value, what: str) -> None:
    if value == FLOAT and isinstance(value, str):
        return
    if not is_int(value) or not 1 <= value <= MAX_BASES:
        raise UsageError(f"{what} must be an integer in 1..{MAX_BASES} or '{FLOAT}', got {value!r}")


def build_model(name: str, weight_bases: int | str, act_bases: int | str, *, scale_grid: str = "fixed",
                scale_bits: int = 4, num_classes: int = 10, input_shape=None) -> ABCModel:
    """Build zoo model ``name`` as an ABC-Net with M = ``weight_bases`` binary weight bases and
    N = ``act_bases`` binary activation bases (integers 1..8), or the full-precision reference of
    the same topology with ``weight_bases = act_bases = "float"``.

    ``scale_grid`` ("float", "fixed", "pow2") and ``scale_bits`` restrict the scales alpha / beta
    (see :mod:`abcn_hw.quant.grid`); ``input_shape`` (C, H, W) defaults to the spec's. The
    returned model is in training mode; its ``config`` rebuilds it via :func:`model_from_config`.
    Raises UsageError for any invalid argument.
    """
    spec = get_spec(name)
    _check_bases(weight_bases, "weight bases M")
    _check_bases(act_bases, "activation bases N")
    if (weight_bases == FLOAT) != (act_bases == FLOAT):
        raise UsageError(f"weight bases M = {weight_bases!r} and activation bases N = {act_bases!r}: "
                         f"the float reference needs both '{FLOAT}'",
                         fix=f"use M = N = '{FLOAT}', or integers 1..{MAX_BASES} for both")
    if not isinstance(scale_grid, str) or scale_grid not in SCALE_GRIDS:
        raise UsageError(f"unknown scale grid {scale_grid!r}", fix=f"use one of {', '.join(SCALE_GRIDS)}")
    if not is_int(scale_bits):
        raise UsageError(f"scale bits must be an integer 1..16, got {scale_bits!r}")
    check_grid(scale_grid, scale_bits)
    check_num_classes(num_classes)
    shape = check_input_shape(spec.input_shape if input_shape is None else input_shape)
    config = {"name": name, "weight_bases": weight_bases, "act_bases": act_bases, "scale_grid": scale_grid,
              "scale_bits": scale_bits, "num_classes": num_classes, "input_shape": list(shape)}
    return spec.builder(config)


def model_from_config(config: Mapping) -> ABCModel:
    """Rebuild the architecture a model ``config`` describes (an ABC zoo model or the stock
    Brevitas baseline), freshly initialised: load the weights with ``load_state_dict``.

    Raises CheckpointError if ``config`` is not a dict with exactly the keys
    :data:`~abcn_hw.models.base.CONFIG_KEYS` or its values do not describe a valid model.
    """
    where = "model config"
    if not isinstance(config, Mapping):
        raise CheckpointError(f"model config must be a dict, got {type(config).__name__}", where,
                              "was the checkpoint written by abcn-hw?")
    missing = [k for k in CONFIG_KEYS if k not in config]
    foreign = sorted(repr(k) for k in config if k not in CONFIG_KEYS)
    if missing or foreign:
        parts = []
        if missing:
            parts.append(f"missing keys {', '.join(missing)}")
        if foreign:
            parts.append(f"unknown keys {', '.join(foreign)}")
        raise CheckpointError(f"invalid model config: {'; '.join(parts)}", where,
                              f"a model config has exactly the keys {', '.join(CONFIG_KEYS)}")
    try:
        if STOCK_BINARY in (config["weight_bases"], config["act_bases"]):
            return stock_from_config(config)
        return build_model(config["name"], config["weight_bases"], config["act_bases"],
                           scale_grid=config["scale_grid"], scale_bits=config["scale_bits"],
                           num_classes=config["num_classes"], input_shape=config["input_shape"])
    except UsageError as e:
        raise CheckpointError(f"invalid model config: {e.what}", where, e.fix) from e
