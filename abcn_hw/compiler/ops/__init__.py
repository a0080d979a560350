"""Custom ops of the lowered graph (ONNX domain ``abcn_hw.compiler.ops``).

qonnx finds them by importing this module and reading ``custom_op``; onnxruntime runs them through
the model-local functions from :func:`function_protos`. Bit layouts and semantics: docs/lowering.md.
"""
from __future__ import annotations

from onnx import FunctionProto

from ._base import DOMAIN, FUNCTION_OPSET, pack_bits, unpack_bits, zero_pad_correction
from .bit_max_pool import BitMaxPool
from .float_base_quant import FloatBaseQuant
from .float_quant_bits import FloatQuantBits
from .global_sum_pool import GlobalSumPool
from .integer_input_conv import IntegerInputConv
from .integer_input_matmul import IntegerInputMatMul
from .integer_max_pool import IntegerMaxPool
from .integer_threshold import IntegerThreshold
from .multi_base_accumulate import MultiBaseAccumulate
from .multi_base_threshold import MultiBaseThreshold
from .residual_add import ResidualAdd
from .xnor_popcount_conv import XnorPopcountConv
from .xnor_popcount_matmul import XnorPopcountMatMul

custom_op = {
    "XnorPopcountConv": XnorPopcountConv,
    "XnorPopcountMatMul": XnorPopcountMatMul,
    "IntegerInputConv": IntegerInputConv,
    "IntegerInputMatMul": IntegerInputMatMul,
    "MultiBaseAccumulate": MultiBaseAccumulate,
    "MultiBaseThreshold": MultiBaseThreshold,
    "BitMaxPool": BitMaxPool,
    "FloatBaseQuant": FloatBaseQuant,
    "FloatQuantBits": FloatQuantBits,
    "ResidualAdd": ResidualAdd,
    "IntegerThreshold": IntegerThreshold,
    "GlobalSumPool": GlobalSumPool,
    "IntegerMaxPool": IntegerMaxPool,
}

_FUNCTIONS: dict[str, list[FunctionProto]] = {}


def function_protos(names: list[str] | None = None) -> list[FunctionProto]:
    """FunctionProtos for the given op names (all ops when None), built once and cached. An op
    with several arities (ResidualAdd) has one function per ``overload``."""
    out = []
    for name in names if names is not None else list(custom_op):
        if name not in _FUNCTIONS:
            _FUNCTIONS[name] = custom_op[name].build_functions()
        for proto in _FUNCTIONS[name]:
            fp = FunctionProto()
            fp.CopyFrom(proto)
            out.append(fp)
    return out


__all__ = ["DOMAIN", "FUNCTION_OPSET", "custom_op", "function_protos", "pack_bits", "unpack_bits", "zero_pad_correction",
           *custom_op]
