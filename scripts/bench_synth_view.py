#!/usr/bin/env python
"""Throughput of the synthesis view (``simulate(..., variant="synth")``: the synthesizable loops and
ap_uint ROMs, what Vitis HLS compiles) on lenet ABC (3,3), for two versions of the kernel library
hls/include/abcn (git refs), in one process, interleaved, best of the rounds.

Both versions simulate the same generated project (only include/abcn is swapped; the compiled
libraries are cached in the project by source hash, so ``--build`` can reuse a project of an earlier
run). The newer version's outputs are checked equal to the fast view's on every image and to the
older version's on the images both ran, and its cycle counts to the estimate. Writes
docs/results/bench_synth_view.json.

    python scripts/bench_synth_view.py [--base main] [--head HEAD] [--images 2000] [--base-images 100]
                                       [--rounds 2] [--build DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "backend"))


def export_headers(ref: str, dest: Path) -> Path:
    """hls/include/abcn of git ``ref`` into dest."""
    dest.mkdir(parents=True)
    names = subprocess.run(["git", "ls-tree", "--name-only", f"{ref}:hls/include/abcn"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    for name in names:
        blob = subprocess.run(["git", "show", f"{ref}:hls/include/abcn/{name}"], cwd=ROOT, check=True,
                              capture_output=True).stdout
        (dest / name).write_bytes(blob)
    return dest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="main", help="git ref of the older kernel library")
    ap.add_argument("--head", default="HEAD", help="git ref of the newer kernel library")
    ap.add_argument("--images", type=int, default=2000, help="images the newer version runs")
    ap.add_argument("--base-images", type=int, default=100, help="images the older version runs")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--build", default=None, help="a compiled lenet (3,3) project to reuse (else a temp one)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "bench_synth_view.json"))
    args = ap.parse_args(argv)
    from _models import mnist, zoo

    from abcn_hw.backend import compile
    from abcn_hw.sim import build, simulate

    x = np.ascontiguousarray(mnist("test")[0], np.float32)
    n = {"base": min(args.base_images, len(x)), "head": min(args.images, len(x))}
    with tempfile.TemporaryDirectory(prefix="abcn_synth_view_") as tmp:
        heads = {k: export_headers(getattr(args, k), Path(tmp) / k) for k in ("base", "head")}
        b = Path(args.build) if args.build else Path(tmp) / "build"
        if not (b / "src" / "top.cpp").is_file():
            path, _ = zoo("lenet", 3, 3, str(Path(tmp) / "lenet33.onnx"))
            compile(path, b)

        def use(k: str) -> float:
            shutil.rmtree(b / "include" / "abcn")
            shutil.copytree(heads[k], b / "include" / "abcn")
            t0 = time.perf_counter()
            build(b, variant="synth", library=True)
            return time.perf_counter() - t0

        gxx = {k: use(k) for k in ("base", "head")}  # first builds (cached afterwards)
        best, out = {}, {}
        for r in range(args.rounds):
            for k in ("base", "head"):
                use(k)
                simulate(b, x[:2], variant="synth")
                t0 = time.perf_counter()
                out[k] = simulate(b, x[:n[k]], variant="synth")
                best[k] = min(best.get(k, float("inf")), time.perf_counter() - t0)
                print(f"round {r + 1} {k}: {n[k] / best[k]:.1f} images/s", flush=True)
        fast = simulate(b, x[:n["head"]], variant="fast")  # the fast view of the newer library
        m = min(n.values())
        checks = {
            "head_equals_fast_view": bool(np.array_equal(out["head"].output, fast.output)
                                          and np.array_equal(out["head"].accumulators, fast.accumulators)),
            "head_equals_base_synthesis_view": bool(np.array_equal(out["head"].accumulators[:m],
                                                                   out["base"].accumulators[:m])),
            "cycles_match": bool(out["head"].cycles_match and out["base"].cycles_match),
        }
    rate = {k: n[k] / best[k] for k in best}
    res = {
        "benchmark": "synthesis view of lenet ABC (3,3) (zoo, random weights + calibrated BN), two kernel libraries",
        "base": args.base, "head": args.head, "images": n, "rounds": args.rounds, "threads": out["head"].threads,
        "images_per_s": {k: round(v, 1) for k, v in rate.items()},
        "seconds_per_2000_images": {k: round(2000 / v, 1) for k, v in rate.items()},
        "speedup": round(rate["head"] / rate["base"], 2),
        "gxx_first_build_s": {k: round(v, 1) for k, v in gxx.items()},
        "load_average_end": [round(v, 2) for v in os.getloadavg()], "cpus": os.cpu_count(), **checks,
        "note": "simulate(..., variant='synth') end to end, same process, interleaved rounds, best of the rounds; "
                "a shared machine: see the load average. g++ times are wall times of the first builds "
                "(0 when the project had them cached).",
    }
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
