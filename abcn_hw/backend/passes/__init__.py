"""Passes over the kernel graph (abcn_hw.backend.graph.HwGraph), one module each:

* :func:`layers_to_graph`: frontend layers -> kernels, one stream per (tensor, consumer);
* :func:`fuse_add_threshold`: a residual join whose sum a threshold unit reads -> one fused
  add-and-threshold kernel (also emitting the sum where the next join reads it);
* :func:`insert_forks`: a stream read by several kernels -> a fork kernel (abcn::DuplicateStreams);
* :func:`insert_width_converters`: a producer's word format differs from its consumer's -> a
  width converter;
* :func:`size_graph_fifos` (fifo_sizing.py): every stream's FIFO depth from a cycle-level token
  simulation of the graph (each kernel's ``token_program()``).

:func:`build_graph` runs them in that order for a folded network.
"""
from __future__ import annotations

from .fifo_sizing import size_graph_fifos
from .fuse_add_threshold import fuse_add_threshold
from .insert_forks import insert_forks
from .insert_width_converters import insert_width_converters
from .layers_to_graph import layers_to_graph


def build_graph(net, fifos: bool = True):
    """The checked kernel graph of ``net`` at its current folding (layer.pe / layer.simd); its
    stream depths sized unless ``fifos`` is False (then every stream keeps depth 2)."""
    g = layers_to_graph(net)
    fuse_add_threshold(g)
    insert_forks(g)
    insert_width_converters(g)
    g.check()
    if fifos:
        size_graph_fifos(g)
    return g


__all__ = ["build_graph", "fuse_add_threshold", "insert_forks", "insert_width_converters", "layers_to_graph", "size_graph_fifos"]
