"""The design space of ABC settings: accuracy against estimated hardware cost, Pareto front marked.

Two views a designer picks a configuration from:

* accuracy vs estimated LUT of each setting's default (balanced) folding, as ``abcn-hw compile``
  makes it; Pareto-optimal: no other setting is at least as accurate for at most the LUTs;
* accuracy vs the throughput each setting reaches within one fixed LUT budget (the fastest folding
  whose estimate fits; :func:`fps_within_lut`); Pareto-optimal: no other setting is at least as
  accurate and at least as fast.

Resources and FPS are the backend's FINN-R-style estimates (abcn_hw/backend/folding.py), not
synthesis results.
"""
from __future__ import annotations

import math
from pathlib import Path

#: target-FPS samples between the slowest and the fastest folding when searching a budget
BUDGET_SAMPLES = 48


def pareto_front(cost: list[float], accuracy: list[float], *, higher_cost_is_better: bool = False) -> list[bool]:
    """For each point, whether it is Pareto-optimal: no other point is at least as accurate and at
    least as good on the cost axis (lower cost, or higher when ``higher_cost_is_better``, e.g. FPS),
    strictly better on one of them. None values are never on the front."""
    sign = -1.0 if higher_cost_is_better else 1.0
    pts = [(None if c is None or a is None else (sign * c, a)) for c, a in zip(cost, accuracy)]
    front = []
    for i, p in enumerate(pts):
        if p is None:
            front.append(False)
            continue
        dominated = any(q is not None and j != i and q[0] <= p[0] and q[1] >= p[1] and (q[0] < p[0] or q[1] > p[1])
                        for j, q in enumerate(pts))
        front.append(not dominated)
    return front


def network_of(model):
    """The backend's layer network of a QONNX export or lowered graph (path or proto)."""
    from ..backend.frontend import build_network
    from ..backend.project import _load

    proto, _ = _load(model, str(model) if isinstance(model, (str, Path)) else None)
    return build_network(proto)


def fps_within_lut(net, lut_budget: float, clock_mhz: float = 100.0, targets: tuple[float, ...] = ()) -> dict | None:
    """The fastest folding (of those the backend's target-FPS chooser picks for targets sampled from
    the slowest to the fastest folding, plus ``targets``) whose LUT estimate fits ``lut_budget``:
    {fps, lut, bram18, folding}, or None when even the smallest folding does not fit."""
    from ..backend.folding import auto_folding, build_graph, estimate

    def at(target: float):
        fold, _ = auto_folding(net, target, clock_mhz)
        est = estimate(net, build_graph(net, fold), clock_mhz)
        d = est.to_dict()
        return {"fps": d["fps"], "lut": d["lut"], "bram18": d["bram18"],  # as report.json rounds them
                "folding": {k: {"PE": v[0], "SIMD": v[1]} for k, v in fold.items()}}

    slow, fast = at(1e-3), at(1e12)
    best = None
    lo, hi = math.log(max(slow["fps"], 1e-9)), math.log(max(fast["fps"], slow["fps"], 1e-9))
    samples = [slow, fast] + [at(math.exp(lo + (hi - lo) * i / BUDGET_SAMPLES)) for i in range(1, BUDGET_SAMPLES)]
    for cand in samples + [at(t) for t in targets]:
        if cand["lut"] <= lut_budget and (best is None or cand["fps"] > best["fps"]
                                          or (cand["fps"] == best["fps"] and cand["lut"] < best["lut"])):
            best = cand
    return best


def mark_fronts(points: list[dict]) -> None:
    """Set ``pareto_lut`` and ``pareto_fps`` on every point (keys accuracy, lut, fps_at_budget)."""
    acc = [p.get("accuracy") for p in points]
    for p, f in zip(points, pareto_front([p.get("lut") for p in points], acc)):
        p["pareto_lut"] = f
    for p, f in zip(points, pareto_front([p.get("fps_at_budget") for p in points], acc, higher_cost_is_better=True)):
        p["pareto_fps"] = f


