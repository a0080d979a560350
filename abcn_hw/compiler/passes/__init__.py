"""Lowering passes (qonnx ``Transformation``s), in pipeline order."""
from .absorb_thresholds import AbsorbThresholds
from .cleanup import (ExtractConvBias, FoldBiasQuant, GemmToMatMul, MoveFlattenBeforeInputQuant, NormaliseOpsets, PruneAnnotations, RemoveDeadNodes, RemoveIdentityOps,
                      UnshareParameterTensors)
from .float_combine import FloatCombineRoundedLayers
from .finalize import AttachFunctions, MakeBatchDynamic
from .lower_layers import LayerRecord, LowerBinaryLayers

__all__ = ["AbsorbThresholds", "ExtractConvBias", "FoldBiasQuant", "GemmToMatMul", "MoveFlattenBeforeInputQuant", "NormaliseOpsets", "RemoveDeadNodes", "RemoveIdentityOps",
           "AttachFunctions", "FloatCombineRoundedLayers", "MakeBatchDynamic", "LayerRecord", "LowerBinaryLayers",
           "PruneAnnotations", "UnshareParameterTensors"]
