"""Train a grid of (M, N) settings of one model in parallel processes and tabulate the results.

Shared by ``scripts/accuracy_study.py`` (the README's accuracy evidence) and ``abcn-hw sweep``.
Each job is one ``abcn-hw train`` subprocess with its own run directory, so every number in the
table traces back to a ``metrics.json`` holding the command that produced it.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError


@dataclass(frozen=True)
class GridPoint:
    """One setting: ABC bases (M, N), the float reference, or the stock Brevitas binary baseline."""

    label: str
    weight_bases: str  # "3", "float" or "" (stock)
    act_bases: str
    model_suffix: str = ""  # "-stock" for the Brevitas baseline

    @classmethod
    def parse(cls, text: str) -> GridPoint:
        t = text.strip().lower()
        if t == "float":
            return cls("float", "float", "float")
        if t in ("stock", "brevitas"):
            return cls("stock binary (Brevitas)", "", "", "-stock")
        parts = t.split("x")
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            m, n = (int(p) for p in parts)
            if 1 <= m <= 8 and 1 <= n <= 8:
                return cls(f"ABC ({m},{n})", str(m), str(n))
        raise UsageError(f"bad grid point '{text}'", fix="use MxN with M, N in 1..8 (e.g. 3x3), 'float' or 'stock'")


NOT_RUN = "not run"


@dataclass
class JobResult:
    point: GridPoint
    seed: int
    run_dir: Path
    metrics: dict = field(default_factory=dict)
    error: str | None = None


def _reusable(metrics: dict, model: str, cmd: list[str]) -> bool:
    """A finished run's metrics.json made by ``cmd`` (the ``abcn-hw train`` command line, options from
    index 3) under the defaults of today: batch-norm re-estimation became the default after runs
    without it were recorded with the same command line."""
    from ..train.config import default_bn_reestimate

    if metrics.get("command", [])[1:] != cmd[3:]:
        return False
    want = int(cmd[cmd.index("--bn-reestimate") + 1]) if "--bn-reestimate" in cmd else default_bn_reestimate(model)
    return (metrics.get("recipe") or {}).get("bn_reestimate_batches", 0) == want


def _train_command(model: str, point: GridPoint, seed: int, epochs: int, run_dir: Path,
                   extra: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "abcn_hw.cli", "train", "--model", model + point.model_suffix,
           "--epochs", str(epochs), "--seed", str(seed), "--out", str(run_dir), "--quiet"]
    if point.weight_bases:
        cmd += ["--weight-bases", point.weight_bases, "--act-bases", point.act_bases]
    return cmd + extra


def run_dir_name(model: str, point: GridPoint, seed: int) -> str:
    """The run directory name of one grid job, e.g. ``lenet-abc3x3-s0``."""
    slug = (point.label.lower().replace(" ", "").replace("(", "").replace(")", "")
            .replace(",", "x").replace("binary", "").replace("brevitas", ""))
    return f"{model}-{slug}-s{seed}"


def run_grid(model: str, points: list[GridPoint], seeds: list[int], epochs: int, out_dir: Path,
             jobs: int = 2, extra=None, log=print, tasks: list | None = None, train: bool = True) -> list[JobResult]:
    """Train every (point, seed) with ``jobs`` processes in parallel (one torch thread each).

    ``extra`` is a list of further ``abcn-hw train`` options, or a function ``(point, seed) -> list``
    (e.g. a per-seed ``--teacher``). ``tasks`` (a list of (point, seed, run_dir, options)) replaces
    the grid when given. Finished runs (a metrics.json with the same command, trained with the batch-norm
    re-estimation that command means today) are reused, so an
    interrupted study resumes; with ``train=False`` nothing is trained and the other runs are
    reported as not run."""
    out_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if tasks is None:
        tasks = []
        for point in points:
            for seed in seeds:
                opts = extra(point, seed) if callable(extra) else list(extra or [])
                tasks.append((point, seed, out_dir / run_dir_name(model, point, seed), opts))

    def run(task):
        point, seed, run_dir, opts = task
        metrics_file = run_dir / "metrics.json"
        cmd = _train_command(model, point, seed, epochs, run_dir, list(opts)) + ["--force"]
        if metrics_file.exists():
            metrics = json.loads(metrics_file.read_text())
            if _reusable(metrics, model + point.model_suffix, cmd):
                return JobResult(point, seed, run_dir, metrics)
        if not train:
            return JobResult(point, seed, run_dir, error=NOT_RUN)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            return JobResult(point, seed, run_dir, error=(proc.stderr.strip().splitlines() or ["failed"])[-1])
        return JobResult(point, seed, run_dir, json.loads(metrics_file.read_text()))

    results = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for res in pool.map(run, tasks):
            acc = res.metrics.get("test_accuracy")
            log(f"{res.point.label:>24} seed {res.seed}: "
                + (f"{100 * acc:.2f}%" if acc is not None else res.error if res.error == NOT_RUN
                   else f"FAILED: {res.error}"))
            results.append(res)
    return results


def summarise(results: list[JobResult]) -> list[dict]:
    """One row per grid point: mean/min/max test accuracy over seeds, per-seed values, export check."""
    rows = []
    order = []
    for r in results:
        if r.point not in order:
            order.append(r.point)
    for point in order:
        ok = [r for r in results if r.point == point and r.error is None]
        accs = [r.metrics["test_accuracy"] for r in ok]
        rows.append({
            "setting": point.label,
            "weight_bases": point.weight_bases or "brevitas-binary",
            "act_bases": point.act_bases or "brevitas-binary",
            "seeds": [r.seed for r in ok],
            "test_accuracy": accs,
            "mean": statistics.fmean(accs) if accs else None,
            "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "export_accuracy": [r.metrics.get("export_test_accuracy") for r in ok],
            # provably exact (every layer's partial sums below 2^24, on any CPU) and measured equal
            "export_bit_exact": all(r.metrics.get("export_bit_exact") is True
                                    and r.metrics.get("export_fidelity", {}).get("equal_fraction") == 1.0 for r in ok),
            "failed": [f"seed {r.seed}: {r.error}" for r in results if r.point == point and r.error],
            "epoch_seconds": statistics.fmean(h["seconds"] for r in ok for h in r.metrics.get("history", []))
            if ok else None,
            "command": ok[0].metrics.get("command") if ok else None,
        })
    return rows


def markdown_table(rows: list[dict]) -> str:
    lines = ["| setting | test accuracy (mean ± std) | per seed | export bit-exact |",
             "|---|---|---|---|"]
    for r in rows:
        if r["mean"] is None:
            what = "not run" if all(f.endswith(NOT_RUN) for f in r["failed"]) else "failed"
            lines.append(f"| {r['setting']} | {what} | {'; '.join(r['failed'])} | |")
            continue
        per = ", ".join(f"{100 * a:.2f}" for a in r["test_accuracy"])
        lines.append(f"| {r['setting']} | {100 * r['mean']:.2f}% ± {100 * r['std']:.2f} | {per} | "
                     f"{'yes' if r['export_bit_exact'] else 'no (within 1e-5)'} |")
    return "\n".join(lines)


def plot_accuracy(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["mean"] is not None]
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    labels = [r["setting"] for r in rows]
    means = [100 * r["mean"] for r in rows]
    for i, r in enumerate(rows):
        ax.scatter([i] * len(r["test_accuracy"]), [100 * a for a in r["test_accuracy"]], color="#999", s=12, zorder=3)
    ax.bar(range(len(rows)), means, color=["#4c72b0" if r["setting"].startswith("ABC") else "#dd8452" for r in rows])
    lo = min(100 * min(r["test_accuracy"]) for r in rows)
    ax.set_ylim(max(0.0, lo - 2.0), 100.0)
    ax.set_xticks(range(len(rows)), labels, rotation=20, ha="right")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def compile_runs(results: list[JobResult], jobs: int = 2, clock_mhz: float = 100.0, log=print) -> dict:
    """Lower and compile the first seed's run of every grid point (``abcn-hw compile`` in parallel
    subprocesses); returns {label: estimate dict from BUILD/report.json, or {"error": ...}}."""
    firsts: dict[str, JobResult] = {}
    for r in results:
        if r.error is None and r.point.label not in firsts and r.point.weight_bases not in ("", "float"):
            firsts[r.point.label] = r
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")

    def run(item):
        label, r = item
        build = r.run_dir / "build"
        cmd = [sys.executable, "-m", "abcn_hw.cli", "compile", str(r.run_dir / "model.onnx"), "--out", str(build),
               "--clock-mhz", str(clock_mhz), "--force"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            return label, {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
        rep = json.loads((build / "report.json").read_text())
        est = rep.get("estimate", {})
        return label, {k: est.get(k) for k in ("fps", "ii_cycles", "latency_us", "lut", "bram18", "clock_mhz")}

    out = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for label, est in pool.map(run, list(firsts.items())):
            log(f"{label:>24}: " + (f"{est['lut']} LUT, {est['bram18']} BRAM18, {est['fps']:,.0f} FPS"
                                     if "error" not in est else f"compile FAILED: {est['error']}"))
            out[label] = est
    return out


def sweep_table(rows: list[dict], hw: dict) -> str:
    lines = ["| setting | test accuracy (mean ± std) | seeds | export bit-exact | LUT | BRAM18 | FPS @ clock |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        e = hw.get(r["setting"], {})
        acc = "failed" if r["mean"] is None else f"{100 * r['mean']:.2f}% ± {100 * r['std']:.2f}"
        if "error" in e:
            hw_cols = ["compile failed", "", ""]
        elif e:
            hw_cols = [str(e["lut"]), str(e["bram18"]), f"{e['fps']:,.0f} @ {e['clock_mhz']:g} MHz"]
        else:
            hw_cols = ["-", "-", "-"]
        lines.append(f"| {r['setting']} | {acc} | {len(r['seeds'])} | {'yes' if r['export_bit_exact'] else 'no'} | "
                     + " | ".join(hw_cols) + " |")
    return "\n".join(lines)
