"""The dataflow graph of a design: kernels (nodes) joined by streams (edges).

:class:`HwGraph` is what the passes (:mod:`.passes`) rewrite and what the emitter (:mod:`.emit`)
wires: every node is a kernel object (:mod:`.kernels`, one class per hardware kernel, owning its
stream widths, cycles, resources and C++ call), every edge an ``hls::stream`` with a width (the
producer port's word bits) and a depth (the FIFO depth printed into ``#pragma HLS STREAM``; 2 by
default, set by a FIFO-sizing pass). The accelerator's AXI-stream input and output are edges
without a producer / consumer.

Nothing is addressed by position: an edge knows its two ends (kernel and port), a kernel finds
its edges through the graph, and the schedule is :meth:`HwGraph.topo_order`, a deterministic
topological order (ties broken by insertion order, so a chain keeps its order). Rewrites go
through :meth:`HwGraph.insert_on` (splice a kernel into an edge) and :meth:`HwGraph.connect`.
"""
from __future__ import annotations

from dataclasses import dataclass

#: FIFO depth of a stream no pass has sized (the depth the generated code always had)
DEFAULT_DEPTH = 2


@dataclass(eq=False)
class Edge:
    """A stream from ``src`` port ``src_port`` to ``dst`` port ``dst_port`` (None: the accelerator's
    input / output AXI stream)."""

    src: object | None
    dst: object | None
    src_port: int = 0
    dst_port: int = 0
    depth: int = DEFAULT_DEPTH

    @property
    def width(self) -> int:
        """Word bits: the producer's output port (the accelerator input: the consumer's input port)."""
        return self.src.out_width(self.src_port) if self.src is not None else self.dst.in_width(self.dst_port)

    @property
    def external(self) -> bool:
        return self.src is None or self.dst is None

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        s = getattr(self.src, "ident", "in")
        d = getattr(self.dst, "ident", "out")
        return f"Edge({s}:{self.src_port} -> {d}:{self.dst_port}, {self.width} b, depth {self.depth})"


class GraphError(ValueError):
    """A malformed graph (a bug of a pass or of the frontend, not a user error)."""


