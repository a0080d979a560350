"""Insert a width converter on every stream whose producer writes words of another format than
its consumer reads (an MVU's PE output into the next layer's SIMD input; pools and forks pass
their producer's format on). Bit streams only: the N bases stay, the elements per word change."""
from __future__ import annotations

from ..graph import HwGraph
from ..kernels import WidthConverter


def insert_width_converters(g: HwGraph) -> None:
    for e in list(g.edges):
        if e.src is None or e.dst is None:
            continue
        fin, fout = e.src.out_format(e.src_port), e.dst.in_format(e.dst_port)
        if fin == fout:
            continue
        elements = e.dst.in_words() * fout.per_word
        wc = WidthConverter(f"{e.dst.layer.ident}_wc", e.dst.layer, fin, fout, elements)
        wc.graph = g
        g.insert_on(e, wc)
