"""Stream fork (abcn::DuplicateStreams): every word of the input written to both outputs, e.g. a
residual block's input bits read by conv1 and the 1x1 shortcut, or a residual value read by the
next threshold and the skip. Inserted by :func:`abcn_hw.backend.passes.insert_forks`; it takes its
producer's word format. Cycles: one per word."""
from __future__ import annotations

from ..cpp import Cpp, targs
from .base import Kernel, StreamFormat


class Fork(Kernel):
    kind = "fork"
    n_outputs = 2

    def __init__(self, ident: str, layer, outputs: int = 2) -> None:
        super().__init__(ident, layer)
        if outputs != 2:
            raise ValueError(f"a fork has two outputs, not {outputs}")

    def in_format(self, port: int = 0) -> StreamFormat:
        return self.upstream_format()

    def out_format(self, port: int = 0) -> StreamFormat:
        return self.upstream_format()

    def in_words(self) -> int:
        e = self.graph.in_edge(self)
        return e.src.out_words() if e.src is not None else e.dst.in_words()

    def out_words(self) -> int:
        return self.in_words()

    def cycles(self) -> int:
        return self.in_words()

    def token_program(self):
        from ..passes.fifo_sizing import fork_program

        return fork_program(self.in_words(), outputs=self.n_outputs)

    def resources(self) -> dict:
        return {"lut": self.in_width(), "bram18": 0}

    def call(self, c: Cpp, ins: list[str], outs: list[str], counter: str) -> None:
        (src,), (d0, d1) = ins, outs
        c.line(f"abcn::DuplicateStreams{targs(self.in_width(), self.in_words())}({src}, {d0}, {d1}, images {counter});")
