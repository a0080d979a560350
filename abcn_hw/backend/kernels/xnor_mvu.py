"""XNOR-popcount matrix-vector unit (abcn::XnorMVU, xnor_mvu.hpp; abcn::XnorConvMVU with the border
correction of a zero-padded convolution, pad_correction.hpp): N-base bit words of N*SIMD bits in,
NOUT*PE threshold bits or PE accumulators out."""
from __future__ import annotations

from ..cpp import Cpp, targs
from .base import StreamFormat
from .mvu import MatrixVectorUnit


class XnorMVU(MatrixVectorUnit):
    kind = "mvu"

    def in_format(self, port: int = 0) -> StreamFormat:
        return StreamFormat("bits", self.layer.n, self.layer.simd)

    def call(self, c: Cpp, ins: list[str], outs: list[str], counter: str) -> None:
        lay = self.layer
        lid = lay.ident
        (src,), (dst,) = ins, outs
        common = (lay.mw, lay.mh, lay.simd, lay.pe, lay.m, lay.n, f"{lid}_act_t")
        if lay.pad_corr is not None:  # zero-padded conv: border correction
            c.line(f"abcn::XnorConvMVU{targs(*common, f'{lid}_corr_t')}({src}, {dst}, {lid}_weights, {lid}_act, "
                   f"{lid}_corr, {self.reps()} {counter});")
            return
        c.line(f"abcn::XnorMVU{targs(*common)}({src}, {dst}, {lid}_weights, {lid}_act, {self.reps()} {counter});")
