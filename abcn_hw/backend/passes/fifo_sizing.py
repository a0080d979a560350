"""FIFO sizing by a cycle-level token simulation of the dataflow graph.

Why: in C simulation every ``hls::stream`` is unbounded, so a stream FIFO that is too small -- a
deadlock on the FPGA, e.g. the skip stream of a residual block that must hold the words the fork
wrote while the long branch had not yet produced the join's first input -- passes csim. This pass
simulates the words (tokens) moving through the graph with bounded FIFOs, cycle by cycle, and
chooses every stream's depth from that simulation.

Model (the kernels of hls/include/abcn, hls/README.md)
------------------------------------------------------
Every kernel is one pipelined loop at II=1 (a window generator also has a prologue loop; a
composite kernel such as BitMaxPoolRect is a pipeline of such loops). Its :class:`TokenProgram`
lists, per image, the loop iterations in which it reads one word from each input port and writes
one word to each output port, derived from the same loop structure as the C++ (the window
generator reads min(KH-PT, H) rows before its first output, an MVU reads its SF input words during
the first neuron fold and writes one word per SF iterations, a width converter reads while fewer
than OUT_W elements are buffered, ...), plus the loop's pipeline depth ``latency`` L:

* iteration i issues at cycle s[i] >= s[i-1] + 1; its reads happen at s[i], its writes at s[i] + L;
* a read blocks until its word is in the FIFO (a word written at cycle t is readable from t + 1);
* a write blocks until the FIFO has a free slot (a slot freed by a read at cycle t is free from
  t + 1); a blocked access stalls the whole pipeline (later iterations issue later);
* an edge is a FIFO of ``depth`` words; a word occupies a slot from its write cycle to its read
  cycle inclusive, so a stream moving one word per cycle needs depth 2 (the HLS default);
* the accelerator's input is a source writing one word per cycle, its output a sink reading one
  word per cycle (AXI streams that never stall); images follow each other without gaps.

Latencies are estimated pipeline depths (``LATENCY``, :func:`mvu_latency`), not synthesis results;
nothing has been synthesised here.

Sizing (:func:`size_fifos`), vectorised (numpy, no per-cycle Python loop)
------------------------------------------------------------------------
1. ASAP with unbounded FIFOs, kernels in topological order: ``s = i + cummax(b - i)`` where b[i] is
   the availability of iteration i's input words. No depths can make any word earlier, so its
   output times are the best latency and interval the graph can reach.
2. A lazier schedule with the same output cycles (:func:`_lazy`), kernels in reverse topological
   order: the slowest kernels (most iterations per image) and the sinks keep their ASAP cycles;
   every kernel upstream of the slowest runs as late as its consumers' reads allow
   (``s = i + reverse cummin(u - i)``, each image finished by the cycle its last output word leaves
   the pipeline); every kernel downstream runs ASAP or that late, whichever needs fewer FIFO bits
   on its own streams (a producer into a composite kernel's internal stream always late).
3. depth(e) = max(2, the largest number of words on e at one cycle of that schedule).

Both recurrences run over each kernel's *event* iterations only (those that read or write a word,
and each image's last): in between, s grows by one per iteration, so the events alone give the
same numbers as every iteration would (an MVU reads its SF words in NF*SF iterations; resnet18 at
224x224, compile's balanced folding: 36 M iterations per image, 5.3 M of them events).

With these depths the real (greedy, bounded) pipeline writes every output word at its ASAP cycle:
the lazy schedule obeys every data dependency and never holds more words than the depths, so it is
a schedule of the bounded pipeline; the greedy execution is the earliest schedule obeying the same
constraints, so it is no later, and its output times are the ASAP ones, which nothing beats. In
particular there is no deadlock. The guarantee covers the simulated batch (``images``); the
schedule is anchored per image, and the tests and benchmarks check longer batches. The depths are
sufficient, not minimal (:func:`trim_fifos` lowers them by simulation). The occupancy of the ASAP
schedule itself, what a simulation with unbounded FIFOs observes, is reported as
``asap_occupancy``; it over-sizes every stream whose producer is faster than its consumer.

Checking given depths (:func:`simulate`)
----------------------------------------
An exact simulation of the bounded pipeline. The reference is an event simulation
(:func:`_simulate_events`, pure Python, word by word; the iterations between two words cost one
addition): each kernel advances as far as the words it reads and the slots it writes are known.
If no kernel can advance before all are done, the pipeline deadlocks, and the report names every
blocked stream: *full* (its producer waits for a slot) or *empty* (its consumer waits for a word).
The same schedule is the least solution of the issue, data and slot constraints, which
:func:`_bounded` finds vectorised, by a fixed-point iteration from the ASAP schedule (at the sized
depths in one or two updates per kernel); :func:`simulate` takes it where it settles, also with
every latency 0 (which proves that the events do not wait on each other in a cycle, i.e. no
deadlock), and runs the event simulation otherwise. The tests compare both on random graphs.

Interface for kernel classes
----------------------------
A kernel object implements ``token_program() -> TokenProgram`` (or a tuple of them: a composite
kernel whose parts are chained by internal streams of depth 2), with its input ports and output
ports in the order of its streams. The helpers below build the programs of the library's kernels
from their template parameters (:func:`sliding_window_program`, :func:`mvu_program`,
:func:`width_converter_program`, :func:`bit_maxpool_program`, :func:`window_reduce_program`, and for
residual networks :func:`fork_program`, :func:`elementwise_program` (residual add with one or two
inputs, integer threshold, fused add-and-threshold with two outputs), :func:`global_sum_pool_program`,
:func:`int_maxpool_program`). A graph is built with :class:`TokenGraph`::

    g = TokenGraph()
    g.add_source("in", words_per_image)            # the accelerator input (AXI stream)
    g.add("conv0", kernel.token_program())
    g.connect("s0", "in", 0, "conv0", 0, width=...)  # name, producer, its output port, consumer, its input port
    ...
    res = size_fifos(g)                            # res.depths(): {edge: depth}
    sim = simulate(g, {"s0": 2, ...})               # sim.deadlock, sim.message()

:func:`token_graph` builds the graph of a kernel graph (``backend.graph.HwGraph``) from each kernel
class's ``token_program()``; :func:`size_graph_fifos` is the pass (``passes.build_graph`` runs it
last) that writes the depths on its edges.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np

from ..graph import stream_names

#: estimated pipeline depths (cycles from an iteration's issue to its writes) of the kernels
LATENCY = {"source": 0, "sink": 0, "swg": 3, "wc": 1, "pool": 2, "window_reduce": 2, "fork": 1,
           "elementwise": 3, "sum_pool": 2}
#: depth of a FIFO that the library declares inside a composite kernel (BitMaxPoolRect)
INTERNAL_DEPTH = 2
#: the smallest depth Vitis HLS gives an hls::stream (and the depth of a full-rate stream)
MIN_DEPTH = 2
_NEVER = np.iinfo(np.int64).max // 4


def mvu_latency(simd: int) -> int:
    """Estimated pipeline depth of an MVU: weight read and XNOR (2), popcount adder tree
    (ceil(log2 SIMD)), multi-base combiner and accumulator (2), threshold compare (1)."""
    return 5 + math.ceil(math.log2(max(simd, 2)))


@dataclass(frozen=True)
class TokenProgram:
    """One pipelined loop's words per image: ``reads[p]`` / ``writes[p]`` are the (strictly
    increasing) iterations, in [0, iters), that read input port p / write output port p."""

    iters: int
    reads: tuple = ()
    writes: tuple = ()
    latency: int = 1
    kind: str = ""

    def __post_init__(self):
        object.__setattr__(self, "reads", tuple(np.asarray(r, np.int64) for r in self.reads))
        object.__setattr__(self, "writes", tuple(np.asarray(w, np.int64) for w in self.writes))
        for arr in self.reads + self.writes:
            if arr.ndim != 1 or (arr.size and (arr[0] < 0 or arr[-1] >= self.iters or np.any(np.diff(arr) <= 0))):
                raise ValueError(f"{self.kind or 'token program'}: port iterations must increase within [0, {self.iters})")


# -- programs of the kernels ----------------------------------------------------------------------

def _conv_out(ifm: int, k: int, s: int, p0: int, p1: int) -> int:
    return (ifm + p0 + p1 - k) // s + 1


def sliding_window_program(ifm_h, ifm_w, cf, kh, kw, sh, sw, pt=0, pl=0, pb=0, pr=0,
                           latency: int | None = None) -> TokenProgram:
    """abcn::SlidingWindowRect: a prologue of min(KH-PT, H) rows read, then per output row
    max(EMIT, SH*W*CF) iterations that read the rows the next output row needs (first) and emit
    this row's OW*KH*KW*CF window words (first)."""
    oh, ow = _conv_out(ifm_h, kh, sh, pt, pb), _conv_out(ifm_w, kw, sw, pl, pr)
    row_words = ifm_w * cf
    emit = ow * kh * kw * cf
    row_iters = max(emit, sh * row_words)
    pro = min(kh - pt, ifm_h)
    reads, writes = [np.arange(pro * row_words)], []
    loaded, base = pro, pro * row_words
    for oy in range(oh):
        want = ifm_h if oy + 1 == oh else (oy + 1) * sh + kh - pt
        target = min(want, ifm_h)
        to_read = max(target - loaded, 0) * row_words
        reads.append(base + np.arange(to_read))
        writes.append(base + np.arange(emit))
        loaded = max(target, loaded)
        base += row_iters
    return TokenProgram(base, (np.concatenate(reads),), (np.concatenate(writes),),
                        LATENCY["swg"] if latency is None else latency, "swg")


