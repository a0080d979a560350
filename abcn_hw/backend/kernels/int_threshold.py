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


class IntThreshold(IntStreamKernel):
    kind = "ithr"

    def __init__(self, layer) -> None:
        super().__init__(f"{layer.ident}_thr", layer)

    @property
    def thr_w(self) -> int:
        return signed_bits(int(abs(self.layer.thr).max()) if self.layer.thr.size else 0)

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
        lay = self.layer
        in_w = self.in_format().n
        return {"lut": int(1.1 * self.pe * lay.nout * (in_w + self.thr_w * math.ceil(self.nf / 64))), "bram18": 0}

    def tap(self) -> dict | None:
        lay = self.layer
        return dict(tensor=lay.out_tensor, kind="bits", shape=list(lay.out_shape), w=self.pe, layer=lay.ident)

    def param_files(self) -> dict[str, str]:
        lay, lid = self.layer, self.layer.ident

        def body(c: Cpp) -> None:
            c.line(f"typedef abcn::IntThresholdParams{targs(lay.c, self.pe, lay.nout, self.thr_w)} {lid}_thr_t;")
            c.comment("thr[pe][nf][j], pos[pe][nf] (1: x >= thr, 0: x <= thr) for channel nf*PE + pe")
            const_params(c, f"{lid}_thr", f"{lid}_thr_t", [("thr", fold_channels(lay.thr.T, self.pe), 8),
                                                             ("pos", fold_channels(lay.pos, self.pe), 32)])

        return {f"src/params_{lid}.hpp": self.params_header(body)}

    def top_pragmas(self, c: Cpp) -> None:
        lid = self.layer.ident
        c.pragma(f"ARRAY_PARTITION variable = {lid}_thr.thr complete dim = 1")
        c.pragma(f"ARRAY_PARTITION variable = {lid}_thr.pos complete dim = 1")

    def call(self, c: Cpp, ins: list[str], outs: list[str], counter: str) -> None:
        lay, lid = self.layer, self.layer.ident
        ta = targs(lay.c, self.pe, lay.pixels, self.in_format().n)
        c.line(f"abcn::IntThreshold{ta}({ins[0]}, {outs[0]}, {lid}_thr, images {counter});")
