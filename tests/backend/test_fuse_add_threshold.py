"""The join-and-threshold fusion (abcn_hw.backend.passes.fuse_add_threshold) on hand-built kernel
graphs: what it fuses, how it rewires the streams, and what it must leave alone."""
from __future__ import annotations

import numpy as np

from abcn_hw.backend.graph import HwGraph
from abcn_hw.backend.ir import IntThresholdLayer, ResidualAddLayer
from abcn_hw.backend.kernels import Fork, IntThreshold, Kernel, ResidualAdd, ResidualAddThreshold, StreamFormat
from abcn_hw.backend.passes import fuse_add_threshold, insert_forks

C, PE, SPATIAL, NOUT = 8, 4, (3, 3), 2
WORDS = 9 * C // PE


class _Stub(Kernel):
    """A kernel with fixed formats: ``int`` = an accumulator stream of PE fields of 10 bits (an MVU's
    output), ``bits`` = NOUT activation bases of PE channels."""

    kind = "stub"
    formats = {"int": StreamFormat("int", 10, PE), "bits": StreamFormat("bits", NOUT, PE)}

    def __init__(self, ident: str, fin: str, fout: str) -> None:
        super().__init__(ident, type("L", (), {"ident": ident, "index": 0})())
        self.fi, self.fo = self.formats[fin], self.formats[fout]

    def in_format(self, port=0):
        return self.fi

    def out_format(self, port=0):
        return self.fo

    def in_words(self):
        return WORDS

    out_words = cycles = in_words


def _add(ident: str, k: int) -> ResidualAddLayer:
    rng = np.random.default_rng(len(ident))
    return ResidualAddLayer(0, ident, ident, C, SPATIAL, rng.integers(-3, 4, (k, C)), rng.integers(-5, 6, C),
                            bound=200, out_tensor=f"{ident}_y")


def _thr(ident: str) -> IntThresholdLayer:
    rng = np.random.default_rng(len(ident))
    return IntThresholdLayer(0, ident, ident, C, SPATIAL, np.sort(rng.integers(-50, 50, (NOUT, C)), axis=0),
                             np.ones(C, np.uint8), out_tensor=f"{ident}_bits")


def _graph(kernels, streams) -> HwGraph:
    """``streams``: (producer or None, its port, consumer or None, its port), as layers_to_graph
    connects them (one stream per reader of a tensor)."""
    g = HwGraph()
    for k in kernels:
        k.graph = g
        g.add(k)
    for src, sp, dst, dp in streams:
        g.connect(src, dst, sp, dp)
    return g


def _snapshot(g: HwGraph) -> list:
    return [(e, e.src, e.src_port, e.dst, e.dst_port, e.width, e.depth) for e in g.edges]


def _stem_and_block():
    """in -> stem (int) -> add1 (the stem's affine, 1 input) -> thr1 -> conv (bits -> int) -> add2 (port 0)
    -> thr2 -> head -> out, and add1 -> add2 (port 1): the sum of add1 is read by a threshold and by
    the next join (the identity shortcut), the sum of add2 by a threshold only."""
    stem, conv, head = _Stub("stem", "bits", "int"), _Stub("conv", "bits", "int"), _Stub("head", "bits", "bits")
    add1, thr1 = ResidualAdd(_add("a1", 1)), IntThreshold(_thr("t1"))
    add2, thr2 = ResidualAdd(_add("a2", 2)), IntThreshold(_thr("t2"))
    g = _graph([stem, add1, thr1, conv, add2, thr2, head],
               [(None, 0, stem, 0), (stem, 0, add1, 0), (add1, 0, thr1, 0), (thr1, 0, conv, 0), (conv, 0, add2, 0),
                (add1, 0, add2, 1), (add2, 0, thr2, 0), (thr2, 0, head, 0), (head, 0, None, 0)])
    for e in g.edges:  # depths a pass must carry over
        e.depth = 3 + g.edges.index(e)
    return g, dict(stem=stem, add1=add1, thr1=thr1, conv=conv, add2=add2, thr2=thr2, head=head)


