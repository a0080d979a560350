#!/usr/bin/env python
"""Benchmark of the HLS backend's C simulation (csim) against onnxruntime.

For each model: compile time (lowering + code generation), g++ build time of the csim driver, csim
throughput on the bundled 2,000 MNIST test images (CNV: 2,000 CIFAR-shaped images made from them),
and, in the same run, onnxruntime's throughput on the exported model (float-equivalent QONNX made
runnable by abcn_hw.compiler.export_runtime, graph optimisations on) and on the lowered graph;
for lenet (3,3) also the wall time of compile + verify. Writes docs/results/bench_csim.json.

    python scripts/bench_csim.py [--models tfc_1w1a,sfc_1w1a,lfc_1w1a,cnv_1w1a,lenet33] [--images 2000] [--lenet-run RUN_DIR]

Models are random-weight (one SGD step, batch norm calibrated on data) unless --lenet-run points to a
trained `abcn-hw train` run; bit-exactness and throughput do not depend on training.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "backend"))


REPEATS = 3  # each throughput is the best of this many runs (csim and onnxruntime alike)


def _ort_throughput(proto, x: np.ndarray, optimize: bool, batch: int = 256, repeats: int = REPEATS) -> float:
    from abcn_hw.compiler.export_runtime import run, session

    sess = session(proto, optimize=optimize)
    run(sess, x[:batch], batch)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        run(sess, x, batch)
        best = min(best, time.perf_counter() - t)
    return len(x) / best


def bench_model(name: str, tmp: Path, images: int, lenet_run: str | None) -> dict:
    import onnx
    from _models import bnn_pynq, cifar_like, mnist, zoo

    from abcn_hw.backend import compile
    from abcn_hw.compiler.export_runtime import runnable_export
    from abcn_hw.sim import build, simulate, verify

    if name == "lenet33":
        if lenet_run:
            path = str(Path(lenet_run) / "model.onnx")
            x = mnist("test")[0]
            source = f"trained run {lenet_run}"
        else:
            path, x = zoo("lenet", 3, 3, str(tmp / "lenet33.onnx"))
            source = "zoo lenet M=3 N=3, random weights + calibrated BN"
    elif name.startswith("cnv"):
        path, _ = bnn_pynq(name, str(tmp / f"{name}.onnx"))
        x = cifar_like(images, 7)
        source = f"BNN-PYNQ {name}, random weights + calibrated BN; CIFAR-shaped inputs from MNIST"
    else:
        path, x = bnn_pynq(name, str(tmp / f"{name}.onnx"))
        source = f"BNN-PYNQ {name}, random weights + calibrated BN"
    x = np.ascontiguousarray(x[:images], np.float32)
    out = tmp / f"build_{name}"

    t0 = time.perf_counter()
    res = compile(path, out)
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    build(out)
    t_build = time.perf_counter() - t0

    simulate(out, x[:64])  # warm-up: onnxruntime sessions of the host graphs, the library load

    def best_of(repeats: int, **kwargs):
        """(fastest result, its wall time) of ``repeats`` end-to-end simulate() calls."""
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            r = simulate(out, x, **kwargs)
            runs.append((time.perf_counter() - t0, r))
        t_best, r_best = min(runs, key=lambda p: p[0])
        return r_best, t_best

    sim, t_csim = best_of(REPEATS)
    sim1, t_csim1 = best_of(REPEATS, threads=1)
    assert np.array_equal(sim1.output, sim.output)
    exported = runnable_export(onnx.load(path))
    lowered = onnx.load(str(out / "host" / "lowered.onnx"))
    ort_export = _ort_throughput(exported, x, optimize=True)
    ort_export_noopt = _ort_throughput(exported, x, optimize=False)
    ort_lowered = _ort_throughput(lowered, x, optimize=True, batch=64)
    rec = {
        "model": name, "source": source, "images": len(x),
        "layers": len(res.network.layers), "folding": res.folding,
        "estimate": {"ii_cycles": res.estimate.ii, "fps_at_clock": round(res.estimate.fps, 1),
                     "clock_mhz": res.estimate.clock_mhz, "lut": res.estimate.to_dict()["lut"],
                     "bram18": res.estimate.to_dict()["bram18"]},
        "compile_s": round(t_compile, 3), "gxx_build_s": round(t_build, 3),
        "csim_threads": sim.threads,
        "csim_s": round(t_csim, 3), "csim_images_per_s": round(len(x) / t_csim, 1),
        "csim_loop_images_per_s": round(len(x) / sim.sim_seconds, 1),
        "csim_1thread_images_per_s": round(len(x) / t_csim1, 1),
        "csim_1thread_loop_images_per_s": round(len(x) / sim1.sim_seconds, 1),
        "ort_exported_images_per_s": round(ort_export, 1),
        "ort_exported_noopt_images_per_s": round(ort_export_noopt, 1),
        "ort_lowered_images_per_s": round(ort_lowered, 1),
        "csim_vs_ort_exported": round((len(x) / t_csim) / ort_export, 3),
        "csim_1thread_vs_ort_exported": round((len(x) / t_csim1) / ort_export, 3),
        "cycles_match": sim.cycles_match,
    }
    if name == "lenet33":
        # end to end: a fresh compile + g++ build + verify (exported vs lowered vs csim)
        fresh = tmp / "build_lenet33_e2e"
        t0 = time.perf_counter()
        compile(path, fresh)
        v = verify(path, fresh, x)
        rec["compile_plus_verify_s"] = round(time.perf_counter() - t0, 3)
        rec["verify"] = {"bit_exact": v.bit_exact, "ok": v.ok, "images": v.images, "mismatches": v.mismatches,
                         "prediction_agreement": v.prediction_agreement, "cycles_match": v.cycles_match}
    else:
        v = verify(path, out, x)
        rec["verify"] = {"bit_exact": v.bit_exact, "ok": v.ok, "images": v.images, "mismatches": v.mismatches,
                         "prediction_agreement": v.prediction_agreement, "cycles_match": v.cycles_match}
    return rec


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="tfc_1w1a,sfc_1w1a,lfc_1w1a,cnv_1w1a,lenet33")
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--lenet-run", default=None, help="a trained lenet (3,3) run directory (model.onnx)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "bench_csim.json"))
    args = ap.parse_args(argv)
    import warnings

    warnings.filterwarnings("ignore")
    results = []
    with tempfile.TemporaryDirectory(prefix="abcn_bench_") as tmp:
        for name in args.models.split(","):
            print(f"== {name}", flush=True)
            rec = bench_model(name.strip(), Path(tmp), args.images, args.lenet_run)
            print(json.dumps(rec, indent=1, default=str), flush=True)
            results.append(rec)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    doc = {"benchmark": "abcn-hw csim vs onnxruntime", "cpus": os.cpu_count(), "load_average_at_end": load,
           "machine": platform.machine(), "python": platform.python_version(),
           "note": "csim_images_per_s: abcn_hw.sim.simulate end to end (host pre/post graphs, packing, the "
                   "compiled design called in process as a shared library, unpacking) with the batch split over "
                   "csim_threads threads (64 images per abcn_top call); csim_loop_*: the driver's simulation "
                   f"loop alone; csim_1thread_*: one thread. Every throughput is the best of {REPEATS} runs. "
                   "onnxruntime runs on all cores with batch 256; ratios are against its exported-model "
                   "throughput measured in the same run.",
           "results": results}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
