#!/usr/bin/env python3
"""Accuracy evidence for the README: one topology, one training budget, several quantizations.

    python scripts/accuracy_study.py [--epochs 15] [--seeds 0 1 2] [--jobs 2] [--out runs/accuracy]
    python scripts/accuracy_study.py --dataset fashion-mnist --data-dir /usr/share/datasets/fashion-mnist \\
        --epochs 3 --limit-train 10000 --seeds 0 1 --points float,stock,1x1,3x3,5x5 --bn-reestimate 50 \\
        --ablate 3x3 --name fashion

Trains `lenet` as full precision, ABC (M,N) = (1,1), (3,1), (3,3), (5,5), and Brevitas' stock
binary quantizers (BNN-PYNQ recipe), each for every seed, then writes
docs/results/<name>.{json,md,png} (name `accuracy` by default). Every number comes from a run
directory's metrics.json, which holds the command that produced it.

Recipes (``--recipe``, for the ABC points; float and stock always train with ``baseline``):
``baseline`` (Adam + cosine), ``kd`` (distillation from the float run of the same seed, which is
trained first), ``warmup`` (``--warmup-epochs``), ``full`` (kd + warmup). Batch-norm re-estimation
is ``abcn-hw train``'s default (50 batches for ABC and float, off for stock); ``--bn-reestimate K``
passes K to every run (0: off everywhere); each run records its accuracy before re-estimation.
``--ablate MxN`` trains that point (seed ``--ablate-seeds``) with each recipe, so every option is
measured alone.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from abcn_hw.report.grid import GridPoint, markdown_table, plot_accuracy, run_dir_name, run_grid, summarise

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ("baseline", "kd", "warmup", "full")


def recipe_options(recipe: str, teacher: Path, warmup: int) -> list[str]:
    opts = []
    if recipe in ("kd", "full"):
        opts += ["--teacher", str(teacher)]
    if recipe in ("warmup", "full"):
        opts += ["--warmup-epochs", str(warmup)]
    return opts


def with_before_column(rows: list[dict], table: str) -> str:
    """``table`` (one line per row) plus each run's accuracy before batch-norm re-estimation ("-": that
    run did not re-estimate, e.g. the stock binary one under the default), when any run re-estimated."""
    if not any(v is not None for r in rows for v in r.get("before_bn_reestimate", [])):
        return table
    head, rule, *body = table.split("\n")
    cells = [", ".join("-" if v is None else f"{100 * v:.2f}" for v in r.get("before_bn_reestimate", []))
             for r in rows]
    return "\n".join([head + " before BN re-estimation |", rule + "---|"]
                     + [line + f" {c} |" for line, c in zip(body, cells)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lenet")
    p.add_argument("--points", default="float,stock,1x1,3x1,3x3,5x5")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--dataset", help="dataset (default: the model's, the bundled MNIST subset for lenet)")
    p.add_argument("--data-dir", help="dataset folder (e.g. /usr/share/datasets/fashion-mnist)")
    p.add_argument("--limit-train", type=int, help="train on the first K training images (the test split stays whole)")
    p.add_argument("--recipe", choices=RECIPES, default="baseline", help="recipe of the ABC points")
    p.add_argument("--warmup-epochs", type=int, default=1)
    p.add_argument("--bn-reestimate", type=int, metavar="K",
                   help="batch-norm re-estimation batches for every run (default: abcn-hw train's, "
                        "50 for ABC and float, 0 for stock; 0: off)")
    p.add_argument("--ablate", metavar="MxN", help="also train this point with every recipe")
    p.add_argument("--ablate-seeds", type=int, nargs="+", default=[0])
    p.add_argument("--name", default="accuracy", help="results file stem in --results")
    p.add_argument("--report-only", action="store_true", help="train nothing: tabulate the finished runs")
    p.add_argument("--skip-unfinished", action="store_true",
                   help="leave runs that have a run directory but no metrics.json (being trained elsewhere) alone")
    p.add_argument("--out", type=Path, help="runs folder (default runs/<name>)")
    p.add_argument("--results", type=Path, default=ROOT / "docs" / "results")
    a = p.parse_args()
    out = a.out or ROOT / "runs" / a.name
    points = [GridPoint.parse(t) for t in a.points.split(",")]
    common = (["--dataset", a.dataset] if a.dataset else []) + (["--data-dir", a.data_dir] if a.data_dir else [])
    common += (["--limit-train", str(a.limit_train)] if a.limit_train else [])
    if a.bn_reestimate is not None and a.bn_reestimate < 0:
        p.error(f"--bn-reestimate must be an integer >= 0, got {a.bn_reestimate}")
    common += (["--bn-reestimate", str(a.bn_reestimate)] if a.bn_reestimate is not None else [])
    float_point = GridPoint.parse("float")
    needs_teacher = a.recipe in ("kd", "full") or a.ablate
    seeds_all = sorted(set(a.seeds) | (set(a.ablate_seeds) if a.ablate else set()))

    def teacher(seed: int) -> Path:
        return out / "baseline" / run_dir_name(a.model, float_point, seed)

    t0 = time.time()
    results = []
    if needs_teacher or float_point in points:  # the float runs first: they are the teachers
        results += run_grid(a.model, [float_point], seeds_all if needs_teacher else a.seeds, a.epochs,
                            out / "baseline", jobs=a.jobs, extra=common, train=not a.report_only)

    def task(point: GridPoint, seed: int, recipe: str) -> tuple:
        return (point, seed, out / recipe / run_dir_name(a.model, point, seed),
                common + recipe_options(recipe, teacher(seed), a.warmup_epochs))

    grid = {(pt, seed): task(pt, seed, "baseline" if pt.model_suffix else a.recipe)
            for seed in a.seeds for pt in points if pt != float_point}
    ab_point = GridPoint.parse(a.ablate) if a.ablate else None
    ablation_tasks = {(recipe, seed): task(ab_point, seed, recipe)
                      for recipe in RECIPES for seed in a.ablate_seeds} if a.ablate else {}
    # one queue, most telling first: the first seed's grid, the baseline recipe of the ablated point,
    # the other seeds, then each remaining recipe alone
    queue = [t for (pt, seed), t in grid.items() if seed == a.seeds[0]]
    queue += [t for (recipe, seed), t in ablation_tasks.items() if recipe == "baseline"]
    queue += [t for (pt, seed), t in grid.items() if seed != a.seeds[0]] + list(ablation_tasks.values())
    unique = list({t[2]: t for t in queue}.values())
    if a.skip_unfinished:
        unique = [t for t in unique if not (t[2].exists() and not (t[2] / "metrics.json").exists())]
    by_dir = {r.run_dir: r for r in run_grid(a.model, [], [], a.epochs, out, jobs=a.jobs, tasks=unique,
                                             train=not a.report_only)}
    if a.skip_unfinished:  # tabulate the skipped ones as they stand (finished by now or not run)
        skipped = [t for t in queue if t[2] not in by_dir]
        by_dir |= {r.run_dir: r for r in run_grid(a.model, [], [], a.epochs, out, tasks=skipped, train=False,
                                                  log=lambda s: None)}
    results = [r for r in results if r.seed in a.seeds] + [by_dir[t[2]] for t in grid.values()]
    rows = summarise(results)
    for row in rows:  # the accuracy each run had before batch-norm re-estimation
        row["before_bn_reestimate"] = [r.metrics.get("test_accuracy_before_bn_reestimate") for r in results
                                       if r.point.label == row["setting"] and r.error is None]
        row["recipe"] = a.recipe if row["setting"].startswith("ABC") else "baseline"
    ablation = []
    for (recipe, seed), t in ablation_tasks.items():
        m = by_dir[t[2]].metrics
        if not m:
            ablation.append({"setting": ab_point.label, "recipe": recipe, "seed": seed, "test_accuracy": None,
                             "error": by_dir[t[2]].error})
            continue
        ablation.append({"setting": ab_point.label, "recipe": recipe, "seed": seed,
                         "test_accuracy": m.get("test_accuracy"),
                         "before_bn_reestimate": m.get("test_accuracy_before_bn_reestimate"),
                         "export_bit_exact": m.get("export_fidelity", {}).get("equal_fraction") == 1.0,
                         "train_seconds": m.get("train_seconds"), "command": m.get("command")})
    a.results.mkdir(parents=True, exist_ok=True)
    first = next((r.metrics for r in results if r.error is None), {})
    dataset = (f"{first.get('dataset')} ({first.get('train_images')} train / {first.get('test_images')} test images)"
               if first else a.dataset)
    args = [f"--epochs {a.epochs}", "--seeds " + " ".join(map(str, a.seeds)), f"--points {a.points}"]
    for flag, v in (("--dataset", a.dataset), ("--data-dir", a.data_dir), ("--limit-train", a.limit_train)):
        if v:
            args.append(f"{flag} {v}")
    if a.recipe != "baseline":
        args += [f"--recipe {a.recipe}", f"--warmup-epochs {a.warmup_epochs}"]
    if a.bn_reestimate is not None:
        args.append(f"--bn-reestimate {a.bn_reestimate}")
    if a.ablate:
        args += [f"--ablate {a.ablate}", "--ablate-seeds " + " ".join(map(str, a.ablate_seeds))]
    if a.name != "accuracy":
        args.append(f"--name {a.name}")
    meta = {"model": a.model, "dataset": dataset, "epochs": a.epochs, "seeds": a.seeds, "recipe": a.recipe,
            "warmup_epochs": a.warmup_epochs, "bn_reestimate": a.bn_reestimate, "limit_train": a.limit_train,
            "wall_seconds": None if a.report_only else round(time.time() - t0, 1),
            "run_wall_seconds": round(sum(r.metrics.get("wall_seconds", 0) for r in results if r.error is None), 1),
            "machine": platform.processor() or platform.machine(),
            "command": "python scripts/accuracy_study.py " + " ".join(args)}
    (a.results / f"{a.name}.json").write_text(json.dumps({"meta": meta, "rows": rows, "ablation": ablation},
                                                          indent=2) + "\n")
    table = with_before_column(rows, markdown_table(rows))
    abl = ""
    if ablation:
        what = {"baseline": "Adam + cosine (baseline)", "kd": "+ distillation from the float run",
                "warmup": f"+ {a.warmup_epochs} warm-up epoch(s)", "full": "+ distillation + warm-up"}
        batches = "the default 50" if a.bn_reestimate is None else a.bn_reestimate
        abl = (f"\n\nRecipe ablation, {ablation[0]['setting']} (every run re-estimates batch norm from "
               f"{batches} batches; the last column is the same run before that):\n\n"
               "| recipe | seed | test accuracy | before BN re-estimation |\n|---|---|---|---|\n")
        abl += "\n".join(
            f"| {what[r['recipe']]} | {r['seed']} | not run | |" if r["test_accuracy"] is None else
            f"| {what[r['recipe']]} | {r['seed']} | {100 * r['test_accuracy']:.2f}% | "
            + (f"{100 * r['before_bn_reestimate']:.2f}%" if r["before_bn_reestimate"] is not None else "-") + " |"
            for r in ablation)
    bn_text = ("abcn-hw train's default (50 batches for ABC and float, off for stock)" if a.bn_reestimate is None
               else f"from {a.bn_reestimate} batches for every run" if a.bn_reestimate else "off")
    (a.results / f"{a.name}.md").write_text(
        f"{a.model} on {dataset}, {a.epochs} epochs, seeds {a.seeds}, ABC recipe {a.recipe}, batch-norm "
        f"re-estimation {bn_text}; "
        f"`{meta['command']}`\n\n{table}{abl}\n")
    plot_accuracy(rows, a.results / f"{a.name}.png", f"{a.model}, {dataset}, {a.epochs} epochs")
    print(table + abl)


if __name__ == "__main__":
    main()
