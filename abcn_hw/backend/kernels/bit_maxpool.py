"""Max-pool of N-base bit feature maps (bit_maxpool.hpp): abcn::BitMaxPool for a non-overlapping
square window without padding (one loop over the input, ``H*W*CF`` cycles), else
abcn::BitMaxPoolRect (window generator + reduction: ``swg + OH*OW*KH*KW*CF`` cycles, two counted
loops). It runs at its producer's word format (CF = C / elements per word), so it never needs a
width converter."""
from __future__ import annotations

from ..cpp import Cpp, targs
from ..ir import ConvGeom, PoolLayer
from .base import Kernel, StreamFormat
from .sliding_window import sliding_window_iters, window_targs


def pool_iters(g: ConvGeom, cf: int) -> tuple[int, int]:
    """(iterations per image, counter calls per kernel call) of the pool kernel for geometry g."""
    if g.square_pool:
        return g.ifm_h * g.ifm_w * cf, 1
    return sliding_window_iters(g, cf) + g.ofm_h * g.ofm_w * g.kh * g.kw * cf, 2


class BitMaxPool(Kernel):
    def __init__(self, layer: PoolLayer) -> None:
        super().__init__(f"{layer.ident}_pool", layer)

    @property
    def kind(self) -> str:
        return "pool" if self.layer.geom.square_pool else "poolrect"

    def in_format(self, port: int = 0) -> StreamFormat:
        return self.upstream_format()

    def out_format(self, port: int = 0) -> StreamFormat:
        return self.upstream_format()

    @property
    def cf(self) -> int:
        return self.layer.c // self.upstream_format().per_word

    def in_words(self) -> int:
        g = self.layer.geom
        return g.ifm_h * g.ifm_w * self.cf

    def out_words(self) -> int:
        g = self.layer.geom
        return g.ofm_h * g.ofm_w * self.cf

    def cycles(self) -> int:
        return pool_iters(self.layer.geom, self.cf)[0]

    @property
    def counter_calls(self) -> int:
        return pool_iters(self.layer.geom, self.cf)[1]

    def token_program(self):
        from ..passes.fifo_sizing import bit_maxpool_program, pool_rect_programs

        g = self.layer.geom
        if g.square_pool:
            return bit_maxpool_program(g.ifm_h, g.ifm_w, self.cf, g.kh)
        return pool_rect_programs(g.ifm_h, g.ifm_w, self.cf, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl, g.pb, g.pr)

    def tap(self) -> dict | None:
        lay = self.layer
        return dict(tensor=lay.out_tensor, kind="bits", shape=list(lay.out_shape), w=self.upstream_format().per_word,
                    layer=lay.ident)

    def call(self, c: Cpp, ins: list[str], outs: list[str], counter: str) -> None:
        (src,), (dst,) = ins, outs
        g, w = self.layer.geom, self.in_width()
        if g.square_pool:
            c.line(f"abcn::BitMaxPool{targs(g.ifm_h, g.ifm_w, self.cf, w, g.kh)}({src}, {dst}, images {counter});")
        else:
            c.line(f"abcn::BitMaxPoolRect{window_targs(g, self.cf, w)}({src}, {dst}, images {counter});")
