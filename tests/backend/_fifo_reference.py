"""References for tests/backend/test_fifo_sizing.py: the FIFO sizing's earlier, slower forms (the
schedules over every loop iteration, the width converter's loop), kept as oracles of the faster
code in abcn_hw/backend/passes/fifo_sizing.py, and random token graphs to compare them on."""
from __future__ import annotations

import numpy as np

from abcn_hw.backend.passes.fifo_sizing import (MIN_DEPTH, TokenGraph, TokenProgram, elementwise_program, fork_program,
                                                mvu_program, pool_rect_programs, sliding_window_program,
                                                width_converter_program)

_NEVER = np.iinfo(np.int64).max // 4


def width_converter_loop(in_w: int, out_w: int, num_in_words: int) -> tuple[int, list[int], list[int]]:
    """abcn::MultiBaseWidthConverter's loop, iteration by iteration: (iterations, reads, writes)."""
    num_out = num_in_words * in_w // out_w
    iters = max(num_in_words, num_out)
    reads, writes, fill = [], [], 0
    for i in range(iters):
        if fill < out_w:
            reads.append(i)
            fill += in_w
        if fill >= out_w:
            writes.append(i)
            fill -= out_w
    return iters, reads, writes


def dense_sizing(g: TokenGraph, images: int) -> dict:
    """size_fifos with the ASAP and lazy recurrences over every iteration of every kernel (not only
    those that move a word): per edge (needed, depth, asap_occupancy), and latency, interval,
    makespan."""
    ins, outs = g._wiring()
    order = g._order(outs)
    lat = {a: p.latency for a, p in g.actors.items()}
    n = {a: p.iters * images for a, p in g.actors.items()}

    def batch(arr, iters):
        return (arr[None, :] + iters * np.arange(images, dtype=np.int64)[:, None]).ravel()

    R = {e.name: batch(g.actors[e.dst].reads[e.dst_port], g.actors[e.dst].iters) for e in g.edges.values()}
    W = {e.name: batch(g.actors[e.src].writes[e.src_port], g.actors[e.src].iters) for e in g.edges.values()}

    def occupancy(e, s):
        t_w, t_r = s[e.src][W[e.name]] + lat[e.src], s[e.dst][R[e.name]]
        return int(np.max(np.arange(t_w.size) - np.searchsorted(t_r, t_w) + 1)) if t_w.size else 0

    def done_times(s):
        t = [s[a][p.iters - 1::p.iters][:images] for a, p in g.actors.items() if not outs[a] and p.iters]
        return np.max(np.stack(t), axis=0)

    asap = {}
    for a in order:
        b = np.zeros(n[a], np.int64)
        for e in ins[a].values():
            b[R[e.name]] = np.maximum(b[R[e.name]], asap[e.src][W[e.name]] + lat[e.src] + 1)
        i = np.arange(n[a], dtype=np.int64)
        asap[a] = i + np.maximum(np.maximum.accumulate(b - i), 0)
    slowest = max(p.iters for p in g.actors.values())
    fixed = {a for a in order if g.actors[a].iters == slowest}
    below, todo = set(fixed), list(fixed)
    while todo:
        for e in outs[todo.pop()].values():
            if e.dst not in below:
                below.add(e.dst)
                todo.append(e.dst)
    done, sched = done_times(asap), dict(asap)
    for a in reversed(order):
        if a in fixed or not outs[a]:
            continue
        per = g.actors[a].iters
        u = np.full(n[a], _NEVER, np.int64)
        if per:
            u[per - 1::per] = np.maximum(asap[a][per - 1::per], done)
        for e in outs[a].values():
            u[W[e.name]] = np.minimum(u[W[e.name]], sched[e.dst][R[e.name]] - 1 - lat[a])
        i = np.arange(n[a], dtype=np.int64)
        cand = {**sched, a: i + np.minimum.accumulate((u - i)[::-1])[::-1]}
        own = list(ins[a].values()) + list(outs[a].values())
        bits = [sum(occupancy(e, sc) * max(e.width, 1) for e in own) for sc in (cand, sched)]
        if a not in below or any(e.internal for e in outs[a].values()) or bits[0] <= bits[1]:
            sched = cand
    edges = {e.name: (occupancy(e, sched), e.depth if e.internal else max(MIN_DEPTH, occupancy(e, sched)),
                      occupancy(e, asap)) for e in g.edges.values()}
    d = done_times(asap)
    return {"edges": edges, "latency": int(d[0]) + 1, "interval": int(d[-1] - d[-2]) if images >= 2 else None,
            "makespan": max((int(v[-1]) + lat[a] + 1 for a, v in asap.items() if v.size), default=0)}


