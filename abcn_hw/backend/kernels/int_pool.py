"""Pools on integer streams (int_pool.hpp): abcn::GlobalSumPool (per channel the sum over the
H*W pixels, written with the image's last pixel; PIXELS*C/PE cycles) and abcn::IntMaxPool (window
generator + IntWindowMax, padding never wins; cycles as BitMaxPoolRect, two counted loops)."""
from __future__ import annotations

from ..cpp import Cpp, targs
from .base import StreamFormat
from .int_stream import IntStreamKernel, signed_bits
from .sliding_window import sliding_window_iters


class GlobalSumPool(IntStreamKernel):
    kind = "sumpool"

    def __init__(self, layer) -> None:
        super().__init__(f"{layer.ident}_sum", layer)

    @property
    def out_w(self) -> int:
        return max(self.in_format().n, signed_bits(self.layer.bound))

    def out_format(self, port: int = 0) -> StreamFormat:
        return StreamFormat("int", self.out_w, self.pe)

    def in_words(self) -> int:
        return self.layer.pixels * self.nf

    def out_words(self) -> int:
        return self.nf

    def cycles(self) -> int:
        return self.in_words()

    def resources(self) -> dict:
        return {"lut": int(1.1 * self.pe * 2 * self.out_w), "bram18": 0}

    def token_program(self):
        from ..passes.fifo_sizing import global_sum_pool_program

        return global_sum_pool_program(self.nf, self.layer.pixels)

    def tap(self) -> dict | None:
        lay = self.layer
        return dict(tensor=lay.out_tensor, kind="acc", shape=list(lay.out_shape), w=self.pe, acc_w=self.out_w,
                    layer=lay.ident)

    def call(self, c: Cpp, ins: list[str], outs: list[str], counter: str) -> None:
        lay = self.layer
        ta = targs(lay.c, self.pe, lay.pixels, self.in_format().n, self.out_w)
        c.line(f"abcn::GlobalSumPool{ta}({ins[0]}, {outs[0]}, images {counter});")


class IntMaxPool(IntStreamKernel):
    kind = "imaxpool"

    def __init__(self, layer) -> None:
        super().__init__(f"{layer.ident}_pool", layer)

    def out_format(self, port: int = 0) -> StreamFormat:
        return self.in_format()

    def in_words(self) -> int:
        g = self.layer.geom
        return g.ifm_h * g.ifm_w * self.nf

    def out_words(self) -> int:
        g = self.layer.geom
        return g.ofm_h * g.ofm_w * self.nf

    def cycles(self) -> int:
        g = self.layer.geom
        return sliding_window_iters(g, self.nf) + g.ofm_h * g.ofm_w * g.kh * g.kw * self.nf

    counter_calls = 2

    def token_program(self):
        from ..passes.fifo_sizing import int_maxpool_program

        g = self.layer.geom
        return int_maxpool_program(g.ifm_h, g.ifm_w, self.nf, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl, g.pb, g.pr)

    def tap(self) -> dict | None:
        lay = self.layer
        return dict(tensor=lay.out_tensor, kind="acc", shape=list(lay.out_shape), w=self.pe,
                    acc_w=self.in_format().n, layer=lay.ident)

    def call(self, c: Cpp, ins: list[str], outs: list[str], counter: str) -> None:
        lay, g = self.layer, self.layer.geom
        ta = targs(g.ifm_h, g.ifm_w, lay.c, self.pe, self.in_format().n, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl, g.pb, g.pr)
        c.line(f"abcn::IntMaxPool{ta}({ins[0]}, {outs[0]}, images {counter});")
