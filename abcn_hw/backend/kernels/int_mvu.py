"""Integer-input matrix-vector unit (abcn::IntMVU, input_layer.hpp): the first layer of a network
whose input is integer pixels, SIMD fields of IN_BITS bits per word."""
from __future__ import annotations

from ..cpp import Cpp, targs
from .base import StreamFormat
from .mvu import MatrixVectorUnit
from .sliding_window import window_targs


class IntMVU(MatrixVectorUnit):
    kind = "imvu"

    def in_format(self, port: int = 0) -> StreamFormat:
        return StreamFormat("int", self.layer.in_bits, self.layer.simd)

    def _targs(self) -> tuple:
        lay = self.layer
        return (lay.mw, lay.mh, lay.simd, lay.pe, lay.m, lay.in_bits, bool(lay.in_signed), f"{lay.ident}_act_t")

    def call(self, c: Cpp, ins: list[str], outs: list[str], counter: str) -> None:
        lid = self.layer.ident
        (src,), (dst,) = ins, outs
        c.line(f"abcn::IntMVU{targs(*self._targs())}({src}, {dst}, {lid}_weights, {lid}_act, {self.reps()} {counter});")

    def call_after_window(self, c: Cpp, swg, src: str, mid: str, dst: str, counters: tuple[str, str]) -> None:
        """The C-simulation fast view's call of this unit fed by its window generator ``swg`` through
        the stream ``mid``: abcn::SlidingWindowIntMVU_csim (input_layer.hpp), one convolution over
        each image, with both kernels' counters (the caller guards it with ABCN_CSIM_FAST and keeps
        the two calls for the synthesis view)."""
        lid = self.layer.ident
        fn = "abcn::SlidingWindowIntMVU_csim" + window_targs(swg.layer.geom, swg.cf, swg.in_width())[:-1] + ", " \
            + targs(*self._targs())[1:]
        c.line(f"{fn}({src}, {mid}, {dst}, {lid}_weights, {lid}_act, images, {self.reps()} {counters[0]} {counters[1]});")
