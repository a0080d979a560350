"""Passes over the kernel graph (abcn_hw.backend.graph.HwGraph), one module each:

* :func:`layers_to_graph`: frontend layers -> kernels, one stream per (tensor, consumer);
* :func:`insert_forks`: a stream read by several kernels -> a fork kernel (abcn::DuplicateStreams);
* :func:`insert_width_converters`: a producer's word format differs from its consumer's -> a
  width converter.

:func:`build_graph` runs them in that order for a folded network.
"""
from __future__ import annotations

from .insert_forks import insert_forks
from .insert_width_converters import insert_width_converters
from .layers_to_graph import layers_to_graph


def build_graph(net):
    """The checked kernel graph of ``net`` at its current folding (layer.pe / layer.simd)."""
    g = layers_to_graph(net)
    insert_forks(g)
    insert_width_converters(g)
    g.check()
    return g


__all__ = ["build_graph", "insert_forks", "insert_width_converters", "layers_to_graph"]
