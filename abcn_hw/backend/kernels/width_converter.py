"""Width converter of N-base bit streams (abcn::MultiBaseWidthConverter, stream_utils.hpp):
N*IN_W-bit words in, N*OUT_W-bit words out, per base. Inserted by
:func:`abcn_hw.backend.passes.insert_width_converters` where a producer's PE differs from its
consumer's SIMD. Cycles: ``max(in words, out words)`` per image."""
from __future__ import annotations

from ..cpp import Cpp, targs
from .base import Kernel, StreamFormat


class WidthConverter(Kernel):
    kind = "wc"

    def __init__(self, ident: str, layer, fin: StreamFormat, fout: StreamFormat, elements: int) -> None:
        super().__init__(ident, layer)
        if fin.kind != "bits" or fout.kind != "bits" or fin.n != fout.n:
            raise ValueError(f"no width converter from {fin} to {fout}")
        self.fin, self.fout = fin, fout
        self.elements = elements      # elements per base and image

    def in_format(self, port: int = 0) -> StreamFormat:
        return self.fin

    def out_format(self, port: int = 0) -> StreamFormat:
        return self.fout

    def in_words(self) -> int:
        return self.elements // self.fin.per_word

    def out_words(self) -> int:
        return self.elements // self.fout.per_word

    def cycles(self) -> int:
        return max(self.in_words(), self.out_words())

    def token_program(self):
        from ..passes.fifo_sizing import width_converter_program

        return width_converter_program(self.fin.per_word, self.fout.per_word, self.in_words())

    def call(self, c: Cpp, ins: list[str], outs: list[str], counter: str) -> None:
        (src,), (dst,) = ins, outs
        c.line(f"abcn::MultiBaseWidthConverter{targs(self.fin.n, self.fin.per_word, self.fout.per_word, self.in_words())}"
               f"({src}, {dst}, images {counter});")
