"""FIFO sizing on the zoo's lenet exports: the token simulation's depths (what compile writes)
against the HLS default depth 2 and against the depths trim_fifos finds by bisection with the exact
bounded simulation (same per-image completion cycles), each checked by that simulation over 2
images, and the time each takes. Writes docs/results/fifo_sizing.json.

    python scripts/bench_fifo_sizing.py [export/lenet-3x3.onnx ...]   (seconds; wall times, so run it on a quiet machine)
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from abcn_hw.backend.folding import auto_folding, build_graph, default_folding, estimate
from abcn_hw.backend.frontend import build_network
from abcn_hw.backend.passes.fifo_sizing import (TokenGraph, elementwise_program, fork_program,
                                                global_sum_pool_program, int_maxpool_program, mvu_program, simulate,
                                                size_fifos, sliding_window_program, token_graph, trim_fifos,
                                                width_converter_program)
from abcn_hw.backend.project import _load

ROOT = Path(__file__).resolve().parents[1]


def foldings(net):
    ii = estimate(net, build_graph(net, default_folding(net)), 100.0).ii
    return {"balanced (compile's default)": auto_folding(net, 100e6 / ii, 100.0)[0],
            "throughput-oriented (PE<=16, SIMD<=64)": default_folding(net),
            "smallest (target 0.001 FPS)": auto_folding(net, 1e-3, 100.0)[0]}


def resnet18_like(hw=224, pe=16, simd=32):
    """Token graph with resnet18's shapes: stem 7x7/2 (3 int channels) + int max-pool 3x3/2 pad 1,
    4 stages of 2 basic blocks (64..512 channels), downsampling blocks with an ABC 1x1/2 shortcut
    sharing the block's threshold (a bit fork), identity blocks forking the residual value,
    global sum pool, fc 512->1000. PE/SIMD capped by the channels."""
    g = TokenGraph()
    n = [0]
    def add(name, prog):
        g.add(name, prog); return name
    def link(a, b, ap=0, bp=0):
        n[0] += 1; g.connect(f"e{n[0]}_{a}>{b}", a, ap, b, bp)
    h = hw
    words_in = h * h  # 3 channels in one word (SIMD=3)
    g.add_source("src", words_in)
    s = add("stem_swg", sliding_window_program(h, h, 1, 7, 7, 2, 2, 3, 3, 3, 3)); link("src", s)
    h = (h + 6 - 7) // 2 + 1
    m = add("stem_mvu", mvu_program(147, 64, 3, pe, h * h)); link(s, m)
    p = add("stem_pool", int_maxpool_program(h, h, 64 // pe, 3, 3, 2, 2, 1, 1, 1, 1))
    g.connect("stem_mvu>pool", m, 0, p, 0)
    h = (h + 2 - 3) // 2 + 1
    r, c = p, 64
    for stage, cout in enumerate([64, 128, 256, 512]):
        for blk in range(2):
            down = cout != c
            st = 2 if down else 1
            sm = min(simd, c)
            b = f"s{stage}b{blk}"
            ho = (h + 2 - 3) // st + 1
            words_r = h * h * (c // pe)
            if down:
                thr = add(b + "_thr", elementwise_program(words_r)); g.connect(b + "_r>thr", r, 0, thr, 0)
                fk = add(b + "_fork", fork_program(words_r)); g.connect(b + "_thr>fork", thr, 0, fk, 0)
                wc = add(b + "_wc1", width_converter_program(pe, sm, words_r)); g.connect(b + "_fork>wc1", fk, 0, wc, 0)
                wcs = add(b + "_wcs", width_converter_program(pe, sm, words_r)); g.connect(b + "_skip_in", fk, 1, wcs, 0)
                ss = add(b + "_swgs", sliding_window_program(h, h, c // sm, 1, 1, 2, 2)); g.connect(b + "_wcs>swgs", wcs, 0, ss, 0)
                ms = add(b + "_mvus", mvu_program(c, cout, sm, pe, ho * ho)); g.connect(b + "_swgs>mvus", ss, 0, ms, 0)
                skip_src = ms
            else:
                fk = add(b + "_fork", fork_program(words_r)); g.connect(b + "_r>fork", r, 0, fk, 0)
                thr = add(b + "_thr", elementwise_program(words_r)); g.connect(b + "_fork>thr", fk, 0, thr, 0)
                wc = add(b + "_wc1", width_converter_program(pe, sm, words_r)); g.connect(b + "_thr>wc1", thr, 0, wc, 0)
                skip_src = fk
            s1 = add(b + "_swg1", sliding_window_program(h, h, c // sm, 3, 3, st, st, 1, 1, 1, 1)); g.connect(b + "_wc1>swg1", wc, 0, s1, 0)
            m1 = add(b + "_mvu1", mvu_program(9 * c, cout, sm, pe, ho * ho)); g.connect(b + "_swg1>mvu1", s1, 0, m1, 0)
            sm2 = min(simd, cout)
            words_o = ho * ho * (cout // pe)
            w2 = add(b + "_wc2", width_converter_program(pe, sm2, words_o)); g.connect(b + "_mvu1>wc2", m1, 0, w2, 0)
            s2 = add(b + "_swg2", sliding_window_program(ho, ho, cout // sm2, 3, 3, 1, 1, 1, 1, 1, 1)); g.connect(b + "_wc2>swg2", w2, 0, s2, 0)
            m2 = add(b + "_mvu2", mvu_program(9 * cout, cout, sm2, pe, ho * ho)); g.connect(b + "_swg2>mvu2", s2, 0, m2, 0)
            a = add(b + "_add", elementwise_program(words_o, inputs=2)); g.connect(b + "_mvu2>add", m2, 0, a, 0)
            g.connect(b + "_skip", skip_src, 1 if not down else 0, a, 1)
            r, c, h = a, cout, ho
    gp = add("gsp", global_sum_pool_program(c // pe, h * h)); g.connect("r>gsp", r, 0, gp, 0)
    thr = add("fc_thr", elementwise_program(c // pe)); g.connect("gsp>thr", gp, 0, thr, 0)
    wc = add("fc_wc", width_converter_program(pe, simd, c // pe)); g.connect("thr>wc", thr, 0, wc, 0)
    fc = add("fc", mvu_program(512, 1000, simd, 8, 1)); g.connect("wc>fc", wc, 0, fc, 0)
    g.add_sink("sink", 125); g.connect("out", fc, 0, "sink", 0)
    return g


def size_and_check(g):
    """(sizing result, its seconds, bounded simulation at the sized depths, its seconds), 2 images."""
    t0 = time.perf_counter()
    res = size_fifos(g, images=2)
    t_size = time.perf_counter() - t0
    t0 = time.perf_counter()
    sim = simulate(g, res.depths(), images=2)
    return res, t_size, sim, time.perf_counter() - t0


def resnet_rows() -> list[dict]:
    """The sizing pass's speed at resnet18's shapes (a token graph built from the kernels' programs,
    not a compiled model, so the pass is timed alone) and the skip FIFOs it sizes."""
    rows = []
    for hw in (64, 224):
        g = resnet18_like(hw)
        res, t_size, sim, t_sim = size_and_check(g)
        rows.append({"graph": f"resnet18-shaped token graph, {hw}x{hw} input, PE 16, SIMD <= 32",
                     "kernels": len(g.actors), "streams": len(g.edges),
                     "iterations_per_image": sum(p.iters for p in g.actors.values()),
                     "skip_depths": {k: v for k, v in res.depths().items() if k.endswith("_skip")},
                     "interval_cycles": res.interval_cycles, "bounded_check_interval_cycles": sim.interval_cycles,
                     "deadlock": sim.deadlock,
                     "seconds": {"size_fifos": round(t_size, 3), "bounded_check": round(t_sim, 3)}})
        print(rows[-1])
    return rows


def main(paths):
    rows = []
    for path in paths:
        net = build_network(_load(path, None)[0])
        for label, fold in foldings(net).items():
            hw = build_graph(net, fold)
            g = token_graph(hw)
            res, t_size, sized, t_sim = size_and_check(g)
            two = simulate(g, {e: 2 for e in g.edges}, images=2)
            t0 = time.perf_counter()
            trimmed = trim_fifos(g, res.depths(), images=2)
            t_trim = time.perf_counter() - t0
            bits = {e.name: e.width for e in g.edges.values()}
            fifo_bits = lambda d: sum(v * bits[k] for k, v in d.items() if k not in ("in", "out"))  # noqa: E731
            rows.append({"model": Path(path).name, "folding": label, "kernels": len(hw.nodes),
                         "iterations_per_image": sum(p.iters for p in g.actors.values()),
                         "estimate_ii_cycles": max(k.cycles() for k in hw.nodes),
                         "sized": {"depths": {k: v for k, v in res.depths().items() if k not in ("in", "out")},
                                   "latency_cycles": sized.latency_cycles, "interval_cycles": sized.interval_cycles,
                                   "deadlock": sized.deadlock, "fifo_bits": fifo_bits(res.depths())},
                         "trimmed": {"depths": {k: v for k, v in trimmed.items() if k not in ("in", "out")},
                                     "fifo_bits": fifo_bits(trimmed)},
                         "depth_2": {"latency_cycles": two.latency_cycles, "interval_cycles": two.interval_cycles,
                                     "deadlock": two.deadlock},
                         "unbounded": {"latency_cycles": res.latency_cycles, "interval_cycles": res.interval_cycles},
                         "seconds": {"size_fifos": round(t_size, 3), "bounded_check": round(t_sim, 3),
                                     "trim_fifos": round(t_trim, 3)}})
            r = rows[-1]
            print(f"{r['model']:18} {label:40} II {r['estimate_ii_cycles']:>7}  sized: interval "
                  f"{sized.interval_cycles} latency {sized.latency_cycles}  depth 2: interval {two.interval_cycles} "
                  f"latency {two.latency_cycles}  deep: "
                  + ", ".join(f"{k}={v}" for k, v in r["sized"]["depths"].items() if v > 2)
                  + "  trimmed: " + ", ".join(f"{k}={v}" for k, v in r["trimmed"]["depths"].items() if v > 2)
                  + f"  ({t_size:.3f} s sizing, {t_sim:.3f} s check, {t_trim:.3f} s trim)")
    out = ROOT / "docs" / "results" / "fifo_sizing.json"
    out.write_text(json.dumps({"command": "python scripts/bench_fifo_sizing.py " + " ".join(paths), "images": 2,
                               "note": "cycles from the token model (estimated latencies, nothing synthesised)",
                               "rows": rows, "resnet18_shaped": resnet_rows()}, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:] or [str(ROOT / "export" / "lenet-3x3.onnx")])
