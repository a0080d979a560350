"""Token simulation and FIFO sizing (abcn_hw.backend.passes.fifo_sizing): hand-computed pipelines,
deadlock reports, sized depths checked by the exact bounded simulation, and the chain stages'
programs against the cycle formulas of the estimates."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from abcn_hw.backend.ir import ConvGeom
from abcn_hw.backend.kernels.bit_maxpool import pool_iters
from abcn_hw.backend.kernels.sliding_window import sliding_window_iters
from abcn_hw.backend.passes.fifo_sizing import (TokenGraph, TokenProgram, _bounded, _Prepared, _simulate_events,
                                                bit_maxpool_program, elementwise_program, fifo_resources, fork_program,
                                                global_sum_pool_program, mvu_program, pool_rect_programs, simulate,
                                                size_fifos, sliding_window_program, token_graph,
                                                width_converter_program)

from _fifo_reference import dense_sizing, random_token_graph, width_converter_loop

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"


def fork_join(words: int, branch: TokenProgram, skip_depth=None, fork_latency=0, join_latency=0) -> TokenGraph:
    """in -> fork -(a)-> branch -(b)-> join(b, skip) -> out, fork -(skip)-> join."""
    g = TokenGraph()
    g.add_source("src", words)
    g.add("fork", fork_program(words, latency=fork_latency))
    g.add("branch", branch)
    g.add("join", elementwise_program(words, inputs=2, latency=join_latency))
    g.add_sink("sink", words)
    g.connect("in", "src", 0, "fork", 0)
    g.connect("a", "fork", 0, "branch", 0)
    g.connect("skip", "fork", 1, "join", 1, depth=skip_depth)
    g.connect("b", "branch", 0, "join", 0)
    g.connect("out", "join", 0, "sink", 0)
    return g


@pytest.mark.parametrize("lat", [0, 1, 4, 10, 37])
def test_skip_fifo_of_a_latency_branch_is_latency_plus_3(lat):
    # By hand (all kernels one word per iteration): the source writes word k at cycle k; the fork
    # (latency 0) reads it at k+1 and writes both outputs at k+1; the branch reads word k at k+2 and
    # writes it at k+2+L; the join reads both at k+3+L. Skip word k lives from k+1 to k+3+L:
    # L+3 words at once. Every other stream moves one word per cycle: depth 2.
    n = 60
    g = fork_join(n, elementwise_program(n, latency=lat))
    res = size_fifos(g)
    assert res.edges["skip"].needed == lat + 3 and res.edges["skip"].depth == max(2, lat + 3)
    assert all(res.edges[e].depth == 2 for e in ("in", "a", "b", "out"))
    # the last word of image i leaves the sink at cycle i*n + (n-1) + 4 + L (one word per cycle)
    assert res.latency_cycles == n + 4 + lat and res.interval_cycles == n
    full = simulate(g, res.depths(), images=3)
    assert not full.deadlock and full.image_done == [i * n + n + 3 + lat for i in range(3)]
    assert full.occupancy["skip"] == lat + 3
    if lat + 3 > 2:
        # one word less: the skip FIFO's d words go round fork -> branch -> join in L+3 cycles, so
        # the fork emits d words per L+3 cycles: no deadlock, but not full rate
        slow = simulate(g, {**res.depths(), "skip": lat + 2}, images=3)
        assert not slow.deadlock and slow.image_done[-1] > full.image_done[-1]


def test_undersized_skip_fifo_is_a_deadlock_named_by_edge():
    # The branch is an MVU with SF = 4 input words per vector and NF = 4 output words: it writes its
    # first word after reading 4. Until then the join reads nothing, so the fork must have put words
    # 0..3 on the skip stream as well: depth 3 deadlocks (fork blocked on a full skip FIFO, the MVU
    # on an empty input, the join on an empty branch output; behind them the source on a full input
    # stream and the sink on an empty output), depth 4 does not.
    n = 32
    g = fork_join(n, mvu_program(mw=4, mh=4, simd=1, pe=1, vectors=n // 4))
    dead = simulate(g, {"in": 2, "a": 2, "b": 2, "out": 2, "skip": 3})
    assert dead.deadlock
    states = {(b.edge, b.state) for b in dead.blocked}
    assert states == {("skip", "full"), ("a", "empty"), ("b", "empty"), ("in", "full"), ("out", "empty")}
    assert "skip (fork -> join) full: 3/3 words" in dead.message()
    ok = simulate(g, {"in": 2, "a": 2, "b": 2, "out": 2, "skip": 4})
    assert not ok.deadlock
    # the sizing is never below what the simulation needs, and reaches the unbounded pipeline's times
    res = size_fifos(g)
    assert res.edges["skip"].depth >= 4
    sized = simulate(g, res.depths(), images=3)
    unbounded = simulate(g, {e: 10 ** 6 for e in g.edges}, images=3)
    assert not sized.deadlock and sized.image_done == unbounded.image_done
    assert all(sized.occupancy[e] <= d for e, d in res.depths().items())


@pytest.mark.parametrize("seed", range(6))
def test_sized_depths_reach_the_unbounded_times(seed):
    # random residual-like graphs: fork, a branch of window generator + MVU + width converter, an
    # add joining it with the skip stream; the sized depths reproduce the unbounded pipeline's
    # per-image completion cycles exactly, and every occupancy stays within its depth.
    rng = np.random.default_rng(seed)
    h = w = int(rng.integers(3, 7))
    k = int(rng.choice([1, 3]))
    p = k // 2
    cf = int(rng.choice([1, 2]))
    words = h * w * cf
    simd_mw = int(rng.choice([1, 2])) * cf
    g = TokenGraph()
    g.add_source("src", words)
    g.add("fork", fork_program(words, latency=int(rng.integers(0, 3))))
    g.add("swg", sliding_window_program(h, w, cf, k, k, 1, 1, p, p, p, p))
    g.add("mvu", mvu_program(mw=k * k * cf, mh=cf * 2, simd=1, pe=2, vectors=h * w))  # cf words per pixel out
    g.add("join", elementwise_program(words, inputs=2, latency=int(rng.integers(0, 4))))
    g.add_sink("sink", words)
    g.connect("in", "src", 0, "fork", 0)
    g.connect("a", "fork", 0, "swg", 0)
    g.connect("w", "swg", 0, "mvu", 0)
    g.connect("b", "mvu", 0, "join", 0)
    g.connect("skip", "fork", 1, "join", 1)
    g.connect("out", "join", 0, "sink", 0)
    del simd_mw
    res = size_fifos(g, images=3)
    sized = simulate(g, res.depths(), images=3)
    unbounded = simulate(g, {e: 10 ** 6 for e in g.edges}, images=3)
    assert not sized.deadlock and sized.image_done == unbounded.image_done
    assert sized.latency_cycles == res.latency_cycles and sized.interval_cycles == res.interval_cycles
    assert all(sized.occupancy[e] <= d for e, d in res.depths().items())
    # the skip stream must hold at least the words the window generator reads before its first output
    first_out = int(sliding_window_program(h, w, cf, k, k, 1, 1, p, p, p, p).writes[0][0])
    assert res.edges["skip"].depth >= first_out


# -- programs against the loop structure of the C++ kernels and the cycle estimates ----------------

@pytest.mark.parametrize("geom", [(8, 8, 1, 3, 3, 1, 1, 0, 0, 0, 0), (7, 9, 2, 3, 3, 2, 2, 1, 1, 1, 1),
                                  (6, 6, 3, 5, 3, 1, 2, 2, 1, 0, 1), (5, 5, 1, 1, 1, 1, 1, 0, 0, 0, 0)])
def test_sliding_window_program(geom):
    h, w, cf, kh, kw, sh, sw, pt, pl, pb, pr = geom
    p = sliding_window_program(*geom)
    g = ConvGeom(h, w, kh, kw, sh, sw, pt, pl, pb, pr)
    assert p.iters == sliding_window_iters(g, cf)
    assert p.reads[0].size == h * w * cf
    assert p.writes[0].size == g.ofm_h * g.ofm_w * kh * kw * cf
    # the first window word follows the prologue: min(KH-PT, H) whole rows read
    assert p.writes[0][0] == min(kh - pt, h) * w * cf
    assert np.all(np.searchsorted(p.reads[0], p.writes[0][0]) == min(kh - pt, h) * w * cf)


def test_mvu_and_width_converter_programs():
    p = mvu_program(mw=12, mh=8, simd=4, pe=2, vectors=5)  # SF = 3, NF = 4
    assert p.iters == 5 * 12 and p.reads[0][:4].tolist() == [0, 1, 2, 12]
    assert p.writes[0][:5].tolist() == [2, 5, 8, 11, 14]
    wc = width_converter_program(in_w=4, out_w=6, num_in_words=9)  # 36 elements -> 6 words
    assert wc.iters == 9 and wc.reads[0].tolist() == list(range(9))
    assert wc.writes[0].tolist() == [1, 2, 4, 5, 7, 8]
    down = width_converter_program(in_w=8, out_w=2, num_in_words=3)
    assert down.iters == 12 and down.reads[0].tolist() == [0, 4, 8] and down.writes[0].size == 12
    gsp = global_sum_pool_program(cf=3, pixels=4)
    assert gsp.writes[0].tolist() == [9, 10, 11]


def _chain() -> TokenGraph:
    """in(int, 10x10x1) -> swg 3x3 -> imvu(PE 4, 8 ch) -> pool 2x2 -> swg 3x3 pad 1 -> mvu(SF 18) ->
    BitMaxPoolRect 3x3/2 pad 1 -> wc 4->8 -> fc mvu, as the backend lays them out."""
    progs = [("c0_swg", sliding_window_program(10, 10, 1, 3, 3, 1, 1)),
             ("c0_mvu", mvu_program(mw=9, mh=8, simd=1, pe=4, vectors=64)),
             ("p1_pool", bit_maxpool_program(8, 8, 2, 2)),
             ("c2_swg", sliding_window_program(4, 4, 2, 3, 3, 1, 1, 1, 1, 1, 1)),
             ("c2_mvu", mvu_program(mw=72, mh=8, simd=4, pe=4, vectors=16)),
             ("p3_pool", pool_rect_programs(4, 4, 2, 3, 3, 2, 2, 1, 1, 1, 1)),
             ("f4_wc", width_converter_program(4, 8, 8)),
             ("f4_mvu", mvu_program(mw=32, mh=10, simd=8, pe=1, vectors=1))]
    g = TokenGraph()
    g.add_source("host_in", 100)
    for name, p in progs:
        g.add(name, p)
    g.add_sink("host_out", 10)
    names = ["host_in"] + [n for n, _ in progs] + ["host_out"]
    for i, (a, b) in enumerate(zip(names[:-1], names[1:])):
        g.connect(f"e{i}", a, 0, b, 0)
    return g


def test_chain_pipeline_interval_is_the_slowest_kernel():
    g = _chain()
    cycles = {"c0_swg": sliding_window_iters(ConvGeom(10, 10, 3, 3, 1, 1), 1), "c0_mvu": 64 * 9 * 2,
              "p1_pool": pool_iters(ConvGeom(8, 8, 2, 2, 2, 2), 2)[0],
              "p3_pool": pool_iters(ConvGeom(4, 4, 3, 3, 2, 2, 1, 1, 1, 1), 2)[0], "c2_mvu": 16 * 18 * 2}
    assert g.actors["c0_swg"].iters == cycles["c0_swg"] and g.actors["c0_mvu"].iters == cycles["c0_mvu"]
    assert g.actors["p1_pool"].iters == cycles["p1_pool"]
    assert g.actors["p3_pool.0"].iters + g.actors["p3_pool.1"].iters == cycles["p3_pool"]
    res = size_fifos(g, images=3)
    # the slowest kernel sets the interval of the pipeline, as the estimate's II says
    assert res.interval_cycles == max(p.iters for p in g.actors.values()) == cycles["c0_mvu"]
    # BitMaxPoolRect's own stream (depth 2 in the library) is enough in the sizing schedule
    assert res.edges["p3_pool.0>1"].internal and res.edges["p3_pool.0>1"].needed <= 2
    sized = simulate(g, res.depths(), images=3)
    assert not sized.deadlock and sized.interval_cycles == res.interval_cycles
    assert sized.image_done == simulate(g, {e: 10 ** 6 for e in g.edges}, images=3).image_done
    # a chain never deadlocks, whatever the depths (no two paths meet again)
    assert not simulate(g, {e: 1 for e in g.edges}, images=2).deadlock


@pytest.mark.parametrize("model", ["lenet33", "tfc", "abcpool", "zp"])
def test_kernel_programs_match_their_cycles_and_words(model):
    # every kernel class's token program against its own cycle estimate (the one the C simulation's
    # iteration counters check) and its stream words, on the stored lowered graphs, two foldings
    from abcn_hw.backend.graph import stream_names
    from abcn_hw.backend.folding import auto_folding, build_graph, default_folding
    from abcn_hw.backend.frontend import build_network
    from abcn_hw.backend.project import _load

    net = build_network(_load(str(GOLDEN / f"{model}.lowered.onnx"), None)[0])
    for fold in (default_folding(net), auto_folding(net, 2000.0, 100.0)[0]):
        hw = build_graph(net, fold)
        for k in hw.nodes:
            prog = k.token_program()
            parts = prog if isinstance(prog, tuple) else (prog,)
            assert sum(p.iters for p in parts) == k.cycles(), k.ident
            assert parts[0].reads[0].size == k.in_words() and parts[-1].writes[0].size == k.out_words(), k.ident
        res = hw.fifo_sizing
        g = token_graph(hw)
        assert res.interval_cycles == max(k.cycles() for k in hw.nodes)
        names = stream_names(hw)
        assert all(e.depth == res.edges[names[id(e)]].depth >= 2 for e in hw.internal_edges)
        sized = simulate(g, res.depths(), images=2)
        assert not sized.deadlock and sized.interval_cycles == res.interval_cycles


def test_burst_reader_needs_a_vector_of_buffer_for_full_rate():
    # P reduces 4 words to 1 (one word per 4 cycles, 4V cycles per image); C, a fully connected MVU
    # with SF = V and NF = K, reads the V words of its vector in its first V iterations and then
    # computes for (K-1)*V more: K*V cycles per image, the bottleneck (K > 4). With unbounded
    # FIFOs P's words of image i+1 wait while C computes image i, and C reads them in one burst:
    # interval K*V. C's read burst lasts V cycles, during which P can still write V/4 words (one per
    # 4 cycles, just in time): the other 3V/4 must be in the FIFO when the burst starts. With depth 2,
    # P stalls after 2 words, so C's next read phase runs at P's rate (4 cycles a word) and the
    # interval grows by about 3V. No deadlock either way (a chain).
    v, k = 16, 10
    g = TokenGraph()
    g.add_source("src", 4 * v)
    g.add("P", mvu_program(mw=4, mh=1, simd=1, pe=1, vectors=v))
    g.add("C", mvu_program(mw=v, mh=k, simd=1, pe=1, vectors=1))
    g.add_sink("sink", k)
    g.connect("in", "src", 0, "P", 0)
    g.connect("x", "P", 0, "C", 0)
    g.connect("out", "C", 0, "sink", 0)
    res = size_fifos(g, images=3)
    assert res.interval_cycles == k * v
    assert res.edges["x"].depth == 3 * v // 4
    sized = simulate(g, res.depths(), images=4)
    assert sized.interval_cycles == k * v and sized.image_done == simulate(g, {e: 10 ** 6 for e in g.edges},
                                                                            images=4).image_done
    # one word less and C waits for a word in every burst: the sizing is exact here
    assert simulate(g, {**res.depths(), "x": 3 * v // 4 - 1}, images=4).interval_cycles > k * v
    two = simulate(g, {e: 2 for e in g.edges}, images=4)
    assert not two.deadlock and k * v + 2 * v < two.interval_cycles <= k * v + 4 * v


def test_graph_wiring_errors():
    g = TokenGraph()
    g.add_source("src", 4)
    g.add("x", elementwise_program(5))
    g.add_sink("sink", 5)
    g.connect("in", "src", 0, "x", 0)
    g.connect("out", "x", 0, "sink", 0)
    with pytest.raises(ValueError, match="edge in: src writes 4 words per image, x reads 5"):
        size_fifos(g)
    with pytest.raises(ValueError, match="iterations must increase"):
        TokenProgram(3, ([0, 0],), ())


def test_fifo_resources_rule():
    assert fifo_resources(2, 48) == {"impl": "srl", "lut": 48 + 2 * 2, "bram18": 0}
    assert fifo_resources(32, 10)["impl"] == "srl" and fifo_resources(33, 10)["impl"] == "bram"
    assert fifo_resources(650, 48)["bram18"] == 3   # 650 x 48: depth <= 1024 at 18 bits -> 3 RAMB18
    assert fifo_resources(2048, 1)["bram18"] == 1


def test_compiled_project_uses_the_sized_depths(lenet33):
    _, _, build = lenet33
    fold = json.loads((build / "folding.json").read_text())
    rep = json.loads((build / "report.json").read_text())["estimate"]
    top = (build / "src" / "top.cpp").read_text()
    fifos = {f["stream"]: f for f in rep["fifos"]}
    assert [f["stream"] for f in fold["fifos"]] == list(fifos)
    for f in fold["fifos"]:
        assert f"STREAM variable = {f['stream']} depth = {f['depth']})" in top
        assert fifos[f["stream"]]["depth"] == f["depth"] >= max(2, fifos[f["stream"]]["needed"])
    assert rep["fifo_lut"] == sum(f["lut"] for f in rep["fifos"]) > 0
    assert rep["lut"] == sum(layer["lut"] for layer in rep["layers"]) + rep["fifo_lut"]
    assert rep["token_simulation"]["interval_cycles"] == rep["ii_cycles"]


def test_folding_file_depths_are_used_and_checked(lenet33, tmp_path):
    from abcn_hw.backend import compile
    from abcn_hw.errors import UsageError

    path, _, build = lenet33
    fold = json.loads((build / "folding.json").read_text())
    first = fold["fifos"][0]["stream"]
    fold["fifos"][0]["depth"] = 7
    spec = tmp_path / "fold.json"
    spec.write_text(json.dumps(fold))
    res = compile(build / "host" / "lowered.onnx", tmp_path / "b", folding=str(spec))
    assert f"STREAM variable = {first} depth = 7)" in (tmp_path / "b" / "src" / "top.cpp").read_text()
    assert json.loads((tmp_path / "b" / "folding.json").read_text())["fifos"][0]["depth"] == 7
    assert res.estimate.to_dict()["fifos"][0]["depth"] == 7
    fold["fifos"][0] = {"stream": "nope", "depth": 2}
    spec.write_text(json.dumps(fold))
    with pytest.raises(UsageError, match="bad \"fifos\" entry"):
        compile(build / "host" / "lowered.onnx", tmp_path / "c", folding=str(spec))
    assert not (tmp_path / "c").exists()


def basic_block(h: int, c: int, pe: int, simd: int) -> TokenGraph:
    """A resnet8 basic block on the residual value r (an integer stream of PE fields, C/PE words per
    pixel): fork -> IntThreshold -> window 3x3 pad 1 -> MVU -> window -> MVU (accumulators) ->
    ResidualAdd(conv2, r), the skip stream straight from the fork to the add."""
    px, nf = h * h, c // pe
    words = px * nf
    g = TokenGraph()
    g.add_source("src", words)
    g.add("fork", fork_program(words))
    g.add("thr", elementwise_program(words))
    g.add("wc1", width_converter_program(pe, simd, words))
    g.add("swg1", sliding_window_program(h, h, c // simd, 3, 3, 1, 1, 1, 1, 1, 1))
    g.add("mvu1", mvu_program(mw=9 * c, mh=c, simd=simd, pe=pe, vectors=px))
    g.add("wc2", width_converter_program(pe, simd, words))
    g.add("swg2", sliding_window_program(h, h, c // simd, 3, 3, 1, 1, 1, 1, 1, 1))
    g.add("mvu2", mvu_program(mw=9 * c, mh=c, simd=simd, pe=pe, vectors=px))
    g.add("add", elementwise_program(words, inputs=2))
    g.add_sink("sink", words)
    chain = ["src", "fork", "thr", "wc1", "swg1", "mvu1", "wc2", "swg2", "mvu2", "add", "sink"]
    for a, b in zip(chain[:-1], chain[1:]):
        g.connect(f"{a}>{b}", a, 0, b, 0)
    g.connect("skip", "fork", 1, "add", 1)
    return g


def test_resnet_block_skip_fifo():
    # the first conv's window generator reads 2 whole rows (3x3, pad 1) before its first window:
    # until conv2 writes, the add reads nothing, so the skip stream must hold at least those rows
    h, c, pe, simd = 8, 16, 4, 8
    g = basic_block(h, c, pe, simd)
    res = size_fifos(g, images=3)
    rows2 = 2 * h * (c // pe)            # two rows of r in the skip stream's words
    assert res.edges["skip"].depth > rows2
    assert all(res.edges[e].depth <= rows2 for e in res.edges if e != "skip")
    sized = simulate(g, res.depths(), images=3)
    assert not sized.deadlock and sized.image_done == simulate(g, {e: 10 ** 6 for e in g.edges},
                                                                images=3).image_done
    dead = simulate(g, {**res.depths(), "skip": 2}, images=2)
    assert dead.deadlock and ("skip", "full") in {(b.edge, b.state) for b in dead.blocked}


# -- the fast forms against their references (tests/backend/_fifo_reference.py) ----------------------

def test_width_converter_program_equals_its_loop():
    # the closed form against the kernel's loop, including element counts that do not divide
    for in_w in range(1, 13):
        for out_w in range(1, 13):
            for n in range(0, 20):
                p = width_converter_program(in_w, out_w, n)
                iters, reads, writes = width_converter_loop(in_w, out_w, n)
                assert (p.iters, p.reads[0].tolist(), p.writes[0].tolist()) == (iters, reads, writes), (in_w, out_w, n)


@pytest.mark.parametrize("seed", range(40))
def test_sizing_over_event_iterations_equals_the_dense_recurrences(seed):
    # size_fifos keeps each kernel's schedule only where it moves a word; the recurrences over every
    # iteration give the same depths, occupancies and cycles
    rng = np.random.default_rng(seed)
    g = random_token_graph(rng)
    images = int(rng.integers(1, 4))
    res, ref = size_fifos(g, images), dense_sizing(g, images)
    assert {k: (e.needed, e.depth, e.asap_occupancy) for k, e in res.edges.items()} == ref["edges"]
    assert (res.latency_cycles, res.interval_cycles, res.makespan_cycles) == (ref["latency"], ref["interval"],
                                                                              ref["makespan"])


def test_simulate_equals_the_event_simulation_on_random_graphs():
    # simulate takes the vectorised fixed point where it can prove it is the bounded pipeline's
    # schedule; the event simulation is the reference: the same result (cycles, occupancies, and on
    # a deadlock the same blocked streams) at the sized depths, unbounded, depth 2, random small
    # depths and the sized depths less a little, on graphs with forks and joins
    kinds = {"fixed point": 0, "events": 0, "deadlock": 0}
    for seed in range(60):
        rng = np.random.default_rng(seed)
        g = random_token_graph(rng)
        images = int(rng.integers(1, 4))
        sized = size_fifos(g, images).depths()
        for depths in (sized, {e: 1 << 20 for e in g.edges}, {e: 2 for e in g.edges},
                       {e: int(rng.integers(1, 4)) for e in g.edges},
                       {e: max(1, d - int(rng.integers(0, 3))) for e, d in sized.items()}):
            pg = _Prepared(g, images)
            ref = _simulate_events(pg, dict(depths))
            assert simulate(g, depths, images) == ref, (seed, depths)
            kinds["deadlock"] += ref.deadlock
            settles = _bounded(pg, depths) is not None and _bounded(pg.without_latency(), depths) is not None
            kinds["fixed point" if settles else "events"] += 1
    assert min(kinds.values()) >= 20, kinds   # every path is exercised


def test_deadlock_that_only_the_latencies_hide():
    # fork -> window generator (reads 2 rows of 4 before its first window) -> MVU -> join, and
    # fork -> a 40-cycle pipeline -> join, its two FIFOs 5 words each: the fork fills them before
    # the window branch has the join's first word, and every kernel waits on another (a deadlock of
    # the event simulation). The constraints alone have a finite least solution here (a write may
    # issue up to its latency before the read that frees its slot), so simulate must not take the
    # fixed point with latencies without the one with every latency 0, which never settles.
    h = w = 4
    g = TokenGraph()
    g.add_source("src", h * w)
    g.add("fork", fork_program(h * w))
    g.add("swg", sliding_window_program(h, w, 1, 3, 3, 1, 1, 1, 1, 1, 1))
    g.add("mvu", mvu_program(mw=9, mh=1, simd=1, pe=1, vectors=h * w))
    g.add("delay", elementwise_program(h * w, latency=40))
    g.add("join", elementwise_program(h * w, inputs=2))
    g.add_sink("sink", h * w)
    for name, a, ap, b, bp in [("in", "src", 0, "fork", 0), ("a", "fork", 0, "swg", 0), ("w", "swg", 0, "mvu", 0),
                               ("b", "mvu", 0, "join", 0), ("skip", "fork", 1, "delay", 0),
                               ("skip2", "delay", 0, "join", 1), ("out", "join", 0, "sink", 0)]:
        g.connect(name, a, ap, b, bp)
    depths = {**{e: 2 for e in g.edges}, "skip": 5, "skip2": 5}
    pg = _Prepared(g, 2)
    assert _bounded(pg, depths) is not None and _bounded(pg.without_latency(), depths) is None
    dead = simulate(g, depths)
    assert dead.deadlock and dead == _simulate_events(pg, depths)
    assert {("skip", "full"), ("skip2", "full")} <= {(b.edge, b.state) for b in dead.blocked}
    ok = simulate(g, {**depths, "skip": 6, "skip2": 6})
    assert not ok.deadlock and ok == _simulate_events(pg, {**depths, "skip": 6, "skip2": 6})
