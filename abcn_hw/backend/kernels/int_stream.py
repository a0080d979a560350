"""Common part of the kernels on integer streams (residual.hpp, int_pool.hpp): PE fields per word,
PE taken from the producer (the MVU whose accumulators start the integer stream), words per pixel
C/PE, and the parameter header of the kernels that have parameters."""
from __future__ import annotations

from ..cpp import Cpp
from ..graph import GraphError
from .base import Kernel, StreamFormat
from .mvu import HEADER_NOTE, _guard


def signed_bits(bound: int) -> int:
    """Two's-complement width (>= 2) holding -bound..bound."""
    return max(2, int(bound).bit_length() + 1)


class IntStreamKernel(Kernel):
    """A kernel reading integer streams of its producers' PE (every input must have the same PE)."""

    @property
    def pe(self) -> int:
        pes = {self.upstream_format(p).per_word for p in range(self.n_inputs)}
        if len(pes) != 1:
            raise GraphError(f"{self.ident}: inputs with different PE {sorted(pes)}")
        return pes.pop()

    def in_format(self, port: int = 0) -> StreamFormat:
        f = self.upstream_format(port)
        if f.kind != "int":
            raise GraphError(f"{self.ident}: input {port} is a {f.kind} stream, not integers")
        return f

    @property
    def nf(self) -> int:
        return self.layer.c // self.pe

    def params_header(self, body) -> str:
        """src/params_<id>.hpp with the declarations ``body(c)`` prints."""
        c = Cpp()
        c.comment(HEADER_NOTE)
        c.comment(f"Parameters of layer {self.layer.index} ({self.layer.op}): C={self.layer.c} PE={self.pe}")
        _guard(c, f"ABCN_PARAMS_{self.layer.ident.upper()}_HPP")
        c.line()
        c.raw('#include "config.hpp"')
        c.line()
        body(c)
        c.raw("#endif")
        return c.text()

    def includes(self) -> list[str]:
        return [f"params_{self.layer.ident}.hpp"] if self.param_files() else []
