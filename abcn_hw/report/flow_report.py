"""The flow report: DIR/report.json, DIR/report.md and a self-contained DIR/report.html (PNG plots
embedded as data URIs), built only from files the flow's stages wrote (every number is measured or
computed from the generated design; nothing is typed in)."""
from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

from .gain import ENERGY_SOURCE, network_gain


def _read(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * float(x):.2f}%"


def collect(flow_dir: Path) -> dict:
    """Everything the report shows, as one JSON-ready dict."""
    d = Path(flow_dir)
    train = _read(d / "train" / "metrics.json") or {}
    ref = _read(d / "reference" / "metrics.json")
    stock = _read(d / "stock" / "metrics.json")
    lowering = _read(d / "lowering.json") or {"layers": []}
    build = _read(d / "build" / "report.json") or {}
    csim = _read(d / "csim" / "csim.json") or {}
    verify = _read(d / "verify.json") or {}
    lower_state = (_read(d / ".flow" / "lower.json") or {}).get("result", {})
    gain = network_gain(lowering)
    est = build.get("estimate", {})
    est_layers = est.get("layers", [])
    layers = []
    for i, g in enumerate(gain.layers):
        # the hardware unit generated from lowering layer g: same op, node named after the layer
        e = next((e for e in est_layers if e.get("op") == g.op and
                  (e.get("node") == g.name or str(e.get("node", "")).startswith(g.name + "_"))), {})
        lw = lowering["layers"][i]
        layers.append({
            "name": g.name, "op": g.op, "in": lw.get("in_shape", [])[1:], "out": g.out_shape[1:], "M": g.m, "N": g.n,
            "K": g.k, "status": lw.get("status"), "macs": g.macs, "binary_ops": g.binary_ops,
            "weight_bits": g.weight_bits_binary, "weight_bits_float32": g.weight_bits_float,
            "memory_bits": g.weight_bits_binary + g.threshold_bits,
            "PE": e.get("PE"), "SIMD": e.get("SIMD"), "cycles": e.get("cycles"), "lut": e.get("lut"),
            "bram18": e.get("bram18"), "hw_id": e.get("id")})
    fid = train.get("export_fidelity") or {}
    return {
        "model": train.get("model"), "dataset": train.get("dataset"), "dataset_source": train.get("dataset_source"),
        "weight_bases": train.get("weight_bases"), "act_bases": train.get("act_bases"),
        "scale_grid": train.get("scale_grid"), "epochs": train.get("epochs"), "seed": train.get("seed"),
        "train_images": train.get("train_images"), "test_images": train.get("test_images"),
        "accuracy": {
            "float_reference": ref.get("test_accuracy") if ref else None,
            "stock_binary": stock.get("test_accuracy") if stock else None,
            "pytorch": train.get("test_accuracy"),
            "qonnx_export": train.get("export_test_accuracy"),
            "lowered": lower_state.get("accuracy"),
            "csim": csim.get("accuracy"),
        },
        "images": csim.get("images"),
        "export_fidelity": fid,
        "export_bit_exact": train.get("export_bit_exact"),
        "export_exactness": train.get("export_exactness"),
        "lowering": {"exact": lowering.get("exact"), "output_equal": lowering.get("output_equal"),
                     "prediction_agreement": lowering.get("prediction_agreement"), "inputs": lowering.get("inputs"),
                     "grid_bits": lowering.get("grid_bits") or {}, "min_agreement": lowering.get("min_agreement"),
                     "calibration": lowering.get("calibration"),
                     "calibration_agreement": lowering.get("calibration_agreement")},
        "verify": {k: verify.get(k) for k in ("ok", "bit_exact", "mismatches", "elements", "prediction_agreement",
                                              "images", "lowering_exact", "contract_ok", "min_agreement",
                                              "contract_layer", "first_mismatch_layer", "cycles_match")},
        "hardware": {k: est.get(k) for k in ("clock_mhz", "ii_cycles", "fps", "latency_cycles", "latency_us", "lut",
                                              "bram18", "target_fps", "target_met", "resource_model")},
        "csim_throughput": {"images_per_second": csim.get("images_per_second"), "seconds": csim.get("seconds"),
                            "build_seconds": csim.get("build_seconds"), "threads": csim.get("threads")},
        "layers": layers,
        "gain": gain.to_dict(),
    }


