#!/usr/bin/env python3
"""Accuracy evidence for the README: one topology, one training budget, several quantizations.

    python scripts/accuracy_study.py [--epochs 15] [--seeds 0 1 2] [--jobs 2] [--out runs/accuracy]

Trains `lenet` on the bundled MNIST subset as full precision, ABC (M,N) = (1,1), (3,1), (3,3),
(5,5), and Brevitas' stock binary quantizers (BNN-PYNQ recipe), each for every seed, then writes
docs/results/accuracy.{json,md,png}. Every number comes from a run directory's metrics.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from abcn_hw.report.grid import GridPoint, markdown_table, plot_accuracy, run_grid, summarise

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lenet")
    p.add_argument("--points", default="float,1x1,3x1,3x3,5x5,stock")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "accuracy")
    p.add_argument("--results", type=Path, default=ROOT / "docs" / "results")
    a = p.parse_args()
    points = [GridPoint.parse(t) for t in a.points.split(",")]
    t0 = time.time()
    results = run_grid(a.model, points, a.seeds, a.epochs, a.out, jobs=a.jobs)
    rows = summarise(results)
    a.results.mkdir(parents=True, exist_ok=True)
    meta = {"model": a.model, "dataset": "bundled MNIST subset (8,000 train / 2,000 test)", "epochs": a.epochs,
            "seeds": a.seeds, "wall_seconds": round(time.time() - t0, 1), "machine": platform.processor() or platform.machine(),
            "command": "python scripts/accuracy_study.py " + " ".join(
                [f"--epochs {a.epochs}", "--seeds " + " ".join(map(str, a.seeds)), f"--points {a.points}"])}
    (a.results / "accuracy.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    table = markdown_table(rows)
    (a.results / "accuracy.md").write_text(
        f"{a.model} on the {meta['dataset']}, {a.epochs} epochs, seeds {a.seeds}; `{meta['command']}`\n\n{table}\n")
    plot_accuracy(rows, a.results / "accuracy.png", f"{a.model}, bundled MNIST subset, {a.epochs} epochs")
    print(table)


if __name__ == "__main__":
    main()