def table(points: list[dict], lut_budget: float | None, clock_mhz: float, reference: dict | None = None) -> str:
    """Markdown table of the design points (Pareto-optimal marked with *)."""
    lines = [f"| setting | accuracy | LUT (default folding) | FPS | FPS within {lut_budget:,.0f} LUT |"
             if lut_budget else "| setting | accuracy | LUT (default folding) | FPS | FPS within budget |",
             "|---|---|---|---|---|"]
    for p in points:
        acc = "-" if p.get("accuracy") is None else f"{100 * p['accuracy']:.2f}%"
        lut = "-" if p.get("lut") is None else f"{p['lut']:,}" + (" *" if p.get("pareto_lut") else "")
        fps = "-" if p.get("fps") is None else f"{p['fps']:,.0f}"
        fb = ("does not fit" if p.get("lut") is not None else "-") if p.get("fps_at_budget") is None else \
            f"{p['fps_at_budget']:,.0f}" + (" *" if p.get("pareto_fps") else "")
        lines.append(f"| {p['setting']} | {acc} | {lut} | {fps} | {fb} |")
    if reference and reference.get("accuracy") is not None:
        lines.append(f"| {reference['setting']} (no hardware) | {100 * reference['accuracy']:.2f}% | - | - | - |")
    lines.append(f"\n\\* Pareto-optimal. Estimates at {clock_mhz:g} MHz (FINN-R cost model), not synthesis results.")
    return "\n".join(lines)


def plot(points: list[dict], lut_budget: float | None, clock_mhz: float, reference: dict | None = None,
         path: str | Path | None = None, title: str | None = None):
    """Two panels, accuracy vs estimated LUT and vs FPS within the LUT budget, Pareto fronts
    drawn as steps; saved to ``path`` when given. Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10.0, 3.9), dpi=110)
    panels = [(axes[0], "lut", "pareto_lut", "estimated LUT (default folding)", False),
              (axes[1], "fps_at_budget", "pareto_fps",
               f"FPS within {lut_budget:,.0f} LUT at {clock_mhz:g} MHz" if lut_budget else "FPS", True)]
    for ax, key, front_key, label, higher_better in panels:
        pts = [p for p in points if p.get(key) is not None and p.get("accuracy") is not None]
        if not pts:
            ax.text(0.5, 0.5, "no setting fits" if key == "fps_at_budget" else "no hardware data",
                    ha="center", va="center", transform=ax.transAxes)
        for p in pts:
            on = p.get(front_key)
            ax.scatter(p[key], 100 * p["accuracy"], s=46 if on else 30, zorder=3,
                       color="#c44e52" if on else "#4c72b0", edgecolor="black" if on else "none")
            ax.annotate(p["setting"].replace("ABC ", ""), (p[key], 100 * p["accuracy"]), textcoords="offset points",
                        xytext=(5, 4), fontsize=8)
        front = sorted((p for p in pts if p.get(front_key)), key=lambda p: p[key], reverse=higher_better)
        if len(front) > 1:
            ax.step([p[key] for p in front], [100 * p["accuracy"] for p in front], where="post",
                    color="#c44e52", alpha=0.7, label="Pareto front")
        elif front:
            ax.scatter([], [], color="#c44e52", edgecolor="black", label="Pareto-optimal")
        if reference and reference.get("accuracy") is not None:
            ax.axhline(100 * reference["accuracy"], color="#dd8452", ls="--", lw=1, label=f"{reference['setting']}")
        if pts and max(p[key] for p in pts) / max(min(p[key] for p in pts), 1e-9) > 20:
            ax.set_xscale("log")
        ax.set_xlabel(label + (" (higher is better)" if higher_better else ""))
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
    return fig


__all__ = ["fps_within_lut", "mark_fronts", "network_of", "pareto_front", "plot", "table"]