def mvu_program(mw, mh, simd, pe, vectors, latency: int | None = None) -> TokenProgram:
    """abcn::XnorMVU / IntMVU: per vector NF*SF iterations; the SF input words are read in the first
    neuron fold, one output word is written at the last iteration of every fold."""
    sf, nf = mw // simd, mh // pe
    per = nf * sf
    base = (np.arange(vectors, dtype=np.int64) * per)[:, None]
    reads = (base + np.arange(sf)).ravel()
    writes = (base + np.arange(nf) * sf + sf - 1).ravel()
    return TokenProgram(vectors * per, (reads,), (writes,), mvu_latency(simd) if latency is None else latency, "mvu")


def width_converter_program(in_w, out_w, num_in_words, latency: int | None = None) -> TokenProgram:
    """abcn::MultiBaseWidthConverter: each iteration reads a word while fewer than OUT_W elements are
    buffered, then writes one when at least OUT_W are. In closed form: IN_W <= OUT_W reads every
    iteration and writes when the elements read pass a multiple of OUT_W (after i + 1 reads,
    floor((i + 1) * IN_W / OUT_W) words out); IN_W > OUT_W writes every iteration and reads when the
    elements written pass what the words read so far hold (after i + 1 writes, ceil((i + 1) * OUT_W
    / IN_W) words in)."""
    num_out = num_in_words * in_w // out_w
    iters = max(num_in_words, num_out)
    i = np.arange(iters, dtype=np.int64)
    if in_w <= out_w:
        reads, writes = i, i[(i + 1) * in_w // out_w > i * in_w // out_w]
    else:
        reads, writes = i[-((i + 1) * out_w // -in_w) > -(i * out_w // -in_w)], i
    return TokenProgram(iters, (reads,), (writes,), LATENCY["wc"] if latency is None else latency, "wc")


def bit_maxpool_program(ifm_h, ifm_w, cf, pool, latency: int | None = None) -> TokenProgram:
    """abcn::BitMaxPool (POOL x POOL, stride POOL): one word read per iteration; a window's word is
    written when its last row's last column arrives."""
    i = np.arange(ifm_h * ifm_w * cf, dtype=np.int64)
    y, x = i // (ifm_w * cf), (i // cf) % ifm_w
    oh, ow = ifm_h // pool, ifm_w // pool
    w = (y < oh * pool) & (x < ow * pool) & (x % pool == pool - 1) & (y % pool == pool - 1)
    return TokenProgram(i.size, (i,), (i[w],), LATENCY["pool"] if latency is None else latency, "pool")


def window_reduce_program(kk, cf, pixels, latency: int | None = None) -> TokenProgram:
    """abcn::BitWindowOr (and an integer window max): per output pixel KK*CF iterations reading one
    word each; the last tap's CF iterations write."""
    i = np.arange(pixels * kk * cf, dtype=np.int64)
    return TokenProgram(i.size, (i,), (i[(i // cf) % kk == kk - 1],),
                        LATENCY["window_reduce"] if latency is None else latency, "window_reduce")


def pool_rect_programs(ifm_h, ifm_w, cf, kh, kw, sh, sw, pt=0, pl=0, pb=0, pr=0) -> tuple:
    """abcn::BitMaxPoolRect: SlidingWindowRect -> BitWindowOr (an internal depth-2 stream)."""
    oh, ow = _conv_out(ifm_h, kh, sh, pt, pb), _conv_out(ifm_w, kw, sw, pl, pr)
    return (sliding_window_program(ifm_h, ifm_w, cf, kh, kw, sh, sw, pt, pl, pb, pr),
            window_reduce_program(kh * kw, cf, oh * ow))


def int_maxpool_program(ifm_h, ifm_w, cf, kh, kw, sh, sw, pt=0, pl=0, pb=0, pr=0) -> tuple:
    """IntMaxPool on an integer stream (resnet18's 3x3/2 pad 1 stem pool): a window generator and
    a window max, the structure of BitMaxPoolRect (padding = -inf only changes the values)."""
    return pool_rect_programs(ifm_h, ifm_w, cf, kh, kw, sh, sw, pt, pl, pb, pr)


def fork_program(words, outputs: int = 2, latency: int | None = None) -> TokenProgram:
    """DuplicateStreams: per iteration one word read and written to every output (a full output
    stalls the fork, and so the other output)."""
    i = np.arange(words, dtype=np.int64)
    return TokenProgram(words, (i,), (i,) * outputs, LATENCY["fork"] if latency is None else latency, "fork")


def elementwise_program(words, inputs: int = 1, outputs: int = 1, latency: int | None = None) -> TokenProgram:
    """A word-for-word kernel: ResidualAdd (one or two integer inputs, one word of each per output
    word), IntThreshold (1 in, 1 out), fused add-and-threshold (2 in; bit bases and/or sum out)."""
    i = np.arange(words, dtype=np.int64)
    return TokenProgram(words, (i,) * inputs, (i,) * outputs,
                        LATENCY["elementwise"] if latency is None else latency, "elementwise")


def global_sum_pool_program(cf, pixels, latency: int | None = None) -> TokenProgram:
    """GlobalSumPool: PIXELS*CF iterations reading one word each (CF = C/PE words per pixel); the CF
    sums are written during the last pixel's pass."""
    i = np.arange(pixels * cf, dtype=np.int64)
    return TokenProgram(i.size, (i,), (i[(pixels - 1) * cf:],), LATENCY["sum_pool"] if latency is None else latency,
                        "sum_pool")


# -- graph ----------------------------------------------------------------------------------------

@dataclass
class Edge:
    name: str
    src: str              # producing actor
    src_port: int
    dst: str              # consuming actor
    dst_port: int
    width: int = 1        # bits per word (resources only)
    depth: int | None = None
    internal: bool = False  # a FIFO the library declares inside a kernel (fixed depth, not emitted)


class TokenGraph:
    """Actors (token programs) and edges (bounded FIFOs). A composite kernel (a tuple of programs)
    becomes the actors ``name.0``, ``name.1``, ... chained by internal edges; its inputs are those of
    the first part, its outputs those of the last."""

    def __init__(self):
        self.actors: dict[str, TokenProgram] = {}
        self.edges: dict[str, Edge] = {}
        self._first: dict[str, str] = {}
        self._last: dict[str, str] = {}

    def add(self, name: str, program) -> None:
        parts = tuple(program) if isinstance(program, (tuple, list)) else (program,)
        if name in self._first:
            raise ValueError(f"duplicate kernel {name!r}")
        names = [name] if len(parts) == 1 else [f"{name}.{k}" for k in range(len(parts))]
        for n, p in zip(names, parts):
            self.actors[n] = p
        for k in range(len(parts) - 1):
            self.connect(f"{name}.{k}>{k + 1}", names[k], 0, names[k + 1], 0, depth=INTERNAL_DEPTH, internal=True,
                         _raw=True)
        self._first[name], self._last[name] = names[0], names[-1]

    def add_source(self, name: str, words: int) -> None:
        self.add(name, TokenProgram(words, (), (np.arange(words),), LATENCY["source"], "source"))

    def add_sink(self, name: str, words: int) -> None:
        self.add(name, TokenProgram(words, (np.arange(words),), (), LATENCY["sink"], "sink"))

    def connect(self, name: str, src: str, src_port: int, dst: str, dst_port: int, width: int = 1,
                depth: int | None = None, internal: bool = False, _raw: bool = False) -> None:
        if name in self.edges:
            raise ValueError(f"duplicate edge {name!r}")
        if not _raw:
            src, dst = self._last[src], self._first[dst]
        self.edges[name] = Edge(name, src, src_port, dst, dst_port, width, depth, internal)

    # -- checks and structure --
    def _wiring(self):
        ins = {a: {} for a in self.actors}
        outs = {a: {} for a in self.actors}
        for e in self.edges.values():
            P, C = self.actors[e.src], self.actors[e.dst]
            if not (0 <= e.src_port < len(P.writes)) or not (0 <= e.dst_port < len(C.reads)):
                raise ValueError(f"edge {e.name}: no such port ({e.src} out {e.src_port}, {e.dst} in {e.dst_port})")
            if e.src_port in outs[e.src] or e.dst_port in ins[e.dst]:
                raise ValueError(f"edge {e.name}: port already connected")
            nw, nr = P.writes[e.src_port].size, C.reads[e.dst_port].size
            if nw != nr:
                raise ValueError(f"edge {e.name}: {e.src} writes {nw} words per image, {e.dst} reads {nr}")
            outs[e.src][e.src_port] = e
            ins[e.dst][e.dst_port] = e
        for a, p in self.actors.items():
            if len(ins[a]) != len(p.reads) or len(outs[a]) != len(p.writes):
                raise ValueError(f"kernel {a}: unconnected port")
        return ins, outs

    def _order(self, outs) -> list[str]:
        indeg = {a: 0 for a in self.actors}
        for e in self.edges.values():
            indeg[e.dst] += 1
        ready = [a for a in self.actors if indeg[a] == 0]
        order = []
        while ready:
            a = ready.pop(0)
            order.append(a)
            for e in outs[a].values():
                indeg[e.dst] -= 1
                if indeg[e.dst] == 0:
                    ready.append(e.dst)
        if len(order) != len(self.actors):
            raise ValueError("the stream graph has a cycle")
        return order


def _batch(arr: np.ndarray, step: int, images: int) -> np.ndarray:
    return (arr[None, :] + step * np.arange(images, dtype=np.int64)[:, None]).ravel()


def _event_iterations(prog: TokenProgram):
    """One image's iterations that read or write a word, and the image's last iteration (sorted,
    unique), with the positions in it of every port's iterations: (its, reads, writes, last).
    Kept on the (immutable) program: the bounded checks simulate the same graph many times."""
    cached = prog.__dict__.get("_events1")
    if cached is None:
        moves = np.zeros(prog.iters, bool)
        for arr in prog.reads + prog.writes:
            moves[arr] = True
        moves[prog.iters - 1:] = True
        its = np.flatnonzero(moves)
        if its.size == prog.iters:  # every iteration moves a word: positions are iterations
            cached = (its, prog.reads, prog.writes, its.size - 1)
        else:
            cached = (its, tuple(np.searchsorted(its, r) for r in prog.reads),
                      tuple(np.searchsorted(its, w) for w in prog.writes), its.size - 1)
        object.__setattr__(prog, "_events1", cached)
    return cached


class _Prepared:
    """Per-batch arrays of a graph. The schedules are kept only at each kernel's *event* iterations
    (``it[a]``: those that read or write a word, and every image's last one): between two of them the
    issue recurrence s[i] = max(s[i-1] + 1, b[i]) only adds one per iteration (b is 0 there, and
    s[i] >= i), so s at the events is ``it + max(0, cummax(b - it))`` over the events alone -- the
    same numbers as the dense recurrence over every iteration, without the idle stretches (an MVU
    reads SF words in NF*SF iterations). ``R[e]`` / ``W[e]``: positions in ``it`` of the consumer's
    reads / the producer's writes of edge e; ``last[a]``: positions of every image's last iteration."""

    def __init__(self, g: TokenGraph, images: int):
        if images < 1:
            raise ValueError("images must be >= 1")
        self.g, self.images = g, images
        self.ins, self.outs = g._wiring()
        self.order = g._order(self.outs)
        self.n = {a: p.iters * images for a, p in g.actors.items()}
        self.lat = {a: p.latency for a, p in g.actors.items()}
        self.it, self.last, rpos, wpos = {}, {}, {}, {}
        for a, p in g.actors.items():
            its, rd, wr, last = _event_iterations(p)
            self.it[a] = _batch(its, p.iters, images)
            self.last[a] = _batch(np.array([last]), its.size, images) if p.iters else np.zeros(0, np.int64)
            rpos[a] = [_batch(r, its.size, images) for r in rd]
            wpos[a] = [_batch(w, its.size, images) for w in wr]
        self.R = {e.name: rpos[e.dst][e.dst_port] for e in g.edges.values()}
        self.W = {e.name: wpos[e.src][e.src_port] for e in g.edges.values()}
        self._occ: dict = {}

    def without_latency(self) -> _Prepared:
        """The same graph with every pipeline depth 0 (the arrays shared)."""
        pg = copy.copy(self)
        pg.lat, pg._occ = dict.fromkeys(self.lat, 0), {}
        return pg

    def times(self, e: Edge, sched: dict) -> tuple[np.ndarray, np.ndarray]:
        """Per word of edge e: (write cycle, read cycle)."""
        return sched[e.src][self.W[e.name]] + self.lat[e.src], sched[e.dst][self.R[e.name]]

    def occupancy(self, e: Edge, sched: dict) -> int:
        """Largest number of words on edge e at one cycle (a word counts from its write cycle to its
        read cycle inclusive). Memoised on the two schedules' arrays (the lazy schedule compares the
        same edges under mostly unchanged schedules, and the result reports them)."""
        src, dst = sched[e.src], sched[e.dst]
        seen = self._occ.setdefault(e.name, [])
        for s_, d_, occ in seen:
            if s_ is src and d_ is dst:
                return occ
        occ = _max_live(*self.times(e, sched))
        seen.append((src, dst, occ))
        return occ

    def sinks(self) -> list[str]:
        return [a for a in self.order if not self.outs[a]]

    def done_times(self, sched: dict) -> np.ndarray:
        """Per image: the cycle of the last output word read by the sinks (max over sinks)."""
        t = [sched[a][self.last[a]] for a in self.sinks() if self.g.actors[a].iters]
        return np.max(np.stack(t), axis=0) if t else np.zeros(self.images, np.int64)


def _max_live(t_w: np.ndarray, t_r: np.ndarray) -> int:
    """Largest number of words alive at one cycle, word k alive from t_w[k] to t_r[k] inclusive (both
    increasing, every word read after its write). At most d words are alive at once exactly when
    every word k >= d is written after word k - d was read (the words alive at t_w[k] are a run
    ending at k), so the largest is the smallest such d: found by doubling, then bisection, each
    step one vectorised comparison (no search per word)."""
    n = t_w.size
    if n == 0:
        return 0

    def fits(d: int) -> bool:
        return d >= n or bool(np.all(t_r[:n - d] < t_w[d:]))

    lo, hi = 1, 1
    while not fits(hi):
        lo, hi = hi + 1, hi * 2
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid + 1
    return hi


def _asap(pg: _Prepared) -> dict:
    """The earliest schedule with unbounded FIFOs, at the event iterations (``_Prepared``)."""
    s = {}
    for a in pg.order:
        it = pg.it[a]
        b = np.zeros(it.size, np.int64)
        for e in pg.ins[a].values():
            idx = pg.R[e.name]
            b[idx] = np.maximum(b[idx], s[e.src][pg.W[e.name]] + pg.lat[e.src] + 1)
        s[a] = it + np.maximum(np.maximum.accumulate(b - it), 0) if it.size else it
    return s


def _downstream(pg: _Prepared, roots) -> set:
    """The kernels reachable from ``roots`` (roots included)."""
    seen, todo = set(roots), list(roots)
    while todo:
        for e in pg.outs[todo.pop()].values():
            if e.dst not in seen:
                seen.add(e.dst)
                todo.append(e.dst)
    return seen


def _lazy(pg: _Prepared, asap: dict, fixed: set) -> dict:
    """A schedule with the ASAP output times: kernels in reverse topological order; those in
    ``fixed`` (the slowest) and the sinks keep their ASAP cycles; the kernels upstream of them run
    as late as their consumers' reads allow (every image finished by the cycle its last output word
    leaves the pipeline, or its own ASAP end if later), those downstream either ASAP or that late,
    whichever needs fewer FIFO bits on their own streams (the first part of a composite kernel always
    late, so that its internal stream needs no more than one word per cycle). Every such schedule obeys the data
    dependencies, so its occupancies are depths that reach the ASAP output times (module docstring).
    At the event iterations: s[i] = i + reverse cummin(u - i), and u is unbounded between them
    (every image's last iteration is bounded), so the events alone give the same numbers."""
    done = pg.done_times(asap)
    below = _downstream(pg, fixed)
    sched = dict(asap)
    for a in reversed(pg.order):
        if a in fixed or not pg.outs[a]:
            continue
        it = pg.it[a]
        u = np.full(it.size, _NEVER, np.int64)
        last = pg.last[a]
        if last.size:  # image k done by the sink's ASAP cycle for it (or the kernel's own ASAP end, if later)
            u[last] = np.maximum(asap[a][last], done)
        for e in pg.outs[a].values():
            idx = pg.W[e.name]
            u[idx] = np.minimum(u[idx], sched[e.dst][pg.R[e.name]] - 1 - pg.lat[a])
        late = it + np.minimum.accumulate((u - it)[::-1])[::-1]
        own = list(pg.ins[a].values()) + list(pg.outs[a].values())

        def bits(sc):
            return sum(pg.occupancy(e, sc) * max(e.width, 1) for e in own)

        cand = dict(sched)
        cand[a] = late
        feeds_internal = any(e.internal for e in pg.outs[a].values())  # keep a composite's own FIFO at its depth
        if a not in below or feeds_internal or bits(cand) <= bits(sched):
            sched = cand
    return sched


# -- results --------------------------------------------------------------------------------------

@dataclass
class EdgeSize:
    name: str
    src: str
    dst: str
    width: int
    words: int             # words per image
    needed: int            # largest occupancy of the sizing schedule (_lazy)
    depth: int             # max(MIN_DEPTH, needed), or the internal depth
    asap_occupancy: int    # largest occupancy with unbounded FIFOs (ASAP)
    internal: bool = False

    def to_dict(self) -> dict:
        return {"stream": self.name, "from": self.src, "to": self.dst, "width": self.width,
                "words_per_image": self.words, "depth": self.depth, "needed": self.needed,
                "asap_occupancy": self.asap_occupancy, **fifo_resources(self.depth, self.width)}


@dataclass
class SizingResult:
    edges: dict[str, EdgeSize]
    images: int
    latency_cycles: int         # first input word to the last output word of image 0 (+1)
    interval_cycles: int | None  # steady state: cycles between the last output words of the last two images
    makespan_cycles: int         # the whole batch, every kernel done

    def depths(self) -> dict[str, int]:
        return {k: e.depth for k, e in self.edges.items()}

    def to_dict(self) -> dict:
        return {"images": self.images, "latency_cycles": self.latency_cycles, "interval_cycles": self.interval_cycles,
                "makespan_cycles": self.makespan_cycles,
                "fifos": [e.to_dict() for e in self.edges.values() if not e.internal]}


def _cycles(pg: _Prepared, sched: dict) -> tuple[int, int | None, int]:
    done = pg.done_times(sched)
    latency = int(done[0]) + 1
    interval = int(done[-1] - done[-2]) if pg.images >= 2 else None
    makespan = max((int(v[-1]) + pg.lat[a] + 1 for a, v in sched.items() if v.size), default=0)
    return latency, interval, makespan


def size_fifos(g: TokenGraph, images: int = 3) -> SizingResult:
    """The depth every edge needs for the pipeline to run exactly as with unbounded FIFOs (see the
    module docstring); internal edges keep their depth (the report still says what they need)."""
    pg = _Prepared(g, images)
    asap = _asap(pg)
    slowest = max(p.iters for p in g.actors.values())
    late = _lazy(pg, asap, {a for a in pg.order if g.actors[a].iters == slowest})
    edges = {}
    for e in g.edges.values():
        need = pg.occupancy(e, late)
        depth = e.depth if e.internal else max(MIN_DEPTH, need)
        edges[e.name] = EdgeSize(e.name, e.src, e.dst, e.width, g.actors[e.src].writes[e.src_port].size, need, depth,
                                 pg.occupancy(e, asap), e.internal)
    latency, interval, makespan = _cycles(pg, asap)
    return SizingResult(edges, images, latency, interval, makespan)


@dataclass
class Blocked:
    edge: str
    state: str        # "full" (producer waits for a slot) or "empty" (consumer waits for a word)
    words: int        # words in the FIFO when the pipeline stopped
    depth: int
    src: str
    dst: str


@dataclass
class SimResult:
    depths: dict[str, int]
    images: int
    deadlock: bool
    blocked: list[Blocked] = field(default_factory=list)
    latency_cycles: int | None = None
    interval_cycles: int | None = None
    makespan_cycles: int | None = None
    occupancy: dict[str, int] = field(default_factory=dict)   # largest occupancy per edge
    image_done: list[int] = field(default_factory=list)       # per image: cycle of its last output word

    def message(self) -> str:
        if not self.deadlock:
            return (f"no deadlock: latency {self.latency_cycles} cycles, interval {self.interval_cycles} cycles "
                    f"({self.images} images)")
        parts = [f"{b.edge} ({b.src} -> {b.dst}) {b.state}: {b.words}/{b.depth} words" for b in self.blocked]
        return "deadlock: " + "; ".join(parts)


def _events(pg: _Prepared, a: str, in_edges: list[int], out_edges: list[int]) -> list[tuple]:
    """(iteration, edges read, edges written) of every iteration of a batch that moves a word."""
    prog = pg.g.actors[a]
    its, rd, wr, _ = _event_iterations(prog)
    ports = list(rd) + list(wr)
    if not ports:
        return []
    code = np.zeros(its.size, np.int64)
    for p, pos in enumerate(ports):
        code[pos] |= 1 << p
    moving = np.flatnonzero(code)
    kinds = {}
    for c in np.unique(code[moving]).tolist():
        kinds[c] = (tuple(e for p, e in enumerate(in_edges) if c >> p & 1),
                    tuple(e for p, e in enumerate(out_edges) if c >> (len(rd) + p) & 1))
    per_image = [kinds[c] for c in code[moving].tolist()]
    return [(it, rw[0], rw[1]) for it, rw in zip(_batch(its[moving], prog.iters, pg.images).tolist(),
                                                   per_image * pg.images)]


def simulate(g: TokenGraph, depths: dict[str, int] | None = None, images: int = 2) -> SimResult:
    """Exact simulation of the bounded pipeline. ``depths`` (edge -> words) overrides the edges'
    own depths; an edge with neither is sized as by :func:`size_fifos`.

    The schedule comes from the vectorised fixed point (:func:`_bounded`) where it settles both with
    the kernels' latencies and with every latency 0 (no cycle of waiting events: no deadlock), else
    (a deadlock, or depths that slow a fork-join for many words) from the event simulation
    (:func:`_simulate_events`); both give the same result (module docstring)."""
    pg = _Prepared(g, images)
    depths = dict(depths or {})
    missing = [e.name for e in g.edges.values() if e.name not in depths and e.depth is None]
    if missing:
        sized = size_fifos(g, images).depths()
        for k in missing:
            depths[k] = sized[k]
    for e in g.edges.values():
        depths.setdefault(e.name, e.depth)
        if depths[e.name] < 1:
            raise ValueError(f"edge {e.name}: depth must be >= 1")
    words = {e.name: int(depths[e.name]) for e in g.edges.values()}
    sched = _bounded(pg, words)
    if sched is None or _bounded(pg.without_latency(), words) is None:
        return _simulate_events(pg, depths)
    makespan = max((int(v[-1]) + pg.lat[a] + 1 for a, v in sched.items() if v.size), default=0)
    return _sim_result(pg, depths, {e.name: pg.times(e, sched) for e in g.edges.values()}, makespan)


#: kernel updates per kernel that :func:`_bounded` may spend before the event simulation takes over
_UPDATES_PER_KERNEL = 8


def _slot_bound(t_w: np.ndarray, t_r: np.ndarray, depth: int) -> np.ndarray:
    """Per word k >= depth of an edge: the earliest write cycle its FIFO slot allows (word k - depth
    read at t, its slot free from t + 1)."""
    return t_r[:t_w.size - depth] + 1


def _bounded(pg: _Prepared, depths: dict) -> dict | None:
    """The bounded pipeline's schedule (at the event iterations), vectorised, or None.

    The schedule obeys three kinds of constraint, all monotone (max-plus): issue (s[i] >= s[i-1] + 1),
    data (a read after its word's write) and slot (a write after the read that frees its slot, less
    the writer's latency). Their least solution is the least fixed point of "every kernel:
    s = issue(max(data bound, slot bound))" above the ASAP schedule (which obeys the first two only, so
    it is never later). From ASAP, each kernel is recomputed from its neighbours, in reverse then
    forward topological order, while one of them changed; the times only grow, and when nothing
    changes they are that least solution. Where the ASAP schedule finds a slot for every write it is
    the answer at once.

    The event simulation (:func:`_simulate_events`) computes the same least solution event by event,
    unless its events wait on each other in a cycle (a deadlock). Such a cycle may have a finite
    solution here (a slot bound gives the writer its latency back), so :func:`simulate` accepts this
    schedule only if the same fixed point also settles with every latency 0: then every dependency
    adds at least one cycle of the clock, so a cycle of waiting events would have no finite
    solution, and the dependencies themselves do not involve latencies. None after
    ``_UPDATES_PER_KERNEL`` updates per kernel (a deadlock never settles; depths that slow a
    fork-join settle a few words per update): the event simulation decides."""
    s = _asap(pg)
    dirty = set()
    for e in pg.g.edges.values():
        d = depths[e.name]
        t_w, t_r = pg.times(e, s)
        if d < t_w.size and np.any(t_w[d:] < _slot_bound(t_w, t_r, d)):
            dirty.add(e.src)
    budget, forward = _UPDATES_PER_KERNEL * len(pg.order), False
    while dirty:
        for a in (pg.order if forward else reversed(pg.order)):
            if a not in dirty:
                continue
            dirty.discard(a)
            budget -= 1
            if budget < 0:
                return None
            it = pg.it[a]
            b = np.zeros(it.size, np.int64)
            for e in pg.ins[a].values():
                idx = pg.R[e.name]
                b[idx] = np.maximum(b[idx], s[e.src][pg.W[e.name]] + pg.lat[e.src] + 1)
            for e in pg.outs[a].values():
                d, idx = depths[e.name], pg.W[e.name]
                if d < idx.size:
                    t_w, t_r = pg.times(e, s)
                    b[idx[d:]] = np.maximum(b[idx[d:]], _slot_bound(t_w, t_r, d) - pg.lat[a])
            new = it + np.maximum(np.maximum.accumulate(b - it), 0) if it.size else it
            if not np.array_equal(new, s[a]):
                s[a] = new
                dirty.update(e.src for e in pg.ins[a].values())
                dirty.update(e.dst for e in pg.outs[a].values())
        forward = not forward
    return s


def _sim_result(pg: _Prepared, depths: dict, times: dict, makespan: int) -> SimResult:
    """The result of a completed run: ``times`` per edge (write cycles, read cycles) of every word."""
    images, res = pg.images, SimResult(depths, pg.images, deadlock=False)
    done = []
    for a in pg.sinks():
        per = pg.g.actors[a].iters
        if per:
            done.append(np.asarray(times[pg.ins[a][0].name][1], np.int64)[per - 1::per][:images])
    image_done = np.max(np.stack(done), axis=0) if done else np.zeros(images, np.int64)
    res.image_done = [int(t) for t in image_done]
    res.latency_cycles = int(image_done[0]) + 1
    res.interval_cycles = int(image_done[-1] - image_done[-2]) if images >= 2 else None
    res.makespan_cycles = makespan
    for name, (t_w, t_r) in times.items():
        res.occupancy[name] = _max_live(np.asarray(t_w, np.int64), np.asarray(t_r, np.int64))
    return res


def _simulate_events(pg: _Prepared, depths: dict) -> SimResult:
    """Event-driven: each kernel advances word by word (the iterations between two words cost one
    addition) as far as the words it reads and the free slots it writes are known; a kernel that
    advances wakes its neighbours. No kernel able to advance before all are done is a deadlock."""
    g, images = pg.g, pg.images
    edges = list(g.edges.values())
    eid = {e.name: i for i, e in enumerate(edges)}
    dep = [int(depths[e.name]) for e in edges]
    wt: list[list[int]] = [[] for _ in edges]   # per edge: cycle each word was written
    rt: list[list[int]] = [[] for _ in edges]   # per edge: cycle each word was read
    ev, pos, last_s, last_it, neigh = {}, {}, {}, {}, {}
    for a in pg.order:
        prog = g.actors[a]
        ins = [eid[pg.ins[a][p].name] for p in range(len(prog.reads))]
        outs = [eid[pg.outs[a][p].name] for p in range(len(prog.writes))]
        ev[a] = _events(pg, a, ins, outs)
        pos[a], last_s[a], last_it[a] = 0, -1, -1
        neigh[a] = [edges[e].src for e in ins] + [edges[e].dst for e in outs]
    todo, queued = list(reversed(pg.order)), set(pg.order)
    while todo:
        a = todo.pop()
        queued.discard(a)
        evs, k, s_prev, it_prev, lat = ev[a], pos[a], last_s[a], last_it[a], pg.lat[a]
        k0 = k
        while k < len(evs):
            it, rd, wr = evs[k]
            t = s_prev + it - it_prev
            blocked = False
            for e in rd:
                j = len(rt[e])
                if j >= len(wt[e]):
                    blocked = True
                    break
                v = wt[e][j] + 1
                if v > t:
                    t = v
            if blocked:
                break
            for e in wr:
                j = len(wt[e]) - dep[e]
                if j >= 0:
                    if j >= len(rt[e]):
                        blocked = True
                        break
                    v = rt[e][j] + 1 - lat
                    if v > t:
                        t = v
            if blocked:
                break
            for e in rd:
                rt[e].append(t)
            for e in wr:
                wt[e].append(t + lat)
            s_prev, it_prev = t, it
            k += 1
        pos[a], last_s[a], last_it[a] = k, s_prev, it_prev
        if k > k0:
            for b in neigh[a]:
                if b not in queued:
                    queued.add(b)
                    todo.append(b)
    if all(pos[a] >= len(ev[a]) for a in pg.order):
        makespan = max((last_s[a] + (pg.n[a] - 1 - last_it[a]) + pg.lat[a] + 1 for a in pg.order if pg.n[a]),
                       default=0)
        return _sim_result(pg, depths, {e.name: (wt[i], rt[i]) for i, e in enumerate(edges)}, makespan)
    res = SimResult(depths, images, deadlock=True)
    for a in pg.order:
        if pos[a] >= len(ev[a]):
            continue
        _, rd, wr = ev[a][pos[a]]
        for e in rd:
            if len(rt[e]) >= len(wt[e]):
                res.blocked.append(Blocked(edges[e].name, "empty", len(wt[e]) - len(rt[e]), dep[e], edges[e].src,
                                           edges[e].dst))
        for e in wr:
            j = len(wt[e]) - dep[e]
            if j >= len(rt[e]):
                res.blocked.append(Blocked(edges[e].name, "full", len(wt[e]) - len(rt[e]), dep[e], edges[e].src,
                                           edges[e].dst))
    return res


# -- the backend's kernel graph ----------------------------------------------------------------------

def token_graph(hw) -> TokenGraph:
    """The token graph of a kernel graph (backend.graph.HwGraph): every kernel's
    ``token_program()``, the accelerator's input as a source (``host_in``) and its output as a sink
    (``host_out``); edges named as the generated streams (graph.stream_names: ``in``, ``out``,
    ``s<i>_<kernel>[_<port>]``)."""
    names = stream_names(hw)
    g = TokenGraph()
    progs = {id(k): k.token_program() for k in hw.nodes}

    def port_words(k, port: int, out: bool) -> int:
        p = progs[id(k)]
        part = (p[-1] if out else p[0]) if isinstance(p, tuple) else p
        return (part.writes if out else part.reads)[port].size

    ie, oe = hw.input_edge, hw.output_edge
    g.add_source("host_in", port_words(ie.dst, ie.dst_port, False))
    for k in hw.topo_order():
        g.add(k.ident, progs[id(k)])
    g.add_sink("host_out", port_words(oe.src, oe.src_port, True))
    for e in hw.edges:
        src, sp = (e.src.ident, e.src_port) if e.src is not None else ("host_in", 0)
        dst, dp = (e.dst.ident, e.dst_port) if e.dst is not None else ("host_out", 0)
        g.connect(names[id(e)], src, sp, dst, dp, width=e.width)
    return g


_CACHE: dict = {}


def size_graph_fifos(hw, images: int = 2) -> SizingResult:
    """The FIFO-sizing pass: sizes every stream of ``hw`` (sets ``edge.depth``; the accelerator's
    in/out streams are AXI ports and keep theirs) and keeps the result as ``hw.fifo_sizing``.
    Memoised per process on the kernels (the same layer objects at the same folding: the design-
    space search sizes the same graphs many times)."""
    order = hw.topo_order()
    key = (images,) + tuple((id(k.layer), type(k).__name__, k.ident, k.cycles(), k.in_width(), k.out_width(),
                             k.in_words(), k.out_words()) for k in order) \
        + tuple((getattr(e.src, "ident", None), e.src_port, getattr(e.dst, "ident", None), e.dst_port) for e in hw.edges)
    hit = _CACHE.get(key)
    if hit is None:
        if len(_CACHE) >= 128:
            _CACHE.clear()
        hit = (size_fifos(token_graph(hw), images), [k.layer for k in order])  # the layers keep their ids
        _CACHE[key] = hit
    res = copy.deepcopy(hit[0])
    names = stream_names(hw)
    for e in hw.edges:
        if not e.external:
            e.depth = res.edges[names[id(e)]].depth
    hw.fifo_sizing = res
    return res


# -- resources ------------------------------------------------------------------------------------

#: deepest FIFO counted as shift-register LUTs (SRL32: one LUT per bit of the word per 32 words)
SRL_MAX_DEPTH = 32


def fifo_resources(depth: int, width: int) -> dict:
    """Estimated cost of a FIFO of ``depth`` words of ``width`` bits (not synthesised): depth <= 32
    (SRL_MAX_DEPTH) -> shift registers, ``width * ceil(depth/32)`` LUTs + its counters; deeper ->
    block RAM, the RAMB18 count of a depth x width memory (UG573 aspect ratios, kernels.mvu._bram18)
    and the counters in LUTs. Counters: 2 * ceil(log2(depth + 1)) LUTs."""
    from ..kernels.mvu import _bram18

    ctrl = 2 * math.ceil(math.log2(depth + 1))
    if depth <= SRL_MAX_DEPTH:
        return {"impl": "srl", "lut": width * math.ceil(depth / 32) + ctrl, "bram18": 0}
    return {"impl": "bram", "lut": ctrl, "bram18": _bram18(depth, width)}


def trim_fifos(g: TokenGraph, depths: dict[str, int], images: int = 2) -> dict[str, int]:
    """Smaller depths with the same per-image completion cycles as ``depths`` (e.g. those of
    :func:`size_fifos`): edge by edge, largest FIFO (bits) first, the smallest depth found by
    bisection whose :func:`simulate` run completes every image at the same cycle (more depth never
    delays a word, so the test is monotone in one depth). Every accepted step is a full simulation
    of the final depths so far; internal edges keep theirs."""
    depths = dict(depths)
    target = simulate(g, depths, images)
    if target.deadlock:
        raise ValueError("the depths to trim deadlock: " + target.message())
    deep = sorted((e for e in g.edges.values() if not e.internal and depths[e.name] > MIN_DEPTH),
                  key=lambda e: (-depths[e.name] * max(e.width, 1), e.name))
    for e in deep:
        lo, hi = MIN_DEPTH, depths[e.name]
        while lo < hi:
            mid = (lo + hi) // 2
            run = simulate(g, {**depths, e.name: mid}, images)
            if not run.deadlock and run.image_done == target.image_done:
                hi = mid
            else:
                lo = mid + 1
        depths[e.name] = hi
    return depths