def _exactness_words(proven, ex: dict) -> str:
    if proven:
        return "provably bit-exact on any CPU (every layer's partial sums below 2^24)"
    if proven is None:
        return "exactness not recorded"
    return (f"not provably bit-exact (layer {ex.get('first_failing_layer')}: {ex.get('reason')}), "
            "so equal only within a tolerance")


# -- plots -------------------------------------------------------------------------------------------

def _plots(data: dict, plot_dir: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    acc = [(k.replace("_", " "), v) for k, v in data["accuracy"].items() if v is not None]
    if acc:
        fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=110)
        vals = [100 * v for _, v in acc]
        colours = {"float reference": "#dd8452", "stock binary": "#8c8c8c"}
        ax.bar(range(len(acc)), vals, color=[colours.get(k, "#4c72b0") for k, _ in acc])
        for i, v in enumerate(vals):
            ax.text(i, v, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(acc)), [k for k, _ in acc])
        ax.set_ylim(max(0, min(vals) - 3), 100)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{data['model']} ABC ({data['weight_bases']},{data['act_bases']}): accuracy along the flow")
        fig.tight_layout()
        fig.savefig(plot_dir / "accuracy.png")
        plt.close(fig)
        out["accuracy"] = plot_dir / "accuracy.png"
    layers = data["layers"]
    if layers and any(layer["cycles"] is not None for layer in layers):
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.0, 3.2), dpi=110)
        names = [layer["name"] for layer in layers]
        a1.bar(names, [layer["cycles"] or 0 for layer in layers], color="#4c72b0")
        a1.set_ylabel("cycles per image")
        a1.set_title("per-layer cycles")
        a2.bar(names, [layer["lut"] or 0 for layer in layers], color="#55a868")
        a2.set_ylabel("LUT (estimate)")
        a2.set_title("per-layer LUTs (FINN-R model)")
        for a in (a1, a2):
            a.tick_params(axis="x", rotation=30, labelsize=7)
        fig.tight_layout()
        fig.savefig(plot_dir / "layers.png")
        plt.close(fig)
        out["layers"] = plot_dir / "layers.png"
    if layers:
        fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=110)
        x = range(len(layers))
        ax.bar([i - 0.2 for i in x], [layer["weight_bits_float32"] / 8 / 1024 for layer in layers], 0.4,
               label="float32 weights", color="#dd8452")
        ax.bar([i + 0.2 for i in x], [layer["memory_bits"] / 8 / 1024 for layer in layers], 0.4,
               label="binary bases + thresholds", color="#4c72b0")
        ax.set_yscale("log")
        ax.set_xticks(list(x), [layer["name"] for layer in layers], rotation=30, fontsize=7)
        ax.set_ylabel("KiB")
        ax.set_title("memory per layer: float vs binary")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(plot_dir / "memory.png")
        plt.close(fig)
        out["memory"] = plot_dir / "memory.png"
    return out


# -- text --------------------------------------------------------------------------------------------

def _layer_rows(data: dict) -> list[list[str]]:
    head = ["layer", "op", "in", "out", "M", "N", "binary ops", "weight bits", "memory KiB", "PE", "SIMD",
            "cycles", "LUT", "BRAM18"]
    rows = [head]
    for layer in data["layers"]:
        rows.append([layer["name"], layer["op"], "x".join(map(str, layer["in"])), "x".join(map(str, layer["out"])),
                     str(layer["M"]), str(layer["N"]), f"{layer['binary_ops']:,}", f"{layer['weight_bits']:,}",
                     f"{layer['memory_bits'] / 8 / 1024:.2f}", str(layer["PE"] or "-"), str(layer["SIMD"] or "-"),
                     str(layer["cycles"] if layer["cycles"] is not None else "-"), str(layer["lut"] or "-"),
                     str(layer["bram18"] if layer["bram18"] is not None else "-")])
    return rows


def _csim_line(data: dict) -> str:
    c = data["csim_throughput"]
    if c.get("build_seconds") is None:  # a csim record from before the build was timed apart
        return (f"* C simulation stage on this machine: {data['images']} images in {c.get('seconds') or 0:.1f} s, "
                "g++ build of the design included.")
    return (f"* C simulation on this machine: {data['images']} images in {c.get('seconds') or 0:.2f} s "
            f"({c.get('images_per_second') or 0:,.0f} images/s on {c.get('threads')} thread(s), host graphs "
            f"included); g++ build of the design {c['build_seconds']:.1f} s (once per design).")


