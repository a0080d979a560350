"""Residual networks through the dataflow-graph backend: the zoo's resnet8 (exact integer joins,
docs/residual-networks.md) compiles to forks, residual adds, fused add-and-thresholds, integer
thresholds and a global sum pool, and its C simulation equals the lowered graph on every output element, with every kernel's
iteration counter equal to its cycle estimate (both input shapes, several M, N)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from abcn_hw.backend import compile
from abcn_hw.sim import verify


def _resnet8(m: int, n: int, shape: tuple[int, int, int], path: str) -> tuple[str, np.ndarray]:
    import torch
    from _models import _calibrate, _step, cifar_like, export, mnist

    from abcn_hw.models import build_model

    torch.manual_seed(0)
    model = build_model("resnet8", m, n, input_shape=shape)
    x = mnist("train")[0][:128] if shape == (1, 28, 28) else cifar_like(128, 0)
    _step(model, x)
    _calibrate(model, x, np.random.default_rng(0))
    export(model, shape, path)
    return path, (mnist("test")[0][:6] if shape == (1, 28, 28) else cifar_like(6, 1))


@pytest.mark.parametrize("m,n,shape", [(1, 1, (3, 32, 32)), (2, 3, (1, 28, 28))])
def test_resnet8_compiles_and_verifies_bit_exact(m, n, shape, tmp_path):
    path, x = _resnet8(m, n, shape, str(tmp_path / "r8.onnx"))
    res = compile(path, tmp_path / "b")
    io = json.loads((tmp_path / "b" / "host" / "io.json").read_text())
    kinds = [s["kind"] for s in io["stages"]]
    assert {"fork", "radd", "raddthr", "ithr", "sumpool"} <= set(kinds)
    # the downsampling blocks' input bits feed conv1 and the 1x1 shortcut through a fork; the join
    # reads two accumulator streams of one PE
    g = res.estimate.graph
    forks = [k for k in g.nodes if k.kind == "fork"]
    assert len(forks) == kinds.count("fork") >= 2
    for add in (k for k in g.nodes if k.kind == "radd" and k.n_inputs == 2):
        assert len({e.src.out_format(e.src_port).per_word for e in g.in_edges(add)}) == 1
    top = (tmp_path / "b" / "src" / "top.cpp").read_text()
    assert "abcn::DuplicateStreams<" in top and "abcn::ResidualAdd<" in top and "abcn::GlobalSumPool<" in top
    _check_fused_joins(g, top, io)
    _check_fifo_sizing(g, top)
    v = verify(path, tmp_path / "b", x)
    assert v.bit_exact and v.mismatches == 0, v.summary()
    assert v.lowering_exact and v.contract_ok, v.summary()
    assert v.cycles_match, v.first_cycle_mismatch
    assert v.ok


def _check_fused_joins(g, top: str, io: dict) -> None:
    """Every join whose sum a threshold unit reads is fused with it (passes.fuse_add_threshold):
    no threshold reads a join or a fork of one; the stem's sum, also read by the first identity
    block's join, comes out of the fused kernel's second port (no fork); both sums are dumped and
    checked against the lowered graph (io.json taps)."""
    joins = [k for k in g.nodes if k.kind in ("radd", "raddthr")]
    for k in g.nodes:
        if k.kind == "ithr":
            assert g.producer(k).kind not in ("radd", "raddthr", "fork"), k.ident
    fused = [k for k in joins if k.kind == "raddthr"]
    with_sum = [k for k in fused if k.n_outputs == 2]
    assert with_sum and len(fused) > len(with_sum)
    for k in with_sum:
        assert g.out_edge(k, 1).dst.kind in ("radd", "raddthr")
    assert "abcn::ResidualAddThresholdSum<" in top and "abcn::ResidualAddThreshold<" in top
    tapped = {t["tensor"] for t in io["taps"]}
    assert all(k.layer.out_tensor in tapped and k.thr_layer.out_tensor in tapped for k in with_sum)


def _check_fifo_sizing(g, top: str) -> None:
    """The identity blocks' skip streams (fork or fused join's sum -> join) are sized deeper than 2 and written into the
    project; the exact bounded simulation with the sized depths completes every image at the
    unbounded pipeline's cycle, and a skip stream at depth 2 deadlocks (csim cannot see either)."""
    from abcn_hw.backend.graph import stream_names
    from abcn_hw.backend.passes.fifo_sizing import simulate, token_graph

    names = stream_names(g)
    skips = [e for k in g.nodes if k.kind in ("fork", "raddthr") for e in g.out_edges(k)
             if e.dst is not None and e.dst.kind in ("radd", "raddthr")]
    assert skips and all(e.depth > 2 for e in skips)
    for e in skips:
        assert f"STREAM variable = {names[id(e)]} depth = {e.depth})" in top
    tg = token_graph(g)
    sized = simulate(tg, g.fifo_sizing.depths(), images=2)
    assert not sized.deadlock and sized.image_done == simulate(tg, {n: 1 << 24 for n in tg.edges}, images=2).image_done
    dead = simulate(tg, {**g.fifo_sizing.depths(), names[id(skips[0])]: 2}, images=2)
    assert dead.deadlock and (names[id(skips[0])], "full") in {(b.edge, b.state) for b in dead.blocked}


@pytest.mark.slow
def test_resnet18_m3n3_rounding_joins_compile_and_verify_bit_exact(tmp_path):
    """resnet18 at 32x32 with M = N = 3 (the paper's configuration): some joins' worst-case bound
    passes 2**24 quanta, so they round (docs/residual-networks.md, "Requantising joins"); the export
    equals PyTorch (the exporter checks it), the lowered graph carries rounding ResidualAdds, the
    project instantiates them with a SHIFT, and the C simulation equals the lowered graph on every
    element. The export alone takes minutes on 2 shared cores."""
    import re

    import torch
    from _models import export

    from abcn_hw.models import build_model
    from abcn_hw.models.resnet import join_plans

    torch.manual_seed(0)
    model = build_model("resnet18", 3, 3, input_shape=(3, 32, 32))
    x = np.random.default_rng(0).random((34, 3, 32, 32), dtype=np.float32)
    model.train()  # batch norm calibrated on random inputs, as scripts/bench_resnet18.py
    with torch.no_grad():
        for i in range(0, 32, 16):
            model(torch.from_numpy(x[i:i + 16]))
    model.eval()
    with torch.no_grad():
        model(torch.from_numpy(x[32:]))
    assert any(p.rounds for _, p in join_plans(model)) and all(p.exact for _, p in join_plans(model))
    path = export(model, (3, 32, 32), str(tmp_path / "r18.onnx"))
    compile(path, tmp_path / "b")
    params = "".join(p.read_text() for p in (tmp_path / "b" / "src").glob("params_*.hpp"))
    assert re.search(r"ResidualAddParams<\d+, \d+, [12], \d+, \d+, [1-9]\d*>", params)
    v = verify(path, tmp_path / "b", x[32:])
    assert v.bit_exact and v.mismatches == 0, v.summary()
    assert v.lowering_exact and v.contract_ok and v.ok, v.summary()