def test_join_read_by_a_threshold_and_the_next_join_becomes_one_kernel_with_two_outputs():
    g, k = _stem_and_block()   # as layers_to_graph leaves it: add1's sum on two streams (no fork yet)
    before = {e: (w, d) for e, *_, w, d in _snapshot(g)}
    formats = {n: k[n].out_format() for n in ("add1", "thr1", "thr2")}
    fuse_add_threshold(g)
    g.check()
    fused = [n for n in g.nodes if isinstance(n, ResidualAddThreshold)]
    assert len(fused) == 2 and not any(type(n) in (ResidualAdd, IntThreshold) for n in g.nodes)
    f1, f2 = fused
    assert [n.ident for n in g.topo_order()] == ["stem", "a1_addthr", "conv", "a2_addthr", "head"]
    # the first join: its sum still read by the second join (port 1), the bits by conv (port 0)
    assert (f1.layer, f1.thr_layer, f1.emit_sum, f1.n_inputs, f1.n_outputs) == (k["add1"].layer, k["thr1"].layer,
                                                                                 True, 1, 2)
    assert g.out_edge(f1, 0).dst is k["conv"] and g.out_edge(f1, 1).dst is f2 and g.out_edge(f1, 1).dst_port == 1
    assert g.producer(f1) is k["stem"]
    # the second: two inputs (conv, the first join's sum), bits only
    assert (f2.layer, f2.thr_layer, f2.emit_sum, f2.n_outputs) == (k["add2"].layer, k["thr2"].layer, False, 1)
    assert g.producer(f2, 0) is k["conv"] and g.producer(f2, 1) is f1 and g.out_edge(f2).dst is k["head"]
    # words: bits where the thresholds wrote them, the sum where the join wrote it
    assert (f1.out_format(0), f1.out_format(1), f2.out_format(0)) == (formats["thr1"], formats["add1"], formats["thr2"])
    assert f1.cycles() == f2.cycles() == WORDS
    # every stream that survives keeps its width and depth; the two join -> threshold streams are gone
    after = {e: (e.width, e.depth) for e in g.edges}
    assert len(g.edges) == len(before) - 2 and all(after[e] == before[e] for e in after)
    # a second run changes nothing; no stream has two readers left: no fork to insert
    nodes, edges = list(g.nodes), _snapshot(g)
    fuse_add_threshold(g)
    assert g.nodes == nodes and _snapshot(g) == edges
    insert_forks(g)
    assert not any(isinstance(n, Fork) for n in g.nodes)


def test_a_join_read_only_by_its_threshold_keeps_one_output():
    src, head = _Stub("src", "bits", "int"), _Stub("head", "bits", "bits")
    add, thr = ResidualAdd(_add("a", 1)), IntThreshold(_thr("t"))
    g = _graph([src, add, thr, head], [(None, 0, src, 0), (src, 0, add, 0), (add, 0, thr, 0), (thr, 0, head, 0),
                                       (head, 0, None, 0)])
    fuse_add_threshold(g)
    g.check()
    (f,) = [n for n in g.nodes if isinstance(n, ResidualAddThreshold)]
    assert not f.emit_sum and f.n_outputs == 1 and [n.ident for n in g.topo_order()] == ["src", "a_addthr", "head"]
    assert f.graph is g and g.out_edge(f).dst is head and g.producer(f) is src


def test_what_must_not_fuse():
    # a join whose sum two threshold units read (each with its own thresholds); a threshold unit
    # reading a stream that is not a join's; a join no threshold reads; a fused kernel (not re-fused)
    src = _Stub("src", "bits", "int")
    add, ta, tb = ResidualAdd(_add("a", 1)), IntThreshold(_thr("ta")), IntThreshold(_thr("tb"))
    t_direct = IntThreshold(_thr("td"))
    lone = ResidualAdd(_add("lone", 1))
    fused = ResidualAddThreshold(_add("f", 1), _thr("tf"), emit_sum=False)
    cat = _Stub("cat", "bits", "bits")
    g = _graph([src, add, ta, tb, t_direct, lone, fused, cat],
               [(None, 0, src, 0), (src, 0, add, 0), (add, 0, ta, 0), (add, 0, tb, 0), (src, 0, t_direct, 0),
                (src, 0, lone, 0), (lone, 0, fused, 0), (ta, 0, cat, 0), (tb, 0, cat, 1), (t_direct, 0, cat, 2),
                (fused, 0, cat, 3), (cat, 0, None, 0)])
    cat.n_inputs = 4
    nodes, edges = list(g.nodes), _snapshot(g)
    fuse_add_threshold(g)
    assert g.nodes == nodes and _snapshot(g) == edges