def _md_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def _contract_line(low: dict, v: dict) -> str:
    """The rounding contract: exact, or the agreement it promises, the grids chosen, what verify found."""
    if low.get("exact") or v.get("lowering_exact"):
        return "* Rounding contract: none needed (exact lowering: every output bit-equal, checked by verify)"
    need = v.get("min_agreement") or low.get("min_agreement")
    grids = ", ".join(f"{k} {b} bits" for k, b in (low.get("grid_bits") or {}).items())
    line = f"* Rounding contract: prediction agreement with the export >= {_pct(need)}"
    if grids:
        line += f"; coefficient grids {grids}"
    if low.get("calibration_agreement") is not None:
        line += f", chosen on {low.get('calibration')} ({_pct(low['calibration_agreement'])})"
    if v.get("contract_ok") is not None:
        line += "; verify: " + ("**held**" if v.get("contract_ok") else "**VIOLATED**"
                                + (f" at layer {v['contract_layer']}" if v.get("contract_layer") else ""))
    return line


def _sections(data: dict) -> list[tuple[str, str]]:
    """(title, markdown body) pairs shared by the md and html renderings."""
    a, v, g, hw = data["accuracy"], data["verify"], data["gain"], data["hardware"]
    verdict = "PASS" if v.get("ok") else "FAIL"
    acc_rows = [["stage", "test accuracy"]]
    if a["float_reference"] is not None:
        acc_rows.append(["float32 reference (same topology)", _pct(a["float_reference"])])
    if a.get("stock_binary") is not None:
        acc_rows.append(["stock binary baseline (Brevitas 1-bit quantizers, same topology)", _pct(a["stock_binary"])])
    acc_rows += [["PyTorch ABC model", _pct(a["pytorch"])], ["exported QONNX (executed)", _pct(a["qonnx_export"])],
                ["lowered XNOR-popcount graph (onnxruntime)", _pct(a["lowered"])], ["HLS C simulation", _pct(a["csim"])]]
    fid = data.get("export_fidelity") or {}
    low = data["lowering"]
    verification = "\n".join([
        f"* **Verdict: {verdict}.** C simulation vs lowered graph: "
        + ("bit-exact" if v.get("bit_exact") else f"{v.get('mismatches')} of {v.get('elements')} output elements differ")
        + f" on {v.get('images')} images; prediction agreement {_pct(v.get('prediction_agreement'))}"
        + (f"; first differing layer: {v['first_mismatch_layer']}" if v.get("first_mismatch_layer") else ""),
        f"* Lowered graph vs executed export: {_pct(low.get('output_equal'))} of outputs bit-equal, prediction "
        f"agreement {_pct(low.get('prediction_agreement'))}; lowering "
        + ("exact in every layer" if low.get("exact") else "rounded in some layers (statistical contract)"),
        _contract_line(low, v),
        f"* Export vs PyTorch: {fid.get('summary', 'n/a')}; "
        + _exactness_words(data.get("export_bit_exact"), data.get("export_exactness") or {}),
        f"* Cycle estimate (folding model) vs the C simulation's iteration counters (advanced by each kernel "
        f"per stream word it moves): {'match' if v.get('cycles_match') else 'MISMATCH'}",
    ])
    gain = "\n".join([
        f"* Memory: float32 weights {g['memory_bits_float'] / 8 / 1024:,.1f} KiB → binary bases, thresholds and "
        f"integer scales {g['memory_bits_binary'] / 8 / 1024:,.1f} KiB (**{g['memory_compression']:.1f}× smaller**).",
        f"* Operations: {g['macs']:,} float MACs per image → {g['binary_ops']:,} XNOR-popcount bit operations + "
        f"{g['int_adds']:,} integer adds; **{100 * g['binarized_mac_share']:.1f}%** of the MACs run binarized "
        "(the 8-bit first layer runs as integer add/subtract).",
        f"* Estimated compute energy per image: float32 {g['energy_float_pj'] / 1e6:.3f} µJ, lowered "
        f"{g['energy_binary_pj'] / 1e6:.4f} µJ (**{g['energy_ratio']:.1f}× less**); {ENERGY_SOURCE}. Memory traffic "
        "is not included.",
        f"* Hardware estimate at {hw.get('clock_mhz')} MHz: II {hw.get('ii_cycles')} cycles → "
        f"**{hw.get('fps') or 0:,.0f} FPS**, latency {hw.get('latency_us')} µs, ~{hw.get('lut')} LUT, ~{hw.get('bram18')} BRAM18 "
        f"({hw.get('resource_model')})."
        + (f" Target {hw['target_fps']} FPS {'met' if hw.get('target_met') else 'NOT met'}." if hw.get("target_fps") else ""),
        _csim_line(data),
    ])
    return [("Accuracy", _md_table(acc_rows)), ("Verification", verification),
            ("Computational gain against float32", gain), ("Per-layer cost", _md_table(_layer_rows(data)))]


