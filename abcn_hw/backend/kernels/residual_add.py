"""Residual join (abcn::ResidualAdd, residual.hpp): ``y = rshift(s0*x0 [+ s1*x1] + t, SHIFT)`` per
channel on integer streams of PE fields, exact (rshift: round half to even, a join's
requantisation; SHIFT 0: none); one input for the stem's affine or a requantisation. Output fields of OUT_W bits,
OUT_W from the bound the frontend derives from the input ranges. Cycles: PIXELS*C/PE per image.
Resources (estimate): per PE lane K multipliers-adders of (S_W + IN_W) bits and one of OUT_W."""
from __future__ import annotations

import numpy as np

from ..cpp import Cpp, const_params, targs
from .base import StreamFormat
from .int_stream import IntStreamKernel, signed_bits
from .mvu import fold_channels


def join_param_bits(layer) -> tuple[int, int]:
    """(S_W, T_W): the two's-complement widths of a join's multipliers s and offsets t."""
    return signed_bits(int(np.abs(layer.s).max())), signed_bits(int(np.abs(layer.t).max()))


def join_params(c: Cpp, lay, pe: int) -> None:
    """The join's parameter object ``<id>_add`` (abcn::ResidualAddParams) and its type ``<id>_add_t``."""
    lid = lay.ident
    shift = (lay.shift,) if lay.shift else ()  # the template's default 0: no rounding
    c.line(f"typedef abcn::ResidualAddParams{targs(lay.c, pe, lay.k, *join_param_bits(lay), *shift)} {lid}_add_t;")
    c.comment("s[pe][nf][k], t[pe][nf]: y = sum_k s * x_k + t for channel nf*PE + pe"
              + (f", rounded: round(y / 2^{lay.shift}) ties to even" if lay.shift else ""))
    const_params(c, f"{lid}_add", f"{lid}_add_t", [("s", fold_channels(lay.s.T, pe), 16),
                                                     ("t", fold_channels(lay.t, pe), 16)])


def join_pragmas(c: Cpp, lay) -> None:
    c.pragma(f"ARRAY_PARTITION variable = {lay.ident}_add.s complete dim = 1")
    c.pragma(f"ARRAY_PARTITION variable = {lay.ident}_add.t complete dim = 1")


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
        return join_param_bits(self.layer)[0]

    @property
    def t_w(self) -> int:
        return join_param_bits(self.layer)[1]

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
        return {"lut": int(1.1 * self.pe * (self.join_lane_bits() + self.out_w)), "bram18": 0}

    def join_lane_bits(self) -> int:
        """Adder bits of one PE lane's products (S_W + IN_W per input)."""
        return sum(self.s_w + self.in_format(p).n for p in range(self.n_inputs))

    def tap(self) -> dict | None:
        lay = self.layer
        return dict(tensor=lay.out_tensor, kind="acc", shape=list(lay.out_shape), w=self.pe, acc_w=self.out_w,
                    layer=lay.ident)

    def param_files(self) -> dict[str, str]:
        return {f"src/params_{self.layer.ident}.hpp": self.params_header(lambda c: join_params(c, self.layer, self.pe))}

    def top_pragmas(self, c: Cpp) -> None:
        join_pragmas(c, self.layer)

    def call(self, c: Cpp, ins: list[str], outs: list[str], counter: str) -> None:
        lay, lid = self.layer, self.layer.ident
        widths = [self.in_format(p).n for p in range(self.n_inputs)]
        ta = targs(lay.c, self.pe, lay.pixels, *widths, self.out_w)
        c.line(f"abcn::ResidualAdd{ta}({', '.join(ins)}, {outs[0]}, {lid}_add, images {counter});")
