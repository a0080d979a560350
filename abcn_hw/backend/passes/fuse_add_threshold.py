"""Fuse a residual join with the threshold unit reading its sum: a ResidualAdd whose output an
IntThreshold reads becomes one ResidualAddThreshold kernel (abcn::ResidualAddThreshold), the bits
on its output 0. Where the sum is also read elsewhere (the next block's identity shortcut, the
next join), the fused kernel emits it too, on output 1 (abcn::ResidualAddThresholdSum), instead of
a fork splitting the sum. Runs before insert_forks, on the graph layers_to_graph built (a tensor
read by several kernels: one edge per reader)."""
from __future__ import annotations

from ..graph import HwGraph


def fuse_add_threshold(g: HwGraph) -> None:
    from ..kernels import IntThreshold, ResidualAdd, ResidualAddThreshold

    for add in [k for k in g.nodes if type(k) is ResidualAdd]:
        outs = g.out_edges(add)
        reads = [e for e in outs if type(e.dst) is IntThreshold]
        if len(reads) != 1:  # no threshold, or several (each with its own parameters): leave the join alone
            continue
        thr_edge = reads[0]
        thr = thr_edge.dst
        others = [e for e in outs if e is not thr_edge]
        fused = ResidualAddThreshold(add.layer, thr.layer, emit_sum=bool(others))
        fused.graph = g
        g.replace(add, fused)
        for e in g.out_edges(thr):
            e.src, e.src_port = fused, 0
        for e in others:
            e.src_port = 1
        g.remove_edge(thr_edge)
        g.remove(thr)
