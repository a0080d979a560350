#!/usr/bin/env python
"""Benchmark of the C simulation's host steps: native (tb/csim_host.cpp in the library) vs ONNX
(host/pre.onnx + host/post.onnx in onnxruntime, packing in numpy), against onnxruntime on the
exported graph, all in one process.

For each model: ``abcn_hw.sim.simulate(build, x, host="native")``, the same with ``host="onnx"``
(the path before the native host code) and onnxruntime on the exported model (made runnable by
abcn_hw.compiler.export_runtime, graph optimisations on, batch 256), interleaved, best of 3 each;
then a profile of one call of each simulate path (cProfile: where the per-call time goes outside
the design's child process, and the child's share: host steps + simulation loop). Writes
docs/results/bench_host.json.

    python scripts/bench_host.py [--models tfc_1w1a,sfc_1w1a,lfc_1w1a,lenet33] [--images 20000]
                                 [--lenet-images 2000] [--out docs/results/bench_host.json]

Inputs: the bundled 2,000 MNIST test images, repeated to --images. Models are random-weight
(one SGD step, batch norm calibrated on data); bit-exactness and throughput do not depend on
training. On a shared machine only the ratios of one run mean anything.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "backend"))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_csim_isolation import cpu_model  # noqa: E402

REPEATS = 3
BATCH = 256


def _profile(fn) -> dict:
    """Seconds of one call of ``fn`` by section: cProfile's cumulative times of the functions that
    matter (the child process's work shows as the parent waiting in design_process._read)."""
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    res = fn()
    prof.disable()
    total = time.perf_counter() - t0
    st = pstats.Stats(prof)
    cum: dict[str, float] = {}
    own: dict[str, float] = {}
    for (file, _, name), (_, _, tt, ct, _) in st.stats.items():
        key = f"{Path(file).stem}.{name}"
        cum[key] = cum.get(key, 0.0) + ct
        own[key] = own.get(key, 0.0) + tt
    sections = {
        "total_s": total,
        "check_inputs_s": cum.get("csim.check_inputs", 0.0),
        "build_lookup_s": cum.get("csim.build", 0.0),
        "child_process_s": cum.get("_design_child._read", 0.0),
        "of_which_simulation_loop_s": res.sim_seconds,
        "shared_memory_copies_s": own.get("design_process._exchange", 0.0),
        "onnx_pre_s": cum.get("host.run_pre", 0.0),
        "numpy_packing_s": cum.get("host.pack_input_words", 0.0),
        "numpy_unpacking_s": cum.get("host.unpack_output_chunks", 0.0),
        "onnx_post_s": cum.get("host.run_post", 0.0),
    }
    sections = {k: round(v, 5) for k, v in sections.items() if v or k == "total_s"}
    top = sorted(own.items(), key=lambda kv: -kv[1])[:8]
    sections["top_own_time"] = [[k, round(v, 5)] for k, v in top]
    return sections


def _host_steps(build_dir: Path, x: np.ndarray) -> dict:
    """The host steps alone, one thread, in this process (no design, no child process), best of
    REPEATS interleaved: native (the library's abcn_csim_host_pre + abcn_csim_host_post) vs ONNX
    (host.run_pre + host.pack_input_words, host.unpack_output_chunks + host.run_post), on the
    batch ``x`` and its output words."""
    from _native import load, native_post, native_pre, onnx_post, onnx_pre

    from abcn_hw.sim import build

    io = json.loads((build_dir / "host" / "io.json").read_text())
    pre = (build_dir / "host" / "pre.onnx").read_bytes()
    post = (build_dir / "host" / "post.onnx").read_bytes()
    lib = load(build(build_dir, library=True))
    o = io["accel_output"]
    words = np.zeros((len(x) * o["words"], (o["width"] + 63) // 64), np.uint64)
    t = {"native_pre": [], "onnx_pre": [], "native_post": [], "onnx_post": []}
    for _ in range(REPEATS):
        for key, fn in (("native_pre", lambda: native_pre(lib, io, x)), ("onnx_pre", lambda: onnx_pre(pre, io, x)),
                        ("native_post", lambda: native_post(lib, io, words, len(x))),
                        ("onnx_post", lambda: onnx_post(post, io, words, len(x)))):
            t0 = time.perf_counter()
            fn()
            t[key].append(time.perf_counter() - t0)
    us = {k: round(1e6 * min(v) / len(x), 4) for k, v in t.items()}
    us["onnx_over_native_pre"] = round(us["onnx_pre"] / us["native_pre"], 2)
    us["onnx_over_native_post"] = round(us["onnx_post"] / us["native_post"], 2)
    return us


def bench_model(name: str, tmp: Path, images: int) -> dict:
    import onnx
    from _models import bnn_pynq, mnist, zoo

    from abcn_hw.backend import compile
    from abcn_hw.compiler.export_runtime import run, runnable_export, session
    from abcn_hw.sim import build, simulate

    if name == "lenet33":
        path, _ = zoo("lenet", 3, 3, str(tmp / "lenet33.onnx"))
        source = "zoo lenet M=3 N=3, random weights + calibrated BN"
    else:
        path, _ = bnn_pynq(name, str(tmp / f"{name}.onnx"))
        source = f"BNN-PYNQ {name}, random weights + calibrated BN"
    x0 = mnist("test")[0]
    x = np.ascontiguousarray(np.resize(x0, (images,) + x0.shape[1:]), np.float32)
    out = tmp / f"build_{name}"
    compile(path, out)
    build(out, library=True)
    sess = session(runnable_export(onnx.load(path)), optimize=True)

    # warm-up: the library load, the host graphs' sessions, onnxruntime's arena
    nat = simulate(out, x[:512], host="native")
    ref = simulate(out, x[:512], host="onnx")
    assert nat.host == "native" and ref.host == "onnx"
    assert np.array_equal(nat.output.view(np.uint32), ref.output.view(np.uint32))
    assert np.array_equal(nat.accumulators, ref.accumulators)
    run(sess, x[:BATCH], BATCH)

    times = {"ort": [], "native": [], "onnx": []}
    outside = {"native": [], "onnx": []}  # wall time outside the simulation loop: the host steps + plumbing
    sims = {}
    for _ in range(REPEATS):  # interleaved: the machine's load hits all three alike
        t0 = time.perf_counter()
        run(sess, x, BATCH)
        times["ort"].append(time.perf_counter() - t0)
        for host in ("native", "onnx"):
            t0 = time.perf_counter()
            r = simulate(out, x, host=host)
            times[host].append(time.perf_counter() - t0)
            outside[host].append(times[host][-1] - r.sim_seconds)
            sims[host] = r
    assert np.array_equal(sims["native"].output.view(np.uint32), sims["onnx"].output.view(np.uint32))
    host_steps = _host_steps(out, x)
    best = {k: min(v) for k, v in times.items()}
    ips = {k: len(x) / v for k, v in best.items()}
    return {
        "model": name, "source": source, "images": len(x), "threads": sims["native"].threads,
        "ort_exported_images_per_s": round(ips["ort"], 1),
        "csim_native_host_images_per_s": round(ips["native"], 1),
        "csim_onnx_host_images_per_s": round(ips["onnx"], 1),
        "native_vs_ort_exported": round(ips["native"] / ips["ort"], 3),
        "onnx_host_vs_ort_exported": round(ips["onnx"] / ips["ort"], 3),
        "native_vs_onnx_host": round(ips["native"] / ips["onnx"], 3),
        "runs_s": {k: [round(t, 4) for t in v] for k, v in times.items()},
        "outside_loop_s": {k: [round(t, 4) for t in v] for k, v in outside.items()},
        "best_outside_loop_us_per_image": {k: round(1e6 * min(v) / len(x), 3) for k, v in outside.items()},
        "host_steps_only_us_per_image": host_steps,
        "profile_native": _profile(lambda: simulate(out, x, host="native")),
        "profile_onnx_host": _profile(lambda: simulate(out, x, host="onnx")),
        "cycles_match": sims["native"].cycles_match,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="tfc_1w1a,sfc_1w1a,lfc_1w1a,lenet33")
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--lenet-images", type=int, default=2000)
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "bench_host.json"))
    args = ap.parse_args(argv)
    import warnings

    warnings.filterwarnings("ignore")
    results = []
    load0 = os.getloadavg() if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory(prefix="abcn_bench_host_") as tmp:
        for name in args.models.split(","):
            name = name.strip()
            print(f"== {name}", flush=True)
            rec = bench_model(name, Path(tmp), args.lenet_images if name == "lenet33" else args.images)
            print(json.dumps(rec, indent=1), flush=True)
            results.append(rec)
    doc = {"benchmark": "abcn-hw csim host steps: native vs ONNX, against onnxruntime on the exported graph",
           "command": "python scripts/bench_host.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "cpu": cpu_model(), "cpus": os.cpu_count(),
           "load_average_at_start": load0,
           "load_average_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
           "python": platform.python_version(),
           "note": "csim_native_host: abcn_hw.sim.simulate end to end with the host steps in the compiled "
                   "library (tb/csim_host.cpp); csim_onnx_host: the same call with host='onnx' (the host "
                   "graphs in onnxruntime and the packing in numpy, as before the native host code); "
                   "ort_exported: onnxruntime on the exported model, batch 256, all cores; outside_loop_s: a "
                   "simulate call's wall time minus its simulation loop's (sim_seconds), i.e. the host steps and "
                   "the plumbing, the part this change is about; host_steps_only: quantisation + packing (pre) and "
                   "unpacking + output affine (post) alone, one thread, in the benchmark process (native: the "
                   "library's entry points; ONNX: onnxruntime sessions + numpy). Best of "
                   f"{REPEATS} interleaved runs each, one process. profile_*: one more call under cProfile "
                   "(child_process_s: the parent waiting for the design's process, which runs the native host "
                   "steps and the simulation loop; of_which_simulation_loop_s: the longest time a worker "
                   "thread spent in the simulation loop). The machine is shared: only same-run ratios mean "
                   "anything.",
           "results": results}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
