#!/usr/bin/env python
"""Profile of `abcn-hw verify` at scale on the zoo's `cnv` ABC (3,3): wall time and peak memory of
every stage, each one its own process under `/usr/bin/time -v` (the numbers a user sees).

    python scripts/bench_verify.py [--images 8,64,2000] [--label after] [--work DIR]
                                   [--stages lower,report,compile,gxx,csim,reference,verify]

Stages: `lower` (abcn-hw lower), `report` (abcn-hw lower --report on N inputs), `compile`
(abcn-hw compile: code generation), `gxx` (the g++ build of the csim library, cache cleared first),
`csim` (abcn-hw csim on N images), `reference` (the lowered graph in onnxruntime plus the executed
export, exactly what verify runs as its reference, alone in a process), `verify` (abcn-hw verify on N
images, end to end, the library already built). The model is the zoo's cnv with M = N = 3 bases,
untrained (one SGD step, batch norm calibrated on data, as the test suite builds it); the inputs are
CIFAR-shaped images made from the bundled MNIST digits plus noise (tests/compiler/_builders.cifar_like).
The machine is shared: the 1-minute load average before and after each stage is recorded with it.
Results are merged into docs/results/bench_verify.json under ``--label``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "backend"))
sys.path.insert(0, str(ROOT / "scripts"))
RESULTS = ROOT / "docs" / "results" / "bench_verify.json"
STAGES = ["lower", "report", "compile", "gxx", "csim", "reference", "verify"]
PER_N = {"report", "csim", "reference", "verify"}

_REFERENCE = """
import sys, time, numpy as np, onnx
from abcn_hw.sim.verify import _reference
model, low, xs = sys.argv[1:4]
x = np.load(xs)
exported = onnx.load(model)
lowered = onnx.load(low)
t = time.perf_counter()
ref, cmp = _reference(exported, lowered, x)
print("reference_s", time.perf_counter() - t, "output_equal", cmp.output_equal)
"""

_GXX = """
import sys, time
from abcn_hw.sim.csim import build
t = time.perf_counter()
build(sys.argv[1], library=True)
print("gxx_s", time.perf_counter() - t)
"""


def timed(cmd: list[str], log: Path) -> dict:
    """Run ``cmd`` under /usr/bin/time -v; wall seconds, peak RSS (MiB), exit code, load average."""
    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t
    log.write_text(r.stdout + "\n--- stderr ---\n" + r.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    user = re.search(r"User time \(seconds\): ([\d.]+)", r.stderr)
    sys_ = re.search(r"System time \(seconds\): ([\d.]+)", r.stderr)
    return {"wall_s": round(wall, 2), "peak_rss_mib": round(int(rss.group(1)) / 1024, 1) if rss else None,
            "cpu_s": round(float(user.group(1)) + float(sys_.group(1)), 2) if user and sys_ else None,
            "rc": r.returncode, "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2),
            "tail": (r.stdout.strip().splitlines() or [""])[-1][:200]}


def prepare(work: Path, images: list[int]) -> Path:
    from _models import cifar_like, zoo

    work.mkdir(parents=True, exist_ok=True)
    model = work / "cnv33.onnx"
    if not model.is_file():
        zoo("cnv", 3, 3, str(model))
    for n in images:
        p = work / f"x{n}.npy"
        if not p.is_file():
            np.save(p, cifar_like(n, 1))
    return model


def main() -> None:
    from bench_csim_isolation import cpu_model

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", default="8,64,2000", help="comma-separated batch sizes")
    p.add_argument("--stages", default=",".join(STAGES))
    p.add_argument("--label", default="current", help="key of this run in the results file")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_verify")
    p.add_argument("--results", type=Path, default=RESULTS)
    a = p.parse_args()
    images = [int(t) for t in a.images.split(",")]
    stages = [s for s in a.stages.split(",") if s]
    bad = [s for s in stages if s not in STAGES]
    if bad:
        p.error(f"unknown stages {bad}; use {STAGES}")
    work = a.work.resolve()
    model = prepare(work, images)
    build, low = work / "build", work / "lowered.onnx"
    py = sys.executable
    abcn = [py, "-m", "abcn_hw"]  # this checkout's package (cwd = ROOT), whatever the venv installed
    rec: dict = {"cpu": cpu_model(), "cores": os.cpu_count(), "git": _git(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                 "model": "zoo cnv M=3 N=3 (untrained: one SGD step + calibrated BN)", "stages": {}}
    for stage in stages:
        for n in (images if stage in PER_N else [None]):
            key = stage if n is None else f"{stage}_{n}"
            x = str(work / f"x{n}.npy")
            if stage == "lower":
                cmd = [*abcn, "lower", str(model), "--out", str(low), "--force"]
            elif stage == "report":
                cmd = [*abcn, "lower", str(model), "--out", str(work / "lowered_report.onnx"), "--force",
                       "--report", "--inputs", x]
            elif stage == "compile":
                cmd = [*abcn, "compile", str(model), "--out", str(build), "--force"]
            elif stage == "gxx":
                shutil.rmtree(build / ".csim", ignore_errors=True)
                cmd = [py, "-c", _GXX, str(build)]
            elif stage == "csim":
                cmd = [*abcn, "csim", str(build), "--inputs", x, "--out", str(work / f"y{n}.npy"), "--force"]
            elif stage == "reference":
                cmd = [py, "-c", _REFERENCE, str(model), str(build / "host" / "lowered.onnx"), x]
            else:
                cmd = [*abcn, "verify", str(model), str(build), "--inputs", x]
            r = timed(cmd, work / f"{key}.log")
            rec["stages"][key] = r
            print(f"{key:16s} {r['wall_s']:8.2f} s  {r['peak_rss_mib']:8.1f} MiB  rc {r['rc']}  "
                  f"load {r['load_before']}->{r['load_after']}  {r['tail']}", flush=True)
    if build.joinpath("src").is_dir():
        rec["src_bytes"] = sum(f.stat().st_size for f in (build / "src").rglob("*") if f.is_file())
    data = json.loads(a.results.read_text()) if a.results.is_file() else {}
    data[a.label] = rec
    a.results.parent.mkdir(parents=True, exist_ok=True)
    a.results.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {a.results} [{a.label}]")


def _git() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return ""


if __name__ == "__main__":
    main()