def write_flow_report(flow_dir: Path, cfg, timings: dict, skipped: list, wall: float) -> dict[str, Path]:
    d = Path(flow_dir)
    data = collect(d)
    data["flow"] = {"stage_seconds": {k: round(v, 2) for k, v in timings.items()}, "skipped": skipped,
                    "wall_seconds": round(wall, 1), "command": " ".join(getattr(cfg, "command", []) or [])}
    plots = _plots(data, d / "plots")
    title = (f"abcn-hw report: {data['model']} ABC ({data['weight_bases']},{data['act_bases']}) on "
             f"{data['dataset']}")
    split = (f" ({data['train_images']:,} training / {data['test_images']:,} test images)"
             if data.get("train_images") and data.get("test_images") else "")
    intro = (f"Dataset: {data['dataset_source']}{split}; {data['epochs']} epoch(s), seed {data['seed']}, scale grid "
             f"{data['scale_grid']}. Command: `{data['flow']['command']}`. Every figure below was measured by "
             "this run or computed from its generated design.")
    sections = _sections(data)
    md = [f"# {title}", "", intro, ""]
    for name, body in sections:
        md += [f"## {name}", "", body, ""]
    for name, p in plots.items():
        md += [f"![{name}](plots/{p.name})", ""]
    stage_line = ", ".join(f"{k} {v:.1f} s" for k, v in data["flow"]["stage_seconds"].items())
    md += [f"Stage times: {stage_line or 'all stages up to date'}"
           + (f" (skipped: {', '.join(skipped)})" if skipped else "") + "."]
    files = {"md": d / "report.md", "html": d / "report.html", "json": d / "report.json"}
    _atomic(files["md"], "\n".join(md) + "\n")
    _atomic(files["json"], json.dumps(data, indent=2, default=float) + "\n")
    _atomic(files["html"], _html(title, intro, sections, plots, stage_line))
    return files


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _md_to_html(body: str) -> str:
    """The tiny markdown subset _sections emits: tables, bullet lists, **bold**, `code`."""
    import re

    def inline(s: str) -> str:
        s = html.escape(s)
        s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", s)

    lines = body.splitlines()
    if lines and lines[0].startswith("|"):
        rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines if not ln.startswith("|---")]
        head = "".join(f"<th>{inline(c)}</th>" for c in rows[0])
        body_rows = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body_rows}</tbody></table>"
    return "<ul>" + "".join(f"<li>{inline(ln[2:])}</li>" for ln in lines if ln.startswith("* ")) + "</ul>"


def _html(title: str, intro: str, sections, plots: dict, stage_line: str) -> str:
    imgs = "".join(
        f'<figure><img alt="{html.escape(n)}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}"/></figure>' for n, p in plots.items())
    body = "".join(f"<h2>{html.escape(n)}</h2>{_md_to_html(b)}" for n, b in sections)
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;"
             "text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f0f0f0}"
             "figure{display:inline-block;margin:.5em}img{max-width:100%}code{background:#f4f4f4}")
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1><p>{_md_to_html_inline(intro)}</p>"
            f"{body}<h2>Plots</h2>{imgs}<p>Stage times: {html.escape(stage_line or 'all stages up to date')}</p>"
            "</body></html>\n")


def _md_to_html_inline(s: str) -> str:
    import re

    return re.sub(r"`(.+?)`", r"<code>\1</code>", html.escape(s))
