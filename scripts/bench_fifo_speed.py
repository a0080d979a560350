#!/usr/bin/env python
"""Speed of the FIFO sizing (abcn_hw/backend/passes/fifo_sizing.py) against a baseline revision of
the same module, in one process: CPU seconds (time.process_time), best of ``--reps``, the two
interleaved, and their results asserted identical.

Per model (the token graph of compile's balanced folding):
* ``size_fifos`` (what compile runs), baseline vs current;
* ``simulate`` (the exact bounded check the tests and ``--folding`` depths run) at the sized depths,
  unbounded, and at depth 2 everywhere (a deadlock on residual nets), baseline vs current, unless
  the graph has more than ``--sim-limit`` loop iterations per image (the baseline's event
  simulation takes minutes there; only the current one is timed);
* ``compile`` (lowering included, the FIFO-sizing memo cleared), with the sizing pass
  (``size_graph_fifos``) the baseline's or the current one, and the pass's share. The baseline's pass
  reads the current kernels' token programs (so it gets the current, faster width converter
  program: its share is if anything underestimated).

Models: the zoo's resnet8 ABC (1,1) 3x32x32 and ABC (2,3) 1x28x28 (the two shapes of
tests/backend/test_residual_compile.py), resnet18 ABC (1,1) 32x32 and 224x224, untrained (seeded
weights, batch norm calibrated on seeded uniform inputs), exported into ``--work`` once (reused
after); and any ONNX paths given (exported or lowered). Writes docs/results/fifo_speed.json.

    python scripts/bench_fifo_speed.py --baseline 98107d6 [--models resnet8_cifar,resnet8_mnist,resnet18_32,resnet18_224]
        [--work DIR] [--reps 3] [--sim-limit 5000000] [--out docs/results/fifo_speed.json] [model.onnx ...]
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.bench_csim_isolation import cpu_model  # noqa: E402

MODULE = "abcn_hw/backend/passes/fifo_sizing.py"
ZOO = {"resnet8_cifar": ("resnet8", 1, 1, (3, 32, 32)), "resnet8_mnist": ("resnet8", 2, 3, (1, 28, 28)),
       "resnet18_32": ("resnet18", 1, 1, (3, 32, 32)), "resnet18_224": ("resnet18", 1, 1, (3, 224, 224))}


def baseline_module(rev: str):
    """The module at git revision ``rev``, importable on its own (its relative imports made absolute)."""
    src = subprocess.run(["git", "show", f"{rev}:{MODULE}"], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout
    src = src.replace("from ..graph import", "from abcn_hw.backend.graph import").replace(
        "from ..kernels.", "from abcn_hw.backend.kernels.")
    path = Path(tempfile.mkdtemp(prefix="fifo_baseline_")) / "fifo_sizing_baseline.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("fifo_sizing_baseline", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def zoo_export(name: str, work: Path) -> Path:
    import torch

    from abcn_hw.models import build_model
    from abcn_hw.qonnx_export import export_to_qonnx

    arch, m, n, shape = ZOO[name]
    path = work / f"{name}.onnx"
    if path.exists():
        return path
    torch.manual_seed(0)
    net = build_model(arch, m, n, input_shape=shape)
    for mod in net.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.reset_running_stats()
            mod.momentum = None
    x = np.random.default_rng(0).random((32,) + shape, dtype=np.float32)
    net.train()
    with torch.no_grad():
        for i in range(0, len(x), 16):
            net(torch.from_numpy(x[i:i + 16]))
    net.eval()
    export_to_qonnx(net, shape, path)
    return path


def best_of(reps: int, *fns):
    """Run the functions interleaved ``reps`` times: per function (its last result, best CPU seconds)."""
    best, out = [float("inf")] * len(fns), [None] * len(fns)
    for _ in range(reps):
        for i, fn in enumerate(fns):
            t = time.process_time()
            out[i] = fn()
            best[i] = min(best[i], time.process_time() - t)
    return list(zip(out, best))


def compile_seconds(path: Path, out: Path, passes_: list, reps: int) -> list[tuple[float, float]]:
    """Per FIFO-sizing pass in ``passes_`` (interleaved): best CPU seconds of compile with it, and of
    the pass in that compile (its module's memo cleared first)."""
    import abcn_hw.backend.passes as passes
    from abcn_hw.backend import compile

    spent = [0.0]
    best = [(float("inf"), 0.0)] * len(passes_)
    orig = passes.size_graph_fifos
    try:
        for _ in range(reps):
            for i, sizing in enumerate(passes_):
                def timed(hw, *a, _sizing=sizing, **k):
                    t = time.process_time()
                    try:
                        return _sizing(hw, *a, **k)
                    finally:
                        spent[0] += time.process_time() - t

                passes.size_graph_fifos = timed
                sizing.__globals__["_CACHE"].clear()
                spent[0] = 0.0
                t = time.process_time()
                compile(path, out, force=True)
                best[i] = min(best[i], (time.process_time() - t, spent[0]))
    finally:
        passes.size_graph_fifos = orig
    return best


def bench_model(label: str, path: Path, base, cur, reps: int, sim_limit: int, work: Path) -> dict:
    from abcn_hw.backend.folding import auto_folding, build_graph, default_folding, estimate
    from abcn_hw.backend.frontend import build_network
    from abcn_hw.backend.project import _load

    net = build_network(_load(str(path), None)[0])
    ii = estimate(net, build_graph(net, default_folding(net), fifos=False), 100.0).ii
    hw = build_graph(net, auto_folding(net, 100e6 / ii, 100.0)[0], fifos=False)
    g = cur.token_graph(hw)
    iters = sum(p.iters for p in g.actors.values())
    row = {"model": label, "path": str(path), "kernels": len(g.actors), "streams": len(g.edges),
           "iterations_per_image": iters, "seconds": {}}
    (rb, tb), (rc, tc) = best_of(reps, lambda: base.size_fifos(base.token_graph(hw), 2),
                                 lambda: cur.size_fifos(cur.token_graph(hw), 2))
    assert rb.to_dict() == rc.to_dict(), f"{label}: size_fifos differs from the baseline"
    row["seconds"]["size_fifos"] = {"baseline": round(tb, 3), "current": round(tc, 3), "speedup": round(tb / tc, 1)}
    depths = rc.depths()
    for name, d in [("sized", depths), ("unbounded", {e: 1 << 24 for e in g.edges}),
                    ("depth_2", {e: 2 for e in g.edges})]:
        if iters <= sim_limit:
            (sb, tb), (sc, tc) = best_of(reps, lambda: base.simulate(g, d, 2), lambda: cur.simulate(g, d, 2))
            assert dataclasses.asdict(sb) == dataclasses.asdict(sc), f"{label}: simulate ({name}) differs"
            entry = {"baseline": round(tb, 3), "current": round(tc, 3), "speedup": round(tb / tc, 1)}
        else:
            ((sc, tc),) = best_of(reps, lambda: cur.simulate(g, d, 2))
            entry = {"baseline": None, "current": round(tc, 3), "note": f"more than {sim_limit} iterations per image"}
        row["seconds"][f"simulate_{name}"] = {**entry, "deadlock": sc.deadlock}
    out = work / f"build_{label}"
    (cb, sb), (cc, sc) = compile_seconds(path, out, [base.size_graph_fifos, cur.size_graph_fifos], reps)
    row["seconds"]["compile"] = {"baseline": round(cb, 2), "baseline_fifo_pass": round(sb, 2),
                                 "current": round(cc, 2), "current_fifo_pass": round(sc, 2),
                                 "fifo_pass_speedup": round(sb / sc, 1)}
    print(json.dumps(row), flush=True)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", required=True, help=f"git revision whose {MODULE} is the baseline")
    ap.add_argument("--models", default=",".join(ZOO), help="zoo models (comma-separated; '' for none): "
                    + ", ".join(ZOO))
    ap.add_argument("--work", default=None, help="keep the exports and builds here (default: a temp dir)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sim-limit", type=int, default=5_000_000,
                    help="time the baseline's simulate only below this many loop iterations per image")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "fifo_speed.json"))
    ap.add_argument("paths", nargs="*", help="more models (exported or lowered ONNX)")
    args = ap.parse_args()
    from abcn_hw.backend.passes import fifo_sizing as cur

    base = baseline_module(args.baseline)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_fifo_speed_"))
    work.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()
    models = [(m, zoo_export(m, work)) for m in args.models.split(",") if m]
    models += [(Path(p).stem, Path(p)) for p in args.paths]
    rows = [bench_model(label, path, base, cur, args.reps, args.sim_limit, work) for label, path in models]
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    Path(args.out).write_text(json.dumps({
        "command": "python scripts/bench_fifo_speed.py " + " ".join(sys.argv[1:]), "baseline": args.baseline,
        "current": head.strip(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
        "load_average_start": [round(v, 2) for v in load0],
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "note": "CPU seconds (process_time), best of reps, baseline and current interleaved; results asserted "
                "identical", "reps": args.reps, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