class HwGraph:
    def __init__(self) -> None:
        self.nodes: list = []
        self.edges: list[Edge] = []
        self.fifo_sizing = None   # passes.fifo_sizing.SizingResult once the streams are sized

    # -- building ---------------------------------------------------------------------------------
    def add(self, kernel):
        if any(k is kernel for k in self.nodes):
            raise GraphError(f"{kernel.ident} added twice")
        self.nodes.append(kernel)
        return kernel

    def connect(self, src, dst, src_port: int = 0, dst_port: int = 0, depth: int = DEFAULT_DEPTH) -> Edge:
        e = Edge(src, dst, src_port, dst_port, depth)
        self.edges.append(e)
        return e

    def replace(self, old, new) -> None:
        """``new`` takes ``old``'s place in the node list and every stream of ``old`` (same ports)."""
        i = next(i for i, k in enumerate(self.nodes) if k is old)
        self.nodes[i] = new
        for e in self.edges:
            if e.src is old:
                e.src = new
            if e.dst is old:
                e.dst = new

    def remove(self, kernel) -> None:
        """Remove a kernel that no stream touches any more."""
        if any(e.src is kernel or e.dst is kernel for e in self.edges):
            raise GraphError(f"{kernel.ident} still has streams")
        self.nodes = [k for k in self.nodes if k is not kernel]

    def remove_edge(self, e: Edge) -> None:
        self.edges = [x for x in self.edges if x is not e]

    def insert_on(self, e: Edge, kernel) -> None:
        """Splice ``kernel`` (one input, one output) into edge ``e``: src -> kernel -> dst. The
        kernel is placed in the node list right before ``e.dst`` (after ``e.src`` for the output)."""
        if e.dst is not None:
            i = next(i for i, k in enumerate(self.nodes) if k is e.dst)
        else:
            i = next(i for i, k in enumerate(self.nodes) if k is e.src) + 1
        self.nodes.insert(i, kernel)
        idx = next(i for i, x in enumerate(self.edges) if x is e)
        self.edges[idx:idx + 1] = [Edge(e.src, kernel, e.src_port, 0, e.depth), Edge(kernel, e.dst, 0, e.dst_port)]

    # -- queries ----------------------------------------------------------------------------------
    def in_edges(self, k) -> list[Edge]:
        return sorted((e for e in self.edges if e.dst is k), key=lambda e: e.dst_port)

    def out_edges(self, k) -> list[Edge]:
        return sorted((e for e in self.edges if e.src is k), key=lambda e: e.src_port)

    def in_edge(self, k, port: int = 0) -> Edge:
        return next(e for e in self.edges if e.dst is k and e.dst_port == port)

    def out_edge(self, k, port: int = 0) -> Edge:
        return next(e for e in self.edges if e.src is k and e.src_port == port)

    @property
    def input_edge(self) -> Edge:
        return next(e for e in self.edges if e.src is None)

    @property
    def output_edge(self) -> Edge:
        return next(e for e in self.edges if e.dst is None)

    @property
    def internal_edges(self) -> list[Edge]:
        return [e for e in self.edges if not e.external]

    def producer(self, k, port: int = 0):
        return self.in_edge(k, port).src

    def consumers(self, k, port: int = 0) -> list:
        return [e.dst for e in self.edges if e.src is k and e.src_port == port]

    def topo_order(self) -> list:
        """Kernels in a topological order; among ready kernels the first added comes first."""
        indeg = {id(k): len(self.in_edges(k)) - sum(1 for e in self.in_edges(k) if e.src is None) for k in self.nodes}
        pos = {id(k): i for i, k in enumerate(self.nodes)}
        ready = sorted((k for k in self.nodes if indeg[id(k)] == 0), key=lambda k: pos[id(k)])
        order = []
        while ready:
            k = ready.pop(0)
            order.append(k)
            for e in self.out_edges(k):
                if e.dst is None:
                    continue
                indeg[id(e.dst)] -= 1
                if indeg[id(e.dst)] == 0:
                    ready.append(e.dst)
                    ready.sort(key=lambda x: pos[id(x)])
        if len(order) != len(self.nodes):
            raise GraphError("the kernel graph has a cycle")
        return order

    def check(self) -> None:
        """Every kernel port has exactly one stream, one input and one output stream exist, the
        graph is acyclic and both ends of every stream agree on its width."""
        if sum(e.src is None for e in self.edges) != 1 or sum(e.dst is None for e in self.edges) != 1:
            raise GraphError("a design has one input and one output stream")
        for k in self.nodes:
            ins = [e.dst_port for e in self.in_edges(k)]
            outs = [e.src_port for e in self.out_edges(k)]
            if ins != list(range(k.n_inputs)) or outs != list(range(k.n_outputs)):
                raise GraphError(f"{k.ident}: ports in {ins} / out {outs}, expected {k.n_inputs} / {k.n_outputs}")
        for e in self.edges:
            if e.src is not None and e.dst is not None and e.src.out_width(e.src_port) != e.dst.in_width(e.dst_port):
                raise GraphError(f"stream {e!r}: producer writes {e.src.out_width(e.src_port)}-bit words, consumer "
                                 f"reads {e.dst.in_width(e.dst_port)}")
            if not 1 <= e.depth:
                raise GraphError(f"stream {e!r}: depth {e.depth}")
        self.topo_order()

    def kernels_of(self, layer) -> list:
        """The kernels implementing ``layer`` (a frontend layer), in schedule order."""
        return [k for k in self.topo_order() if any(l is layer for l in k.layers)]


def stream_names(graph: "HwGraph") -> dict[int, str]:
    """id(edge) -> C++ name: ``in`` / ``out`` for the AXI streams, ``s<i>_<producer id>[_<port>]``
    (i: the producer's position in the schedule) for the others."""
    names = {}
    for i, k in enumerate(graph.topo_order()):
        for e in graph.out_edges(k):
            if e.dst is None:
                names[id(e)] = "out"
            else:
                names[id(e)] = f"s{i}_{k.ident}" + (f"_{e.src_port}" if k.n_outputs > 1 else "")
    names[id(graph.input_edge)] = "in"
    return names
