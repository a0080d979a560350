"""Integer threshold unit (abcn::IntThreshold, residual.hpp): the NOUT activation bases of an
integer stream (the lowering's IntegerThreshold, MultiBaseThreshold's rule), NOUT*PE bits per
word, base-major like the MVU's threshold output. Cycles: PIXELS*C/PE per image. Resources
(estimate): NOUT comparators of IN_W bits per PE lane, thresholds in LUTRAM."""
from __future__ import annotations

import math

from ..cpp import Cpp, const_params, targs
from .base import StreamFormat
from .int_stream import IntStreamKernel, signed_bits
from .mvu import fold_channels


def threshold_bits(layer) -> int:
    """THR_W: the two's-complement width of a threshold unit's thresholds."""
    return signed_bits(int(abs(layer.thr).max()) if layer.thr.size else 0)


def threshold_lane_bits(layer, in_w: int, nf: int) -> int:
    """LUT bits of one PE lane: NOUT comparators of IN_W bits and their thresholds in LUTRAM."""
    return layer.nout * (in_w + threshold_bits(layer) * math.ceil(nf / 64))


def threshold_params(c: Cpp, lay, pe: int) -> None:
    """The threshold unit's parameter object ``<id>_thr`` (abcn::IntThresholdParams) and its type."""
    lid = lay.ident
    c.line(f"typedef abcn::IntThresholdParams{targs(lay.c, pe, lay.nout, threshold_bits(lay))} {lid}_thr_t;")
    c.comment("thr[pe][nf][j], pos[pe][nf] (1: x >= thr, 0: x <= thr) for channel nf*PE + pe")
    const_params(c, f"{lid}_thr", f"{lid}_thr_t", [("thr", fold_channels(lay.thr.T, pe), 8),
                                                     ("pos", fold_channels(lay.pos, pe), 32)])


def threshold_pragmas(c: Cpp, lay) -> None:
    c.pragma(f"ARRAY_PARTITION variable = {lay.ident}_thr.thr complete dim = 1")
    c.pragma(f"ARRAY_PARTITION variable = {lay.ident}_thr.pos complete dim = 1")


class IntThreshold(IntStreamKernel):
    kind = "ithr"

    def __init__(self, layer) -> None:
        super().__init__(f"{layer.ident}_thr", layer)

    @property
    def thr_w(self) -> int:
        return threshold_bits(self.layer)

    def out_format(self, port: int = 0) -> StreamFormat:
        return StreamFormat("bits", self.layer.nout, self.pe)

    def in_words(self) -> int:
        return self.layer.pixels * self.nf

    out_words = in_words
    cycles = in_words

    def token_program(self):
        from ..passes.fifo_sizing import elementwise_program

        return elementwise_program(self.in_words())

    def resources(self) -> dict:
        return {"lut": int(1.1 * self.pe * threshold_lane_bits(self.layer, self.in_format().n, self.nf)), "bram18": 0}

    def tap(self) -> dict | None:
        lay = self.layer
        return dict(tensor=lay.out_tensor, kind="bits", shape=list(lay.out_shape), w=self.pe, layer=lay.ident)

    def param_files(self) -> dict[str, str]:
        return {f"src/params_{self.layer.ident}.hpp": self.params_header(
            lambda c: threshold_params(c, self.layer, self.pe))}

    def top_pragmas(self, c: Cpp) -> None:
        threshold_pragmas(c, self.layer)

    def call(self, c: Cpp, ins: list[str], outs: list[str], counter: str) -> None:
        lay, lid = self.layer, self.layer.ident
        ta = targs(lay.c, self.pe, lay.pixels, self.in_format().n)
        c.line(f"abcn::IntThreshold{ta}({ins[0]}, {outs[0]}, {lid}_thr, images {counter});")