def random_token_graph(rng: np.random.Generator, nesting: int = 3) -> TokenGraph:
    """A random dataflow graph on an h x w x cf image stream: chains of blocks that keep the words
    per image (a word-for-word kernel, a window generator + MVU, an MVU pair that expands and
    reduces, a width converter pair, a max-pool window + MVU, or a fork whose two branches -- blocks
    or the bare skip stream -- meet in a join), random latencies and stream widths."""
    g = TokenGraph()
    count = [0]
    h, w, cf = int(rng.integers(2, 6)), int(rng.integers(2, 6)), int(rng.integers(1, 3))
    words = h * w * cf

    def add(prefix, prog):
        count[0] += 1
        g.add(f"{prefix}{count[0]}", prog)
        return f"{prefix}{count[0]}"

    def link(a, ap, b, bp):
        count[0] += 1
        g.connect(f"e{count[0]}", a, ap, b, bp, width=int(rng.integers(1, 9)))

    def lat(hi):
        return int(rng.integers(0, hi))

    def block(src, sp, level):
        kind = int(rng.integers(0, 6 if level < nesting else 5))
        if kind == 0:  # word for word, some with idle iterations before the first and after the last word
            front, back = (int(rng.integers(1, 4)), int(rng.integers(1, 4))) if rng.random() < 0.5 else (0, 0)
            i = np.arange(words, dtype=np.int64) + front
            a = add("ew", TokenProgram(words + front + back, (i,), (i,), lat(5), "ew"))
            link(src, sp, a, 0)
            return a, 0
        if kind == 1:
            k = int(rng.choice([1, 3]))
            s = add("swg", sliding_window_program(h, w, cf, k, k, 1, 1, k // 2, k // 2, k // 2, k // 2, latency=lat(4)))
            m = add("mvu", mvu_program(mw=k * k * cf, mh=cf * 2, simd=1, pe=2, vectors=h * w, latency=lat(6)))
            link(src, sp, s, 0)
            link(s, 0, m, 0)
            return m, 0
        if kind == 2:
            nf = int(rng.integers(1, 4))
            a = add("mvu", mvu_program(mw=cf, mh=nf, simd=1, pe=1, vectors=h * w, latency=lat(8)))
            b = add("mvu", mvu_program(mw=nf, mh=cf, simd=1, pe=1, vectors=h * w, latency=lat(8)))
            link(src, sp, a, 0)
            link(a, 0, b, 0)
            return b, 0
        if kind == 3:
            iw, ow = int(rng.integers(1, 5)), int(rng.integers(1, 5))
            ow = ow if words * iw % ow == 0 else iw
            a = add("wc", width_converter_program(iw, ow, words))
            b = add("wc", width_converter_program(ow, iw, words * iw // ow))
            link(src, sp, a, 0)
            link(a, 0, b, 0)
            return b, 0
        if kind == 4:
            a = add("pool", pool_rect_programs(h, w, cf, 3, 3, 1, 1, 1, 1, 1, 1))
            m = add("mvu", mvu_program(mw=cf, mh=cf, simd=1, pe=1, vectors=h * w))
            link(src, sp, a, 0)
            link(a, 0, m, 0)
            return m, 0
        f = add("fork", fork_program(words, latency=lat(3)))
        link(src, sp, f, 0)
        a = block(f, 0, level + 1)
        b = (f, 1) if rng.random() < 0.5 else block(f, 1, level + 1)
        j = add("join", elementwise_program(words, inputs=2, latency=lat(4)))
        first, second = (a, b) if rng.random() < 0.5 else (b, a)
        link(*first, j, 0)
        link(*second, j, 1)
        return j, 0

    g.add_source("src", words)
    cur = ("src", 0)
    for _ in range(int(rng.integers(1, 4))):
        cur = block(*cur, 0)
    g.add_sink("sink", words)
    link(*cur, "sink", 0)
    return g
