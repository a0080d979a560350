"""Insert a fork (abcn::DuplicateStreams) where one kernel output port feeds several kernels: a
hardware stream has exactly one reader."""
from __future__ import annotations

from ..graph import HwGraph


def insert_forks(g: HwGraph) -> None:
    from ..kernels import Fork

    for k in [None] + list(g.nodes):
        ports = sorted({e.src_port for e in g.edges if e.src is k})
        for port in ports:
            outs = [e for e in g.edges if e.src is k and e.src_port == port]
            if len(outs) < 2:
                continue
            first = outs[0].dst
            owner = k.layer if k is not None else first.layer
            fork = Fork(f"{owner.ident}_fork", owner, len(outs))
            fork.graph = g
            g.nodes.insert(next(i for i, n in enumerate(g.nodes) if n is first), fork)
            for i, e in enumerate(outs):
                e.src, e.src_port = fork, i
            g.connect(k, fork, port, 0)
