#!/usr/bin/env python
"""The scale benchmark of issue 10: the zoo's resnet18 (the paper's ImageNet topology) through the
whole pipeline, each stage timed, with its peak memory.

The network is untrained (seeded random weights, batch norm calibrated on seeded random inputs in
[0, 1]). Stages: build + calibrate, export (QONNX, dynamo=False), lower (exact integer graph),
compile (HLS C++ project from the lowered graph), g++ build of the C-simulation library, csim
(images/s), verify (csim == lowered graph on every element, lowering contract, every kernel's
iteration counter == its cycle estimate). Per stage: wall seconds, the peak resident memory during
the stage of this process and of this process plus its children (g++), sampled every 50 ms from
/proc, and getrusage's lifetime peaks (RUSAGE_CHILDREN counts a forked child's copy of the parent,
so it is not g++'s own peak). Writes docs/results/resnet18.json
(with the CPU model and the load average at start and end) and prints a markdown table. A stage
that fails is recorded with its exact error and the later stages are skipped (exit status 1).

    nice -n 5 python scripts/bench_resnet18.py [--size 32] [--m 1] [--n 1] [--images 4]
        [--out docs/results/resnet18.json] [--work DIR] [--profile-export N] [--reuse-export]

``--profile-export N`` runs the export under cProfile and stores the N most expensive entries
(cumulative time) in the JSON (the export's wall time then includes the profiler's overhead).
The issue's goals (stated for 224x224, M = N = 3, 2 cores): lower + compile < 2 min, g++ build
< 3 min, csim >= 2 images/s, peak memory < 8 GiB.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import resource
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.bench_csim_isolation import cpu_model  # noqa: E402

GOALS = {"lower_plus_compile_s": 120.0, "gxx_build_s": 180.0, "csim_images_per_s": 2.0, "peak_rss_gib": 8.0}


def _rss_kib(pid: int | str = "self") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree_rss_kib() -> int:
    """VmRSS of this process plus all its descendants (g++, cc1plus, ...), from /proc."""
    total, todo = 0, [os.getpid()]
    while todo:
        pid = todo.pop()
        total += _rss_kib(pid)
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            pass
    return total


class _PeakSampler:
    """Peak VmRSS of this process, and of it plus its child processes, while a stage runs (a 50 ms
    sampling thread)."""

    def __init__(self):
        self.peak = _rss_kib()
        self.peak_tree = _tree_rss_kib()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, _rss_kib())
            self.peak_tree = max(self.peak_tree, _tree_rss_kib())

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, _rss_kib())


def _mib(kib: float) -> float:
    return round(kib / 1024, 1)


class Bench:
    def __init__(self):
        self.stages: list[dict] = []
        self.failed: dict | None = None

    def stage(self, name: str, fn, profile: int = 0):
        """Run ``fn()`` as stage ``name``; returns its value, or None once a stage has failed."""
        if self.failed is not None:
            self.stages.append({"stage": name, "skipped": True})
            return None
        print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
        prof = cProfile.Profile() if profile else None
        t0 = time.perf_counter()
        rec: dict = {"stage": name}
        with _PeakSampler() as s:
            try:
                if prof is not None:
                    prof.enable()
                try:
                    value = fn()
                finally:
                    if prof is not None:
                        prof.disable()
            except Exception as e:  # the failure is the finding: record it exactly
                value = None
                tb = traceback.extract_tb(e.__traceback__)
                self.failed = rec["error"] = {
                    "type": type(e).__name__, "message": str(e),
                    "where": [f"{Path(f.filename).relative_to(ROOT) if f.filename.startswith(str(ROOT)) else f.filename}"
                              f":{f.lineno} in {f.name}" for f in tb[-6:]]}
                traceback.print_exc()
        rec["seconds"] = round(time.perf_counter() - t0, 2)
        rec["peak_rss_mib"], rec["peak_rss_with_children_mib"] = _mib(s.peak), _mib(s.peak_tree)
        ru_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        ru_kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        rec["maxrss_self_so_far_mib"], rec["maxrss_children_so_far_mib"] = _mib(ru_self), _mib(ru_kids)
        if prof is not None:
            buf = io.StringIO()
            st = pstats.Stats(prof, stream=buf)
            st.sort_stats("cumulative").print_stats(profile)
            rec["profile_top"] = [
                {"function": f"{Path(fn_[0]).name}:{fn_[1]}({fn_[2]})", "ncalls": nc, "tottime_s": round(tt, 2),
                 "cumtime_s": round(ct, 2)}
                for fn_, (cc, nc, tt, ct, _) in sorted(st.stats.items(), key=lambda kv: -kv[1][3])[:profile]]
            rec["profile_total_s"] = round(st.total_tt, 2)
        print(f"    {rec['seconds']:.1f} s, peak RSS {rec['peak_rss_mib']:.0f} MiB"
              + (f"  FAILED: {rec['error']['type']}: {rec['error']['message']}"
                 if "error" in rec else ""), flush=True)
        self.stages.append(rec)
        return value


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=32, help="input height = width (default 32; the paper: 224)")
    ap.add_argument("--m", type=int, default=1, help="weight bases M (default 1)")
    ap.add_argument("--n", type=int, default=1, help="activation bases N (default 1)")
    ap.add_argument("--images", type=int, default=4, help="images for csim and verify (default 4)")
    ap.add_argument("--calib", type=int, default=32, help="random images calibrating batch norm (default 32)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "resnet18.json"))
    ap.add_argument("--work", default=None, help="keep the export and the build here (default: a temp dir)")
    ap.add_argument("--profile-export", type=int, default=0, metavar="N",
                    help="profile the export with cProfile; keep the top N entries (cumulative)")
    ap.add_argument("--export-only", action="store_true", help="stop after the export (e.g. with --profile-export)")
    ap.add_argument("--reuse-export", action="store_true",
                    help="use the export already in --work (made by an earlier run with the same arguments and "
                         "model code) instead of exporting again; the JSON records the export stage as reused")
    args = ap.parse_args()
    if args.size < 1 or args.images < 1 or args.calib < 1:
        print("bench_resnet18: error: --size, --images and --calib must be >= 1", file=sys.stderr)
        return 2

    import torch

    from abcn_hw import api
    from abcn_hw.models import build_model
    from abcn_hw.qonnx_export import export_to_qonnx

    shape = (3, args.size, args.size)
    load0 = os.getloadavg()
    t_start = time.time()
    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_resnet18_")
        work = Path(tmp.name)
    else:
        work = Path(args.work)
        work.mkdir(parents=True, exist_ok=True)
    exported, lowered, build = work / "resnet18.onnx", work / "resnet18.lowered.onnx", work / "build"
    rng = np.random.default_rng(args.seed)
    x_cal = rng.random((args.calib,) + shape, dtype=np.float32)
    x = rng.random((args.images,) + shape, dtype=np.float32)
    b = Bench()
    info: dict = {}

    def build_and_calibrate():
        torch.manual_seed(args.seed)
        net = build_model("resnet18", args.m, args.n, input_shape=shape)
        for mod in net.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.reset_running_stats()
                mod.momentum = None  # cumulative average over the calibration batches
        net.train()
        with torch.no_grad():
            for i in range(0, len(x_cal), 16):
                net(torch.from_numpy(x_cal[i:i + 16]))
        net.eval()
        info["parameters"] = sum(p.numel() for p in net.parameters())
        return net

    net = b.stage("build + calibrate", build_and_calibrate)
    if args.reuse_export and exported.exists():
        b.stages.append({"stage": "export", "reused": str(exported),
                         "note": "not timed here: made by an earlier run with the same arguments"})
    else:
        b.stage("export", lambda: export_to_qonnx(net, shape, exported), profile=args.profile_export)
    net = None
    if args.export_only:
        b.failed = b.failed or {"type": "stopped", "message": "--export-only", "where": []}

    def do_lower():
        res = api.lower(exported, lowered, force=True, quiet=True)
        info["lowered_layers"], info["lowering_exact"] = len(res.report.layers), bool(res.report.exact)
        return res

    b.stage("lower", do_lower)

    def do_compile():
        res = api.compile(lowered, build, force=True)
        est = res["estimate"]
        info["compile_files"] = res["files"]
        info["estimate"] = {k: est[k] for k in ("lut", "bram18", "fps", "ii_cycles", "latency_cycles") if k in est}
        return res

    b.stage("compile", do_compile)
    b.stage("g++ build", lambda: api._build_library(build, "fast", quiet=True))

    def do_csim():
        res = api.csim(build, x, quiet=True)
        info["csim"] = {k: res[k] for k in ("images", "threads", "seconds", "sim_seconds", "images_per_second",
                                            "build_seconds", "cycles_match")}
        return res

    sim = b.stage("csim", do_csim)

    def do_verify():
        res = api.verify(exported, build, x, csim_result=sim, quiet=True)
        info["verify"] = {k: res[k] for k in ("ok", "bit_exact", "mismatches", "lowering_exact", "contract_ok",
                                              "cycles_match", "first_mismatch_layer", "first_cycle_mismatch")
                          if k in res}
        return res

    b.stage("verify", do_verify)

    by = {s["stage"]: s for s in b.stages if "seconds" in s and "error" not in s}
    peak_gib = max(s["peak_rss_with_children_mib"] for s in b.stages if "peak_rss_mib" in s) / 1024
    measured = {
        "lower_plus_compile_s": by["lower"]["seconds"] + by["compile"]["seconds"] if {"lower", "compile"} <= set(by) else None,
        "gxx_build_s": by["g++ build"]["seconds"] if "g++ build" in by else None,
        "csim_images_per_s": info.get("csim", {}).get("images_per_second"),
        "peak_rss_gib": round(peak_gib, 2)}
    goals = {k: {"goal": g, "measured": measured[k],
                 # peak memory of a run that stopped early is no verdict on the whole pipeline
                 "met_here": None if measured[k] is None or (k == "peak_rss_gib" and b.failed) else
                 (measured[k] >= g if k == "csim_images_per_s" else measured[k] < g)} for k, g in GOALS.items()}
    result = {
        "model": "resnet18", "input_shape": list(shape), "weight_bases": args.m, "act_bases": args.n,
        "images": args.images, "calibration_images": args.calib, "seed": args.seed,
        "weights": "untrained (seeded random), batch norm calibrated on seeded uniform [0, 1] inputs",
        "command": "python scripts/bench_resnet18.py " + " ".join(sys.argv[1:]),
        "cpu": cpu_model(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "load_average_start": [round(v, 2) for v in load0],
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_start)),
        "total_seconds": round(time.time() - t_start, 1),
        "stages": b.stages, **info,
        "goals_224x224_m3n3": goals,
        "goals_note": "the goals are stated for 224x224, M = N = 3; met_here only compares this run's numbers",
        "failed": None if args.export_only and b.failed and b.failed["type"] == "stopped" else b.failed,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nresnet18 {shape[1]}x{shape[2]} (M, N) = ({args.m}, {args.n}), {args.images} images; "
          f"{result['cpu']}, load {load0[0]:.1f} -> {result['load_average_end'][0]:.1f}\n")
    print("| stage | wall s | peak RSS MiB (process / with children) |\n|---|---:|---:|")
    for s in b.stages:
        if s.get("skipped") or s.get("reused"):
            print(f"| {s['stage']} | {'skipped' if s.get('skipped') else 'reused'} | |")
        else:
            print(f"| {s['stage']} | {s['seconds']:.1f}{' (FAILED)' if 'error' in s else ''} | "
                  f"{s['peak_rss_mib']:.0f} / {s['peak_rss_with_children_mib']:.0f} |")
    if "csim" in info:
        print(f"\ncsim: {info['csim']['images_per_second']} images/s on {info['csim']['threads']} thread(s)")
    if "verify" in info:
        print(f"verify: {info['verify']}")
    if b.failed:
        print(f"\nFAILED: {b.failed['type']}: {b.failed['message']}\n  at " + "\n  at ".join(b.failed["where"]))
    print(f"wrote {out}")
    if tmp is not None:
        tmp.cleanup()
    return 1 if b.failed and not args.export_only else 0


if __name__ == "__main__":
    sys.exit(main())
