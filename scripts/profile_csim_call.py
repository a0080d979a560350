#!/usr/bin/env python
"""Where the time of one ``abcn_hw.sim.simulate`` call goes (issue 12): phases of a 20,000-image
call (median of 7), with the design's child process kept between calls and restarted before each.

    python scripts/profile_csim_call.py [--models tfc_1w1a,sfc_1w1a]

Phases: Python before the batch (io.json, report.json, build()'s source hash), the child's start,
the copy of the float32 images into the shared memory (and of the outputs back), the child's wall
time (the simulation loop of its longest worker; the rest: native host steps, thread start, first
touches of fresh shared memory), other Python (result assembly, csim_cycles.json).
"""
import argparse
import os
import statistics as st
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests" / "backend"))
warnings.filterwarnings("ignore")
from bench_csim import prepare  # noqa: E402
import abcn_hw.sim.csim; C = sys.modules["abcn_hw.sim.csim"]
from abcn_hw.sim import simulate, build, design_process as D
ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--models", default="tfc_1w1a,sfc_1w1a")
args = ap.parse_args()
tmp = Path(tempfile.mkdtemp(prefix="abcn_profile_"))
T = {}
def wrap(obj, attr, key):
    f = getattr(obj, attr)
    def g(*a, **k):
        t = time.perf_counter(); r = f(*a, **k); T[key] = T.get(key, 0) + time.perf_counter() - t; return r
    setattr(obj, attr, g)
wrap(C, "build", "build (source hash)"); wrap(C, "_project", "_project (io.json)"); wrap(C, "default_timeout", "timeout (report.json)")
wrap(D.DesignProcess, "_reply", "child wall"); wrap(D.DesignProcess, "_buffer", "buffer")
wrap(D.DesignProcess, "run_host", "run_host")
for name in args.models.split(","):
    m = prepare(name, tmp, 20000)
    b, x = m["build"], m["x"]
    lib = str(build(b, library=True)); simulate(b, x)
    for mode in ("kept", "restarted"):
        rows = []
        for r in range(7):
            if mode == "restarted": C._DESIGNS[lib].close()
            T.clear(); t = time.perf_counter(); res = simulate(b, x); tot = time.perf_counter() - t
            T["total"] = tot; T["loop"] = res.sim_seconds; rows.append(dict(T))
        med = {k: st.median(r[k] for r in rows) * 1e3 for k in rows[0]}
        child_start = med["buffer"]; wait = med["child wall"]
        copy_in = med["run_host"] - wait - child_start
        print(f"{Path(b).name} [{mode}] total {med['total']:.1f} ms = {20000/med['total']*1e3:,.0f}/s")
        for k in ("_project (io.json)", "timeout (report.json)", "build (source hash)"):
            print(f"   {k:28s} {med[k]:6.1f}")
        print(f"   {'copy-in + outputs copy-out':28s} {copy_in:6.1f}")
        print(f"   {'child wall':28s} {wait:6.1f}   of which loop (longest worker) {med['loop']:.1f}, rest {wait-med['loop']:.1f}")
        other = med['total'] - med['run_host'] - med['timeout (report.json)'] - med['build (source hash)']
        print(f"   {'child start (restarted) + other Python':28s} {other:6.1f}")
