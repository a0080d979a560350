"""Drop-in ABC-Net layers (see layers.py for the padding and exactness rules)."""
from .layers import (INPUT_SCALE, ABCActQuant, ABCBatchNorm, ABCConv2d, ABCLinear, FixedPointBatchNorm, GlobalSumPool2d,
                     InputQuant, bipolar_quant)

__all__ = ["INPUT_SCALE", "ABCActQuant", "ABCBatchNorm", "ABCConv2d", "ABCLinear", "FixedPointBatchNorm",
           "GlobalSumPool2d", "InputQuant", "bipolar_quant"]
