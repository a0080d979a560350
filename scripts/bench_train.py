#!/usr/bin/env python3
"""Training throughput: images/s of one training step (forward, backward, Adam) per setting.

    python scripts/bench_train.py [--dataset fashion-mnist --data-dir DIR] [--batches 200] [--threads 1]

Times ``--batches`` steps of batch ``--batch-size`` for each setting (float, ABC (M,N), stock binary)
in the same process, interleaved round-robin in ``--rounds`` rounds so that load from other
processes hits every setting alike; reports the median images/s and each setting's ratio to float.
Writes docs/results/bench_train.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]


def build(point: str, input_shape, num_classes):
    from abcn_hw.models import build_model, build_stock_binary_model

    torch.manual_seed(0)
    if point == "stock":
        return build_stock_binary_model("lenet", num_classes, input_shape=input_shape)
    if point == "float":
        return build_model("lenet", "float", "float", num_classes=num_classes, input_shape=input_shape)
    m, n = (int(v) for v in point.split("x"))
    return build_model("lenet", m, n, num_classes=num_classes, input_shape=input_shape)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--points", default="float,1x1,3x3,5x5,stock")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--data-dir")
    p.add_argument("--batches", type=int, default=200, help="timed steps per setting and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "bench_train.json")
    a = p.parse_args()
    from abcn_hw.data import load_dataset
    from abcn_hw.train.checkpoint import materialise

    torch.set_num_threads(a.threads)
    ds = load_dataset(a.dataset, a.data_dir)
    x_all = torch.as_tensor(ds.train.images[: a.batches * a.batch_size])
    y_all = torch.as_tensor(ds.train.labels[: a.batches * a.batch_size]).long()
    shape = tuple(ds.input_shape)
    setups = {}
    for point in a.points.split(","):
        model = build(point, shape, ds.num_classes)
        materialise(model, shape)
        model.train()
        setups[point] = (model, torch.optim.Adam(model.parameters(), lr=1e-3))
    rates = {pt: [] for pt in setups}
    for _ in range(a.rounds):
        for point, (model, opt) in setups.items():
            t0 = time.perf_counter()
            for i in range(a.batches):
                x = x_all[i * a.batch_size:(i + 1) * a.batch_size]
                y = y_all[i * a.batch_size:(i + 1) * a.batch_size]
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x), y).backward()
                opt.step()
            rates[point].append(a.batches * a.batch_size / (time.perf_counter() - t0))
    med = {pt: statistics.median(r) for pt, r in rates.items()}
    rows = [{"setting": pt, "images_per_s": round(med[pt], 1), "rounds": [round(r, 1) for r in rates[pt]],
             "vs_float": round(med[pt] / med["float"], 3) if "float" in med else None} for pt in setups]
    for r in rows:
        print(f"{r['setting']:>6}: {r['images_per_s']:8.1f} images/s  ({r['vs_float']}x float)  rounds {r['rounds']}")
    meta = {"dataset": ds.name, "batch_size": a.batch_size, "batches": a.batches, "rounds": a.rounds,
            "threads": a.threads, "torch": torch.__version__, "machine": platform.processor() or platform.machine()}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
