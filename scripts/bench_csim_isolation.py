#!/usr/bin/env python
"""Cost of running the design in a child process (crash isolation) instead of in process.

``abcn_hw.sim.simulate`` runs the compiled design in a child process (abcn_hw/sim/design_process.py)
so that a crashing build dir cannot take Python down. This benchmark measures, in one process,
interleaved, best of REPEATS: simulate() end to end as it is, and simulate() with the batch call
replaced by the in-process ctypes call it replaced (the same library, loaded here). TFC 1W1A and
lenet (3,3), random weights, on N bundled MNIST test images. Writes
docs/results/csim_isolation.json.

    python scripts/bench_csim_isolation.py [--images 64,2000] [--repeats 7]
"""
from __future__ import annotations

import argparse
import ctypes
import importlib
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "backend"))

csim_mod = importlib.import_module("abcn_hw.sim.csim")
_LIBS: dict[str, ctypes.CDLL] = {}


def _in_process(b, io, lib_path, words, images, threads):
    """The batch call as it was before crash isolation: the library loaded into this process."""
    lib = _LIBS.get(str(lib_path))
    if lib is None:
        lib = _LIBS[str(lib_path)] = ctypes.CDLL(str(lib_path))
        lib.abcn_csim_batch.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint,
                                        ctypes.c_void_p, ctypes.POINTER(ctypes.c_double)]
        lib.abcn_csim_batch.restype = ctypes.c_int
        lib.abcn_csim_info.argtypes = [ctypes.c_uint]
        lib.abcn_csim_info.restype = ctypes.c_ulonglong
    in_words, in_ch, out_words, out_ch, stages = (int(lib.abcn_csim_info(i)) for i in range(5))
    body = np.ascontiguousarray(words, np.uint64)
    out = np.zeros(images * out_words * out_ch, np.uint64)
    counts = np.zeros(1 + 2 * stages, np.uint64)
    seconds = ctypes.c_double(0.0)
    rc = lib.abcn_csim_batch(body.ctypes.data, images, out.ctypes.data, threads, counts.ctypes.data,
                             ctypes.byref(seconds))
    assert rc == 0
    counts_raw = [(s, int(counts[1 + 2 * s]), int(counts[2 + 2 * s])) for s in range(stages)]
    return out.reshape(-1, out_ch), int(counts[0]), counts_raw, float(seconds.value)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default="64,2000")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "csim_isolation.json"))
    args = ap.parse_args()
    from _models import bnn_pynq, mnist, zoo

    from abcn_hw.backend import compile
    from abcn_hw.sim import simulate

    sizes = [int(s) for s in args.images.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in ("tfc_1w1a", "lenet33"):
            path = zoo("lenet", 3, 3, str(tmp / "m.onnx"))[0] if name == "lenet33" else \
                bnn_pynq(name, str(tmp / "m.onnx"))[0]
            build = tmp / f"build_{name}"
            compile(path, build)
            x_all = mnist("test")[0]
            for n in sizes:
                x = np.ascontiguousarray(x_all[:n])
                child = csim_mod._run_library
                ref = simulate(build, x).output
                csim_mod._run_library = _in_process
                try:
                    assert np.array_equal(simulate(build, x).output, ref)
                finally:
                    csim_mod._run_library = child
                best = {"child process": float("inf"), "in process": float("inf")}
                for _ in range(args.repeats):
                    for mode in best:
                        csim_mod._run_library = child if mode == "child process" else _in_process
                        try:
                            t = time.perf_counter()
                            simulate(build, x)
                            best[mode] = min(best[mode], time.perf_counter() - t)
                        finally:
                            csim_mod._run_library = child
                row = {"model": name, "images": n,
                       "child_images_per_s": round(n / best["child process"]),
                       "in_process_images_per_s": round(n / best["in process"]),
                       "ratio": round(best["in process"] / best["child process"], 3)}
                print(json.dumps(row), flush=True)
                results.append(row)
    Path(args.out).write_text(json.dumps({"cpu": cpu_model(), "threads": csim_mod.default_threads(),
                                          "repeats": args.repeats, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
