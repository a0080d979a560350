"""The dataflow-graph IR (abcn_hw.backend.graph) and its passes, without a C++ build."""
from __future__ import annotations

import ast
from pathlib import Path

import onnx
import pytest

from abcn_hw.backend import emit
from abcn_hw.backend.folding import build_graph, default_folding
from abcn_hw.backend.frontend import build_network
from abcn_hw.backend.graph import DEFAULT_DEPTH, GraphError, HwGraph, stream_names
from abcn_hw.backend.kernels import Fork, Kernel, StreamFormat, WidthConverter
from abcn_hw.backend.passes import insert_forks, insert_width_converters

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"


class _Layer:
    def __init__(self, ident: str) -> None:
        self.ident, self.index = ident, 0


class _K(Kernel):
    """A kernel with fixed bit-stream formats and word counts (64 elements per image and base)."""

    kind = "test"

    def __init__(self, ident: str, w_in: int = 8, w_out: int = 8, n: int = 2) -> None:
        super().__init__(ident, _Layer(ident))
        self.fi, self.fo = StreamFormat("bits", n, w_in), StreamFormat("bits", n, w_out)

    def in_format(self, port=0):
        return self.fi

    def out_format(self, port=0):
        return self.fo

    def in_words(self):
        return 64 // self.fi.per_word

    def out_words(self):
        return 64 // self.fo.per_word

    def cycles(self):
        return max(self.in_words(), self.out_words())


def _graph(*kernels) -> HwGraph:
    g = HwGraph()
    for k in kernels:
        k.graph = g
        g.add(k)
    return g


def test_topological_order_is_deterministic_and_checked():
    a, b, c = _K("a"), _K("b"), _K("c")
    g = _graph(c, a, b)  # insertion order c, a, b; edges a -> b -> c
    g.connect(None, a)
    g.connect(a, b)
    g.connect(b, c)
    g.connect(c, None)
    assert [k.ident for k in g.topo_order()] == ["a", "b", "c"]
    g.check()
    g.connect(c, a, 0, 1)  # a cycle (and a port a does not have)
    with pytest.raises(GraphError):
        g.topo_order()


def test_width_converter_inserted_where_formats_differ():
    a, b = _K("a", w_out=4), _K("b", w_in=16)
    g = _graph(a, b)
    g.connect(None, a)
    g.connect(a, b, depth=5)
    g.connect(b, None)
    with pytest.raises(GraphError, match="4-bit|8-bit|32-bit"):
        g.check()
    insert_width_converters(g)
    g.check()
    order = g.topo_order()
    assert [type(k) for k in order] == [_K, WidthConverter, _K]
    wc = order[1]
    assert (wc.in_width(), wc.out_width(), wc.in_words(), wc.out_words()) == (8, 32, 16, 4)
    assert g.in_edge(wc).depth == 5 and g.out_edge(wc).depth == DEFAULT_DEPTH  # the sized FIFO stays in front


def test_fork_inserted_for_a_stream_with_two_readers():
    a, b, c, d = _K("a"), _K("b"), _K("c"), _K("d")
    d.n_inputs = 2
    g = _graph(a, b, c, d)
    g.connect(None, a)
    g.connect(a, b)
    g.connect(a, c)  # a's output read twice: two edges from one port
    g.connect(b, d, 0, 0)
    g.connect(c, d, 0, 1)
    g.connect(d, None)
    with pytest.raises(GraphError):
        g.check()
    insert_forks(g)
    g.check()
    (fork,) = [k for k in g.nodes if isinstance(k, Fork)]
    assert g.producer(fork) is a and [e.dst for e in g.out_edges(fork)] == [b, c]
    assert fork.in_words() == 8 and fork.out_format(1) == a.out_format()
    names = stream_names(g)
    assert sorted(names[id(e)] for e in g.out_edges(fork)) == ["s1_a_fork_0", "s1_a_fork_1"]


def test_edge_depth_reaches_the_generated_stream_pragma():
    net = build_network(onnx.load(str(GOLDEN / "tfc.lowered.onnx")))
    g = build_graph(net, default_folding(net))
    inner = g.internal_edges
    assert inner and all(e.depth == DEFAULT_DEPTH for e in inner)
    inner[1].depth = 37
    top = emit.top_source(net, g)
    name = stream_names(g)[id(inner[1])]
    assert f"ABCN_HLS(STREAM variable = {name} depth = 37);" in top
    assert top.count("depth = 2);") == len(inner) - 1


def _imports(p: Path) -> list[str]:
    """Modules ``p`` imports (relative ones with their leading dots), at any depth of the file."""
    mods = []
    for node in ast.walk(ast.parse(p.read_text())):
        if isinstance(node, ast.ImportFrom):
            mods.append(("." * node.level) + (node.module or ""))
        elif isinstance(node, ast.Import):
            mods += [a.name for a in node.names]
    return mods


def test_passes_and_kernels_never_import_the_emitter():
    """The import arrows point down the backend: the graph passes and the kernel classes do not
    import the code generation around them (emit, project), which imports them."""
    root = Path(__file__).resolve().parents[2] / "abcn_hw" / "backend"
    bad = [f"{p.relative_to(root)}: {m}" for sub in ("passes", "kernels") for p in (root / sub).rglob("*.py")
           for m in _imports(p) if m.lstrip(".").split(".")[-1] in ("emit", "project")]
    assert bad == []


def test_backend_never_imports_sim():
    root = Path(__file__).resolve().parents[2] / "abcn_hw" / "backend"
    bad = []
    for p in root.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom):
                mod = ("." * node.level) + (node.module or "")
                if "sim" in mod.split(".") or mod.startswith("abcn_hw.sim"):
                    bad.append(f"{p.name}: {mod}")
            elif isinstance(node, ast.Import):
                bad += [f"{p.name}: {a.name}" for a in node.names if a.name.startswith("abcn_hw.sim")]
    assert bad == []
