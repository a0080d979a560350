"""Folding (PE/SIMD per layer), the stream stage list, and cycle / resource estimates.

Cycles. Every kernel of the library runs one pipelined loop at II=1 (hls/README.md), so its
cycles per image are its loop iterations per image:

* window generator (SlidingWindowRect): ``min(KH-PT, H)*W*CF + OH*max(OW*KH*KW*CF, SH*W*CF)``, CF = C/SIMD
* matrix-vector unit: ``vectors * (MW/SIMD) * (MH/PE)``
* width converter: ``max(in_words, out_words)``;  bit max-pool: ``H*W*CF`` (non-overlapping square
  pool), else window generator + ``OH*OW*KH*KW*CF`` (BitMaxPoolRect)

The dataflow pipeline's initiation interval (cycles per image in steady state) is the slowest
stage's; FPS = clock / II; the latency reported is the sum of the stage cycles (an upper bound:
stages overlap). The C simulation counts every kernel's loop iterations (abcn::IterCounter), and
``report.json`` states whether the counts equal these formulas.

Automatic folding for a target FPS: the cycle budget is ``clock / fps``; layer by layer, the
(PE, SIMD) pair with the smallest PE*SIMD (ties: fewer cycles, then smaller PE) whose stages all
fit the budget is chosen, PE | MH and SIMD | C (convolution: SIMD folds one pixel's channels) or
SIMD | MW (fully connected). If no pair fits, the fastest one is used and the report says the
target is missed.

Resources: the FINN-R analytical cost model (M. Blott, T. B. Preusser, N. J. Fraser,
G. Gambardella, K. O'Brien, Y. Umuroglu, M. Leeser, K. Vissers, "FINN-R: An End-to-End
Deep-Learning Framework for Fast Exploration of Quantized Neural Networks", ACM TRETS 11(3),
2018), in the form FINN implements it for its matrix-vector-activation unit
(``lut_estimation`` / ``bram_estimation``): per PE and SIMD lane of W-bit weights and A-bit inputs

    LUT  = c0 + c1 * PE * (mult + addertree + acc + thr + comp) + c2,   c0 = 300, c1 = 1.1
    mult = SIMD * (2*ceil((W+A)/6) - 1) * (W+A)       (W = A = 1: the XNOR)
    addertree = (W+A) * (2*SIMD - 1),   acc = accumulator bits
    thr  = T * acc * ceil(TMEM/64),  comp = T * acc  (T thresholds per channel, TMEM = MH/PE)
    c2   = PE*SIMD*W*ceil(WMEM/64) when the weights (WMEM = MW*MH/(PE*SIMD) words) fit LUTRAM
           (WMEM <= 128), else 0;
    BRAM18 = RAMB18 count of a WMEM x (PE*SIMD*W) memory (the FINN-R/UG573 aspect-ratio table).

For an ABC layer (M weight bases, N activation bases) each PE holds M*N XNOR-popcount lanes (so
mult/addertree/acc are counted M*N times with acc = popcount bits) plus the multi-base combiner
(M*N coefficient products summed into the ACC_W-bit accumulator, counted as M*N adders of ACC_W
bits); the thresholds are T = N' (next layer's bases) comparators of ACC_W bits; the M weight
bases are M memories of WMEM x PE*SIMD bits. The integer first layer uses W = 1, A = input bits.
A binary lane replaces FINN-R's generic mult + addertree by the structure of abcn::popcount
(common.hpp): mult = SIMD (one XNOR per bit), addertree = ``popcount_luts(SIMD)`` (kernels/mvu.py):
3 LUT6 per 6-bit group count and a balanced adder tree, one LUT per sum bit (e.g. SIMD = 16: groups
of 6, 6, 4 bits, 9 LUTs, adders of 3 and 4 bits, 16 LUTs in all; FINN-R's generic terms gave 94).
A zero-padded binary convolution (PyTorch padding, abcn::ZeroPadCorrection) adds per PE the M*N
adders of its border correction (popcount bits each) and the correction table, M words of CW bits
and depth TMEM*RC*CC (row x column border classes), counted like the thresholds
(``M * CW * ceil(TMEM*RC*CC/64)``); its cycles do not change (the add sits in the dot's pipeline
stage). These are estimates for design-space exploration, not synthesis results.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

from ..errors import UsageError
from . import limits
from .graph import HwGraph
from .ir import MatrixLayer, Network
from .kernels.bit_maxpool import pool_iters  # noqa: F401  (re-exported: the cycle formulas live in the kernels)
from .kernels.mvu import _bram18, folding_problem, layer_resources, mvu_iters, word_bits  # noqa: F401
from .kernels.sliding_window import sliding_window_iters

DEFAULT_CLOCK_MHZ = 100.0
#: default folding (no --folding / --target-fps): throughput-oriented, also fast in C simulation
DEFAULT_MAX_SIMD = 64
DEFAULT_MAX_PE = 16


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


# -- folding ------------------------------------------------------------------------------------

def validate_folding(net: Network, fold: dict[str, tuple[int, int]]) -> None:
    bad = [p for p in (folding_problem(layer, *fold[layer.ident], limits.MAX_WORD_BITS, limits.MAX_FOLD)
                       for layer in net.matrix_layers) if p]
    if bad:
        raise UsageError("invalid folding: " + "; ".join(bad), fix="PE must divide the output channels, SIMD the "
                         "input channels (conv) or the input length (fully connected)")


def read_folding(net: Network, spec) -> dict[str, tuple[int, int]]:
    """``spec``: a path to a JSON file or a dict ``{layer: {"PE": p, "SIMD": s}}``; layers are named by
    their id (``L0_Conv_0``, as in folding.json) or their node name. Missing layers keep the default."""
    if not isinstance(spec, dict):
        try:
            with open(spec, encoding="utf-8") as f:
                spec = json.load(f)
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read the folding file: {e}", str(spec)) from e
    if isinstance(spec, dict) and "layers" in spec and isinstance(spec["layers"], (list, dict)):
        spec = spec["layers"]
    if isinstance(spec, list):  # folding.json format: [{"id":..., "PE":..., "SIMD":...}, ...]
        spec = {str(e.get("id", e.get("node"))): e for e in spec if isinstance(e, dict)}
    if not isinstance(spec, dict):
        raise UsageError("the folding file must map layers to {\"PE\": p, \"SIMD\": s}")
    fold = default_folding(net)
    by_name = {}
    for layer in net.matrix_layers:
        by_name[layer.ident] = layer
        by_name.setdefault(layer.node, layer)
    unknown = []
    for key, val in spec.items():
        layer = by_name.get(key)
        if layer is None or not isinstance(val, dict):
            unknown.append(str(key)[:40])
            continue
        pe, simd = fold[layer.ident]
        try:
            pe = int(val.get("PE", pe))
            simd = int(val.get("SIMD", simd))
        except (TypeError, ValueError) as e:
            raise UsageError(f"folding of {layer.ident}: PE/SIMD must be integers") from e
        fold[layer.ident] = (pe, simd)
    if unknown:
        raise UsageError("the folding names unknown layers: " + ", ".join(json.dumps(u) for u in sorted(unknown)),
                         fix="use the layer ids of folding.json (" + ", ".join(l.ident for l in net.matrix_layers) + ")")
    validate_folding(net, fold)
    return fold


def default_folding(net: Network) -> dict[str, tuple[int, int]]:
    fold = {}
    for layer in net.matrix_layers:
        pe = max(d for d in divisors(layer.mh) if d <= DEFAULT_MAX_PE)
        simd = max(d for d in divisors(layer.simd_len) if d <= DEFAULT_MAX_SIMD)
        fold[layer.ident] = (pe, simd)
    return fold


def auto_folding(net: Network, target_fps: float, clock_mhz: float) -> tuple[dict[str, tuple[int, int]], bool]:
    """Cheapest folding (sum of PE*SIMD, greedily per layer) meeting ``target_fps``; returns
    (folding, met)."""
    if not (target_fps > 0 and math.isfinite(target_fps)):
        raise UsageError(f"--target-fps must be a positive number, got {target_fps}")
    budget = clock_mhz * 1e6 / target_fps
    fold: dict[str, tuple[int, int]] = {}
    met = True
    for li, layer in enumerate(net.layers):
        if not isinstance(layer, MatrixLayer):
            continue
        prev_pe = input_elements_per_word(net, layer, fold)
        best = None
        for pe in divisors(layer.mh):
            if pe > limits.MAX_FOLD:
                break
            for simd in divisors(layer.simd_len):
                if simd > limits.MAX_FOLD:
                    break
                if word_bits(layer, pe, simd) > limits.MAX_WORD_BITS:
                    continue
                cyc = max(c for _, c in _layer_stage_cycles(net, li, pe, simd, prev_pe))
                key = (cyc > budget, pe * simd if cyc <= budget else cyc, cyc, pe)
                if best is None or key < best[0]:
                    best = (key, pe, simd)
        if best is None:
            raise UsageError(f"{layer.ident}: no folding keeps the stream words within {limits.MAX_WORD_BITS} bits")
        (over, _, _, _), pe, simd = best
        met = met and not over
        fold[layer.ident] = (pe, simd)
    validate_folding(net, fold)
    return fold, met


def input_elements_per_word(net: Network, layer, fold: dict[str, tuple[int, int]]) -> int | None:
    """Elements per word (per base) of the stream into ``layer`` at folding ``fold``: the PE of the
    matrix layer computing its input (pools pass their input's words on); None for the accelerator
    input, which the host packs at the layer's own SIMD."""
    by_out = {l.out_tensor: l for l in net.layers}
    t = layer.inputs[0]
    while t in by_out:
        src = by_out[t]
        if isinstance(src, MatrixLayer):
            return fold[src.ident][0]
        t = src.inputs[0]
    return None


def _layer_stage_cycles(net: Network, li: int, pe: int, simd: int, prev_w: int | None) -> list[tuple[str, int]]:
    """Cycles of the stages a matrix layer owns: the converter into it (from the previous stream of
    ``prev_w`` elements per word), pools between, window generator, MVU."""
    layer = net.layers[li]
    out = []
    # the stream into this layer: pools directly before it run at the producer's word width
    if prev_w is not None and prev_w != simd:
        words = _elements_into(net, li) // prev_w
        out.append(("wc", max(words, words * prev_w // simd)))
    if layer.geom:
        g = layer.geom
        out.append(("swg", sliding_window_iters(g, layer.c_in // simd)))
    out.append(("mvu", mvu_iters(layer, pe, simd)))
    return out


def _elements_into(net: Network, li: int) -> int:
    layer = net.layers[li]
    if layer.geom:
        return layer.geom.ifm_h * layer.geom.ifm_w * layer.c_in
    return layer.mw


# -- the kernel graph ---------------------------------------------------------------------------

def build_graph(net: Network, fold: dict[str, tuple[int, int]], fifos: bool = True) -> HwGraph:
    """The dataflow graph for a folding: window generators, MVUs, pools, width converters, forks,
    and (``fifos``) the stream depths of the token simulation."""
    from .passes import build_graph as _build

    fold = join_folding(net, fold)
    for layer in net.matrix_layers:
        layer.pe, layer.simd = fold[layer.ident]
    return _build(net, fifos)


def join_folding(net: Network, fold: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """The folding with one PE for all matrix layers whose accumulators meet in a residual join
    (directly or through earlier joins and integer max-pools): a join reads its inputs word by
    word, so their PE fields must line up. Each such group gets the largest PE chosen in it (all
    its layers have the same channel count, so it divides every one; no layer gets slower).
    Chains are unchanged."""
    from .ir import IntMaxPoolLayer, ResidualAddLayer

    by_out = {l.out_tensor: l for l in net.layers}

    def sources(t: str) -> set[str]:
        src = by_out.get(t)
        if isinstance(src, MatrixLayer):
            return {src.ident}
        if isinstance(src, (ResidualAddLayer, IntMaxPoolLayer)):
            return set().union(*(sources(x) for x in src.inputs))
        return set()

    groups: list[set[str]] = []
    for layer in net.layers:
        if isinstance(layer, ResidualAddLayer):
            g = set().union(*(sources(x) for x in layer.inputs))
            for other in [o for o in groups if o & g]:
                groups.remove(other)
                g |= other
            groups.append(g)
    if not groups:
        return fold
    fold = dict(fold)
    for g in groups:
        pe = max(fold[i][0] for i in g)
        for i in g:
            fold[i] = (pe, fold[i][1])
    return fold


# -- estimates ----------------------------------------------------------------------------------

@dataclass
class Estimate:
    clock_mhz: float
    graph: HwGraph
    layers: list[dict]
    ii: int
    latency_cycles: int
    target_fps: float | None = None
    target_met: bool | None = None

    @property
    def stages(self) -> list:
        """The kernels in schedule order."""
        return self.graph.topo_order()

    @property
    def fps(self) -> float:
        return self.clock_mhz * 1e6 / self.ii if self.ii else float("inf")

    @property
    def fifos(self) -> list[dict]:
        """The design's stream FIFOs (passes.fifo_sizing; not the accelerator's in/out AXI streams)."""
        sizing = self.graph.fifo_sizing
        if sizing is None:
            return []
        return [f for f in sizing.to_dict()["fifos"] if f["stream"] not in ("in", "out")]

    def to_dict(self) -> dict:
        fifos = self.fifos
        d = {"clock_mhz": self.clock_mhz, "ii_cycles": self.ii, "fps": round(self.fps, 3),
             "latency_cycles": self.latency_cycles,
             "latency_us": round(self.latency_cycles / self.clock_mhz, 3),
             "lut": sum(l["lut"] for l in self.layers) + sum(f["lut"] for f in fifos),
             "bram18": sum(l["bram18"] for l in self.layers) + sum(f["bram18"] for f in fifos),
             "target_fps": self.target_fps, "target_met": self.target_met,
             "resource_model": "FINN-R (Blott et al., ACM TRETS 2018) as implemented by FINN's MVAU estimates; "
                               "see abcn_hw/backend/folding.py",
             "layers": self.layers,
             "stages": [{"id": k.ident, "kind": k.kind, "layer": k.layer.index, "cycles": k.cycles(),
                         "in_width": k.in_width(), "out_width": k.out_width(),
                         "counter_calls": k.counter_calls} for k in self.stages]}
        sizing = self.graph.fifo_sizing
        if sizing is not None:
            d["fifo_lut"] = sum(f["lut"] for f in fifos)
            d["fifo_bram18"] = sum(f["bram18"] for f in fifos)
            d["fifos"] = fifos
            d["token_simulation"] = {"images": sizing.images, "latency_cycles": sizing.latency_cycles,
                                     "interval_cycles": sizing.interval_cycles,
                                     "makespan_cycles": sizing.makespan_cycles,
                                     "model": "abcn_hw/backend/passes/fifo_sizing.py (estimated pipeline depths; "
                                              "nothing synthesised)"}
        return d

    def table(self) -> str:
        head = ["layer", "op", "M", "N", "MW", "MH", "PE", "SIMD", "cycles", "LUT", "BRAM18"]
        rows = [head]
        for l in self.layers:
            op = l["op"] + (" (zero pad)" if "pad_corr_bits" in l else "")
            rows.append([l["id"], op, str(l.get("M", "-")), str(l.get("N", "-")), str(l.get("MW", "-")),
                         str(l.get("MH", "-")), str(l.get("PE", "-")), str(l.get("SIMD", "-")), str(l["cycles"]),
                         str(l["lut"]), str(l["bram18"])])
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = ["  ".join(c.ljust(wd) for c, wd in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * wd for wd in widths))
        d = self.to_dict()
        summary = (f"II {self.ii} cycles -> {self.fps:,.1f} FPS at {self.clock_mhz:g} MHz; latency <= "
                   f"{self.latency_cycles} cycles ({d['latency_us']} us); LUT ~{d['lut']}, BRAM18 ~{d['bram18']}")
        if self.target_fps is not None:
            summary += f"; target {self.target_fps:g} FPS " + ("met" if self.target_met else "NOT met")
        if "fifos" in d:
            deep = [f"{f['stream']}={f['depth']}" for f in d["fifos"] if f["depth"] > 2]
            summary += (f"\nstream FIFOs (token simulation): {len(d['fifos'])} streams, "
                        + (f"deeper than 2: {', '.join(deep)}" if deep else "all depth 2")
                        + f"; LUT ~{d['fifo_lut']}, BRAM18 ~{d['fifo_bram18']} (included above)")
        return "\n".join(lines + [summary])


def estimate(net: Network, graph: HwGraph, clock_mhz: float, target_fps: float | None = None,
             target_met: bool | None = None) -> Estimate:
    layers = []
    kernels = graph.topo_order()
    for layer in net.layers:
        own = [k for k in kernels if k.layer is layer]
        fused = [k for k in kernels if k.layer is not layer and any(l is layer for l in k.layers)]
        if not own:  # fused into another layer's kernel, which counts the resources
            k = fused[0]
            layers.append({"id": layer.ident, "node": layer.node, "op": layer.op, "cycles": k.cycles(), "lut": 0,
                           "bram18": 0, "stages": {k.kind: k.cycles()}, "fused_into": k.ident})
            continue
        cyc = max(k.cycles() for k in own)
        stages = {k.kind: k.cycles() for k in own}
        if isinstance(layer, MatrixLayer):
            res = layer_resources(layer)
            for k in own:  # the layer's other kernels (window generator, converter, fork)
                if k.kind not in ("mvu", "imvu"):
                    res["lut"] += k.resources()["lut"]
                    res["bram18"] += k.resources()["bram18"]
            layers.append({"id": layer.ident, "node": layer.node, "op": layer.op, "M": layer.m, "N": layer.n,
                           "MW": layer.mw, "MH": layer.mh, "PE": layer.pe, "SIMD": layer.simd, "NOUT": layer.nout,
                           "ACC_W": layer.acc_w, "weight_bits": layer.weight_bits, "cycles": cyc,
                           "stages": stages, **res})
            continue
        res = [k.resources() for k in own]
        layers.append({"id": layer.ident, "node": layer.node, "op": layer.op, "cycles": cyc,
                       "lut": sum(r["lut"] for r in res), "bram18": sum(r["bram18"] for r in res), "stages": stages})
    cycles = [k.cycles() for k in kernels]
    return Estimate(clock_mhz, graph, layers, max(cycles), sum(cycles), target_fps, target_met)
