"""LoweringReport: what the lowering did per layer, and (optionally) measured agreement."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class LayerReport:
    name: str
    op: str
    in_shape: list
    out_shape: list
    m: int
    n: int
    k: int
    exact: bool
    scales_rounded: bool
    acc_bits: int
    acc_bound: int
    threshold: str  # fused | final | float
    next_bases: int
    equal_bits: float | None = None  # fraction of equal next-layer activation bits (when measured)
    bits_tensor: str | None = None  # lowered tensor holding the layer's output bits (if thresholded)
    padding: str = "none"  # none | bit0 (ABC: -sum(beta)) | zero (PyTorch: bit 0 + border correction) | integer

    @property
    def status(self) -> str:
        return "exact" if self.exact else "rounded"


@dataclass
class LoweringReport:
    layers: list[LayerReport] = field(default_factory=list)
    source: str | None = None
    images: int = 0
    output_equal: float | None = None  # fraction of bit-equal output elements
    prediction_agreement: float | None = None

    @property
    def exact(self) -> bool:
        return all(layer.exact for layer in self.layers)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["exact"] = self.exact
        for layer, src in zip(d["layers"], self.layers):
            layer["status"] = src.status
        return d

    def table(self) -> str:
        head = ["layer", "op", "in", "out", "M", "N", "K", "status", "acc bits", "threshold", "N'", "equal bits"]
        rows = [head]
        for layer in self.layers:
            op = layer.op + (" (zero pad)" if layer.padding == "zero" else "")
            rows.append([layer.name, op, "x".join(map(str, layer.in_shape[1:])),
                         "x".join(map(str, layer.out_shape[1:])), str(layer.m), str(layer.n), str(layer.k),
                         layer.status + (" (scales rounded)" if layer.scales_rounded else ""), str(layer.acc_bits),
                         layer.threshold, str(layer.next_bases) if layer.next_bases else "-",
                         "-" if layer.equal_bits is None else f"{100 * layer.equal_bits:.3f}%"])
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        summary = f"{len(self.layers)} layers, {'all exact' if self.exact else 'some rounded'}"
        if self.images:
            summary += (f"; on {self.images} inputs: {100 * self.output_equal:.3f}% of outputs bit-equal, "
                        f"prediction agreement {100 * self.prediction_agreement:.3f}%")
        return "\n".join(lines + [summary])
