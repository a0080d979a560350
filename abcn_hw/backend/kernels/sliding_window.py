"""Sliding-window generator (abcn::SlidingWindowRect, sliding_window.hpp) in front of a
convolution's MVU: a feature map of CF = C/SIMD words per pixel in, the KH*KW*CF words of every
window out (same word format; padding words are 0 bits / 0 pixels).

Cycles: ``min(KH-PT, H)*W*CF + OH*max(OW*KH*KW*CF, SH*W*CF)`` (mirror of
abcn::sliding_window_rect_iters)."""
from __future__ import annotations

from ..cpp import Cpp, targs
from ..ir import ConvGeom
from .base import Kernel, StreamFormat


def sliding_window_iters(g: ConvGeom, cf: int) -> int:
    """Mirror of abcn::sliding_window_rect_iters for a ConvGeom and CF words per pixel."""
    return min(g.kh - g.pt, g.ifm_h) * g.ifm_w * cf + g.ofm_h * max(g.ofm_w * g.kh * g.kw * cf, g.sh * g.ifm_w * cf)


def window_targs(g: ConvGeom, cf: int, word_w: int) -> str:
    return targs(g.ifm_h, g.ifm_w, cf, word_w, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl, g.pb, g.pr)


class SlidingWindow(Kernel):
    """The window generator of matrix layer ``layer`` (its geometry and SIMD)."""

    kind = "swg"

    def __init__(self, layer) -> None:
        super().__init__(f"{layer.ident}_swg", layer)

    def _format(self) -> StreamFormat:
        lay = self.layer
        return StreamFormat("int", lay.in_bits, lay.simd) if lay.kind == "int" else StreamFormat("bits", lay.n, lay.simd)

    def in_format(self, port: int = 0) -> StreamFormat:
        return self._format()

    def out_format(self, port: int = 0) -> StreamFormat:
        return self._format()

    @property
    def cf(self) -> int:
        return self.layer.c_in // self.layer.simd

    def in_words(self) -> int:
        g = self.layer.geom
        return g.ifm_h * g.ifm_w * self.cf

    def out_words(self) -> int:
        g = self.layer.geom
        return g.ofm_h * g.ofm_w * g.kh * g.kw * self.cf

    def cycles(self) -> int:
        return sliding_window_iters(self.layer.geom, self.cf)

    def token_program(self):
        from ..passes.fifo_sizing import sliding_window_program

        g = self.layer.geom
        return sliding_window_program(g.ifm_h, g.ifm_w, self.cf, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl, g.pb, g.pr)

    def call(self, c: Cpp, ins: list[str], outs: list[str], counter: str) -> None:
        (src,), (dst,) = ins, outs
        c.line(f"abcn::SlidingWindowRect{window_targs(self.layer.geom, self.cf, self.in_width())}"
               f"({src}, {dst}, images {counter});")
