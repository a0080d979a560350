#!/usr/bin/env python
"""Bounded fuzz campaign of the compiler (issue 11 item 5). Writes docs/results/fuzz.json.

    nice -n 10 python scripts/fuzz.py [--seconds 900] [--cases N] [--seed 0] [--hostile-share 0.3]
                                      [--cli-every 5] [--out docs/results/fuzz.json] [--work DIR]

Two kinds of cases (tests/fuzz/_fuzz.py has the harness, tests/fuzz/_nets.py the nets):

* net: hypothesis draws a small binary network written with plain Brevitas layers (QuantConv2d /
  QuantLinear / QuantIdentity with binary quantizers, BatchNorm with calibrated statistics and some
  negative scales, max-pooling, padding 0/1, strides 1/2, multi-branch ABC layers, constant,
  power-of-two and float per-channel scales, both torch exporters), exports it with export_qonnx and
  runs lower -> compile -> verify (every --cli-every-th case through `abcn-hw` processes). Each case
  must end bit-exact (csim = lowered graph, and = the export where the lowering says exact), or
  rounded within the 99.9 % contract, or refused with one line before anything is written.
* hostile: first the fixed corpus (truncated / random / empty files, missing initializers, cycles,
  wrong opsets and IR versions, zero / huge / negative dims, NaN and Inf constants, external data
  outside the model's folder, control characters and path separators in names, empty graphs,
  duplicate names, subgraphs, recursive functions ... of an export and of a lowered graph), then
  random mutations (bit flips, attribute and initializer values and shapes, rewired inputs), each
  through `abcn-hw lower / compile / verify / summary`: one error line, non-zero exit, nothing written.

The campaign stops after --seconds or --cases net cases, whichever comes first; the fixed hostile
corpus always runs in full. Exit status 1 when any case failed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fuzz"))


def _log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def _draw_specs(seed_: int, n: int) -> list:
    """``n`` distinct nets drawn by hypothesis (generation only), in a seeded random order.

    Hypothesis explores by mutating earlier examples, so consecutive draws are near-duplicates and
    the first is the simplest; a campaign that affords a few dozen compile + g++ cases runs a
    shuffled sample of a large draw instead, one per distinct architecture."""
    import _nets
    from hypothesis import HealthCheck, Phase, given, seed, settings

    specs: dict[str, object] = {}

    @seed(seed_)
    @settings(max_examples=max(3 * n, 100), deadline=None, database=None, suppress_health_check=list(HealthCheck),
              phases=(Phase.generate,))
    @given(_nets.net_specs())
    def collect(spec):
        specs.setdefault(spec.short().rsplit(" seed=", 1)[0], spec)

    collect()
    out = list(specs.values())
    random.Random(seed_).shuffle(out)
    return out[:n]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=900, help="time budget of the whole campaign (default 900)")
    ap.add_argument("--cases", type=int, default=10_000, help="at most this many net cases (default: time-bound)")
    ap.add_argument("--seed", type=int, default=0, help="seed of hypothesis and of the random mutations")
    ap.add_argument("--hostile-share", type=float, default=0.3,
                    help="share of the time after the fixed corpus spent on random hostile mutations (default 0.3)")
    ap.add_argument("--no-fixed-corpus", action="store_true", help="skip the fixed hostile corpus")
    ap.add_argument("--cli-every", type=int, default=5, help="every k-th net case through `abcn-hw` processes")
    ap.add_argument("--images", type=int, default=64, help="inputs per net case (default 64)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "fuzz.json"))
    ap.add_argument("--work", help="keep the cases' files in this folder (default: a temporary folder)")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")

    import _fuzz

    t0 = time.time()
    deadline = t0 + args.seconds
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="abcn-fuzz-"))
    if work.exists() and args.work:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    outcomes: list[_fuzz.Outcome] = []

    def record(o: _fuzz.Outcome) -> None:
        outcomes.append(o)
        flag = "FAIL " if o.failed else ""
        _log(f"{flag}{o.kind} {o.result:<14} {o.seconds:6.1f}s {o.case[:110]} | {o.reason[:160]}")

    # 1. the fixed hostile corpus
    ctx = _fuzz.HostileContext.make(work / "hostile_ctx")
    for name, path in [] if args.no_fixed_corpus else _fuzz.fixed_corpus(ctx, work / "hostile"):
        for o in _fuzz.run_hostile(name, path, ctx):
            record(o)
    hostile_fixed_s = time.time() - t0

    # 2. nets (hypothesis) interleaved with random hostile mutations
    rng = random.Random(args.seed)
    hostile_budget = (deadline - time.time()) * args.hostile_share
    hostile_i = [0]

    def hostile_for(seconds: float) -> None:
        end = min(time.time() + seconds, deadline)
        while time.time() < end:
            name, path = _fuzz.random_case(ctx, work / "hostile_random", hostile_i[0], rng)
            hostile_i[0] += 1
            outs = _fuzz.run_hostile(name, path, ctx)
            for o in outs:
                record(o)
            if not any(o.failed for o in outs):  # failing files stay (with --work) for a look
                shutil.rmtree(path.parent, ignore_errors=True)

    for i, spec in enumerate(_draw_specs(args.seed, min(args.cases, 300))):
        if time.time() > deadline:
            break
        d = work / "nets" / f"{i:05d}"
        o = _fuzz.run_net_case(spec, d, images=args.images, via_cli=args.cli_every > 0 and i % args.cli_every == 0,
                               limit_s=max(60, int(deadline - time.time()) + 60))
        record(o)
        if not o.failed:
            shutil.rmtree(d, ignore_errors=True)
        if hostile_budget > 0:  # keep the hostile share of the elapsed time
            hostile_for(o.seconds * args.hostile_share / max(1e-9, 1 - args.hostile_share))
    summary = _fuzz.summarise(outcomes)
    result = {
        "command": "nice -n 10 python scripts/fuzz.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "seed": args.seed, "seconds": round(time.time() - t0, 1), "fixed_hostile_corpus_seconds": round(hostile_fixed_s, 1),
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
                    "cores": os.cpu_count()},
        "summary": {k: {kk: vv for kk, vv in v.items() if kk != "failures"} for k, v in summary.items()},
        "failures": summary["net"]["failures"] + summary["hostile"]["failures"],
        "net_cases": [{"case": o.case, "result": o.result, "stage": o.stage, "reason": o.reason,
                       "seconds": o.seconds, "lower_deterministic": o.details.get("lower_deterministic"),
                       "verify_from": o.details.get("verify_from"), "agreement": o.details.get("agreement"),
                       "via_cli": o.details.get("via_cli")}
                      for o in outcomes if o.kind == "net"],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    for kind in ("net", "hostile"):
        s = summary[kind]
        _log(f"{kind}: {s['cases']} cases, {s['results']}, failed {s['failed']}")
    _log(f"wrote {out}; work files in {work}")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if any(o.failed for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
