"""One class per hardware kernel of the library (hls/include/abcn): each owns its stream formats,
cycle and resource estimates and its C++ call (see base.Kernel). ``kernels_for(layer)`` maps a
frontend layer (abcn_hw.backend.ir) onto the chain of kernels implementing it; the passes add the
kernels no layer asks for (width converters, forks)."""
from __future__ import annotations

from ..ir import GlobalSumPoolLayer, IntMaxPoolLayer, IntThresholdLayer, MatrixLayer, PoolLayer, ResidualAddLayer
from .base import Kernel, StreamFormat
from .bit_maxpool import BitMaxPool
from .fork import Fork
from .int_mvu import IntMVU
from .int_pool import GlobalSumPool, IntMaxPool
from .int_threshold import IntThreshold
from .residual_add import ResidualAdd
from .residual_add_threshold import ResidualAddThreshold
from .sliding_window import SlidingWindow
from .width_converter import WidthConverter
from .xnor_mvu import XnorMVU

__all__ = ["BitMaxPool", "Fork", "GlobalSumPool", "IntMVU", "IntMaxPool", "IntThreshold", "Kernel", "ResidualAdd", "ResidualAddThreshold",
           "SlidingWindow", "StreamFormat", "WidthConverter", "XnorMVU", "kernels_for"]


def kernels_for(layer) -> list[Kernel]:
    """The kernels of ``layer`` from its input to its output (one stream between consecutive ones)."""
    if isinstance(layer, MatrixLayer):
        mvu = IntMVU(layer) if layer.kind == "int" else XnorMVU(layer)
        return [SlidingWindow(layer), mvu] if layer.geom else [mvu]
    if isinstance(layer, PoolLayer):
        return [BitMaxPool(layer)]
    single = {ResidualAddLayer: ResidualAdd, IntThresholdLayer: IntThreshold, GlobalSumPoolLayer: GlobalSumPool,
              IntMaxPoolLayer: IntMaxPool}
    if type(layer) in single:
        return [single[type(layer)](layer)]
    raise TypeError(f"no kernel implements {type(layer).__name__}")
