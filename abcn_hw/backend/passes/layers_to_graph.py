"""Frontend layers -> kernel graph: each layer becomes its kernels (kernels.kernels_for), joined in
a chain; a layer's input stream comes from the kernel producing the tensor it reads (the
accelerator input for the network's input tensor), and the network's output tensor goes to the
output stream. A tensor read by several layers gets one edge per reader (insert_forks joins them)."""
from __future__ import annotations

from ..graph import HwGraph
from ..kernels import kernels_for


def layers_to_graph(net) -> HwGraph:
    g = HwGraph()
    producer: dict[str, object] = {net.input.tensor: None}  # lowered tensor -> last kernel writing it
    for layer in net.layers:
        ks = kernels_for(layer)
        for k in ks:
            k.graph = g
            g.add(k)
        for port, t in enumerate(layer.inputs):
            if t not in producer:
                raise ValueError(f"{layer.ident} reads tensor {t!r} before it is computed")
            g.connect(producer[t], ks[0], 0, port)
        for a, b in zip(ks, ks[1:]):
            g.connect(a, b)
        producer[layer.out_tensor] = ks[-1]
    g.connect(producer[net.output_tensor], None)
    return g
