#!/usr/bin/env python3
"""Rebuild the model zoo in export/: trained QONNX exports with their metrics.

    python scripts/build_zoo.py [--epochs 10] [--only lenet-3x3 ...]

Each entry is trained on the bundled MNIST subset with `abcn-hw train` (seed 0) into
runs/zoo/<name>/, then export/<name>.onnx (the QONNX export) and export/<name>.json (dataset,
split, test accuracy of the checkpoint and of the executed export, seed, epochs, the exact command)
are written. `abcn-hw compile export/<name>.onnx --out BUILD` compiles one without training.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ZOO = {  # name -> (model, M, N)
    "lenet-1x1": ("lenet", 1, 1),
    "lenet-3x3": ("lenet", 3, 3),
    "lfc-1x1": ("lfc", 1, 1),
    "lfc-3x3": ("lfc", 3, 3),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", nargs="*", choices=sorted(ZOO))
    p.add_argument("--runs", type=Path, default=Path("runs") / "zoo", help="relative to the repository root")
    a = p.parse_args()
    out_dir = ROOT / "export"
    out_dir.mkdir(exist_ok=True)
    for name in a.only or ZOO:
        model, m, n = ZOO[name]
        run = a.runs / name
        cmd = ["abcn-hw", "train", "--model", model, "--dataset", "mnist", "--weight-bases", str(m),
               "--act-bases", str(n), "--epochs", str(a.epochs), "--seed", str(a.seed), "--out", str(run),
               "--force", "--quiet"]
        print("+", " ".join(cmd), flush=True)
        subprocess.run([sys.executable, "-m", "abcn_hw.cli"] + cmd[1:], check=True, cwd=ROOT)
        run = ROOT / run
        metrics = json.loads((run / "metrics.json").read_text())
        shutil.copyfile(run / "model.onnx", out_dir / f"{name}.onnx")
        entry = {
            "name": name, "model": model, "weight_bases": m, "act_bases": n,
            "scale_grid": metrics["scale_grid"], "scale_bits": metrics["scale_bits"],
            "dataset": metrics["dataset"], "dataset_source": metrics["dataset_source"],
            "split": {"train": metrics["train_images"], "test": metrics["test_images"]},
            "test_accuracy": metrics["test_accuracy"], "export_test_accuracy": metrics["export_test_accuracy"],
            "export_bit_exact": metrics["export_bit_exact"] and metrics["export_fidelity"]["equal_fraction"] == 1.0,
            "seed": metrics["seed"], "epochs": metrics["epochs"], "batch_size": metrics["batch_size"],
            "lr": metrics["lr"], "command": " ".join(cmd),
            "rebuild": f"python scripts/build_zoo.py --epochs {a.epochs} --only {name}",
        }
        (out_dir / f"{name}.json").write_text(json.dumps(entry, indent=2) + "\n")
        print(f"{name}: test accuracy {100 * entry['test_accuracy']:.2f}% "
              f"(export {100 * entry['export_test_accuracy']:.2f}%)", flush=True)


if __name__ == "__main__":
    main()
