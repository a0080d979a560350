"""Residual join (abcn::ResidualAdd, residual.hpp): ``y = s0*x0 [+ s1*x1] + t`` per channel on
integer streams of PE fields, exact; one input for the stem's affine. Output fields of OUT_W bits,
OUT_W from the bound the frontend derives from the input ranges. Cycles: PIXELS*C/PE per image.
Resources (estimate): per PE lane K multipliers-adders of (S_W + IN_W) bits and one of OUT_W."""
from __future__ import annotations

import numpy as np

from ..cpp import Cpp, const_params, targs
from .base import StreamFormat
from .int_stream import IntStreamKernel, signed_bits
from .mvu import fold_channels


class ResidualAdd(IntStreamKernel):
    kind = "radd"

    def __init__(self, layer) -> None:
        super().__init__(f"{layer.ident}_add", layer)
        self.n_inputs = layer.k

    @property
    def out_w(self) -> int:
        return signed_bits(self.layer.bound)

    @property
    def s_w(self) -> int:
        return signed_bits(int(np.abs(self.layer.s).max()))

    @property
    def t_w(self) -> int:
        return signed_bits(int(np.abs(self.layer.t).max()))

    def out_format(self, port: int = 0) -> StreamFormat:
        return StreamFormat("int", self.out_w, self.pe)

    def in_words(self) -> int:
        return self.layer.pixels * self.nf

    out_words = in_words
    cycles = in_words

    def token_program(self):
        from ..passes.fifo_sizing import elementwise_program

        return elementwise_program(self.in_words(), inputs=self.n_inputs, outputs=self.n_outputs)

    def resources(self) -> dict:
        lane = sum(self.s_w + self.in_format(p).n for p in range(self.n_inputs)) + self.out_w
        return {"lut": int(1.1 * self.pe * lane), "bram18": 0}

    def tap(self) -> dict | None:
        lay = self.layer
        return dict(tensor=lay.out_tensor, kind="acc", shape=list(lay.out_shape), w=self.pe, acc_w=self.out_w,
                    layer=lay.ident)

    def param_files(self) -> dict[str, str]:
        lay, lid = self.layer, self.layer.ident

        def body(c: Cpp) -> None:
            c.line(f"typedef abcn::ResidualAddParams{targs(lay.c, self.pe, lay.k, self.s_w, self.t_w)} {lid}_add_t;")
            c.comment("s[pe][nf][k], t[pe][nf]: y = sum_k s * x_k + t for channel nf*PE + pe")
            const_params(c, f"{lid}_add", f"{lid}_add_t", [("s", fold_channels(lay.s.T, self.pe), 16),
                                                             ("t", fold_channels(lay.t, self.pe), 16)])

        return {f"src/params_{lid}.hpp": self.params_header(body)}

    def top_pragmas(self, c: Cpp) -> None:
        lid = self.layer.ident
        c.pragma(f"ARRAY_PARTITION variable = {lid}_add.s complete dim = 1")
        c.pragma(f"ARRAY_PARTITION variable = {lid}_add.t complete dim = 1")

    def call(self, c: Cpp, ins: list[str], outs: list[str], counter: str) -> None:
        lay, lid = self.layer, self.layer.ident
        widths = [self.in_format(p).n for p in range(self.n_inputs)]
        ta = targs(lay.c, self.pe, lay.pixels, *widths, self.out_w)
        c.line(f"abcn::ResidualAdd{ta}({', '.join(ins)}, {outs[0]}, {lid}_add, images {counter});")
