"""Integer-input matrix-vector unit (abcn::IntMVU, input_layer.hpp): the first layer of a network
whose input is integer pixels, SIMD fields of IN_BITS bits per word."""
from __future__ import annotations

from ..cpp import Cpp, targs
from .base import StreamFormat
from .mvu import MatrixVectorUnit


class IntMVU(MatrixVectorUnit):
    kind = "imvu"

    def in_format(self, port: int = 0) -> StreamFormat:
        return StreamFormat("int", self.layer.in_bits, self.layer.simd)

    def call(self, c: Cpp, ins: list[str], outs: list[str], counter: str) -> None:
        lay = self.layer
        lid = lay.ident
        (src,), (dst,) = ins, outs
        fn = "abcn::IntMVU" + targs(lay.mw, lay.mh, lay.simd, lay.pe, lay.m, lay.in_bits, bool(lay.in_signed),
                                    f"{lid}_act_t")
        c.line(f"{fn}({src}, {dst}, {lid}_weights, {lid}_act, {self.reps()} {counter});")
