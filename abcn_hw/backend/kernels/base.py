"""What every kernel class answers: its ports' stream formats, cycles, resources and C++ call.

A kernel object is one call of a template of the kernel library (hls/include/abcn) in the
generated top function. Its ports carry :class:`StreamFormat` words; the graph (:mod:`..graph`)
joins ports with streams, and the passes (:mod:`..passes`) compare formats to insert width
converters. Kernels that forward words unchanged in layout (max-pool, fork) take their format from
their producer (:meth:`Kernel.upstream_format`), so folding a layer changes every stream it feeds.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..cpp import Cpp


@dataclass(frozen=True)
class StreamFormat:
    """Words of a stream. ``bits``: ``n`` activation bases of ``per_word`` elements each, base-major
    (bit n*per_word + j = base n, element j). ``int``: ``per_word`` two's-complement fields of ``n``
    bits (field j = channel fold*per_word + j)."""

    kind: str        # "bits" or "int"
    n: int           # bases (bits) or field bits (int)
    per_word: int    # elements (channels) per word and base

    @property
    def width(self) -> int:
        return self.n * self.per_word


class Kernel:
    """Base class. Subclasses set ``kind`` (the stage kind of io.json / report.json) and implement
    the port formats, :meth:`cycles` and :meth:`call`."""

    kind = "?"
    n_inputs = 1
    n_outputs = 1

    def __init__(self, ident: str, layer) -> None:
        self.ident = ident        # safe C++ identifier stem (names.layer_id + suffix)
        self.layer = layer        # the frontend layer (ir.MatrixLayer / ir.PoolLayer / ...) it implements
        self.graph = None         # set by HwGraph users (build_graph) for kernels reading their producer

    @property
    def layers(self) -> tuple:
        """The frontend layers the kernel implements (a fused kernel: several; ``layer`` first)."""
        return (self.layer,)

    # -- streams ------------------------------------------------------------------------------------
    def in_format(self, port: int = 0) -> StreamFormat:
        raise NotImplementedError

    def out_format(self, port: int = 0) -> StreamFormat:
        raise NotImplementedError

    def in_width(self, port: int = 0) -> int:
        return self.in_format(port).width

    def out_width(self, port: int = 0) -> int:
        return self.out_format(port).width

    def upstream_format(self, port: int = 0) -> StreamFormat:
        e = self.graph.in_edge(self, port)
        return e.src.out_format(e.src_port) if e.src is not None else e.dst.in_format(port)

    def in_words(self) -> int:
        """Input words per image (of port 0)."""
        raise NotImplementedError

    def out_words(self) -> int:
        """Output words per image (of port 0)."""
        raise NotImplementedError

    # -- timing and resources --------------------------------------------------------------------------
    def cycles(self) -> int:
        """Loop iterations per image (cycles at II=1); abcn::IterCounter counts the same in C simulation."""
        raise NotImplementedError

    def token_program(self):
        """The kernel's words per loop iteration for the FIFO sizing (passes.fifo_sizing.TokenProgram,
        or a tuple of them for a kernel of several loops chained by internal streams), ports in the
        order of its streams; derived from the loop structure of its C++ template."""
        raise NotImplementedError(f"{type(self).__name__} has no token program")

    #: IterCounter calls per kernel call (a kernel that runs two loops counts twice)
    counter_calls = 1

    def resources(self) -> dict:
        """{"lut": ..., "bram18": ...}: estimates (nothing is synthesised here)."""
        return {"lut": 0, "bram18": 0}

    # -- code ------------------------------------------------------------------------------------------
    def call(self, c: Cpp, ins: list[str], outs: list[str], counter: str) -> None:
        """Print the kernel call reading streams ``ins`` and writing ``outs``."""
        raise NotImplementedError

    def top_pragmas(self, c: Cpp) -> None:
        """Pragmas the kernel needs at the top of the dataflow function (array partitions)."""

    def param_files(self) -> dict[str, str]:
        """Generated source files the kernel needs (``src/...`` path -> text)."""
        return {}

    def includes(self) -> list[str]:
        """Generated headers the top function includes for this kernel."""
        return []

    def tap(self) -> dict | None:
        """Per-layer dump description when the kernel's output stream is a lowered tensor."""
        return None

    def taps(self) -> list[tuple[int, dict]]:
        """(output port, dump description) of every output stream that is a lowered tensor."""
        t = self.tap()
        return [] if t is None else [(0, t)]
