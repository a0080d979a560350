"""LoweringReport: what the lowering did per layer, and (optionally) measured agreement."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

#: the rounding contract: a lowering that is not exact keeps at least this prediction agreement
#: with the executed export (docs/lowering.md, "The rounding contract")
DEFAULT_MIN_AGREEMENT = 0.999


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
    threshold: str  # fused | final | residual (feeds an integer ResidualAdd) | float
    next_bases: int
    equal_bits: float | None = None  # fraction of equal next-layer activation bits (when measured)
    bits_tensor: str | None = None  # lowered tensor holding the layer's output bits (if thresholded)
    padding: str = "none"  # none | bit0 (ABC: -sum(beta)) | zero (PyTorch: bit 0 + border correction) | integer
    grid_bits: int | None = None  # rounded + thresholded layers: bits of the coefficient grid |c| <= 2**bits

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
    # the rounding contract (lowerings that are not exact)
    min_agreement: float = DEFAULT_MIN_AGREEMENT
    max_acc_bits: int | None = None
    calibration: str | None = None  # what the coefficient grids were chosen on
    calibration_images: int = 0
    calibration_agreement: float | None = None  # prediction agreement with the export there
    grid_evaluations: int = 0  # lowerings measured by the grid search

    @property
    def exact(self) -> bool:
        return all(layer.exact for layer in self.layers)

    @property
    def grid_bits(self) -> dict:
        """Chosen coefficient grid per rounded, thresholded layer."""
        return {layer.name: layer.grid_bits for layer in self.layers if layer.grid_bits is not None}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["exact"] = self.exact
        d["grid_bits"] = self.grid_bits
        for layer, src in zip(d["layers"], self.layers):
            layer["status"] = src.status
        return d

    def table(self) -> str:
        head = ["layer", "op", "in", "out", "M", "N", "K", "status", "grid", "acc bits", "threshold", "N'", "equal bits"]
        rows = [head]
        for layer in self.layers:
            op = layer.op + (" (zero pad)" if layer.padding == "zero" else "")
            rows.append([layer.name, op, "x".join(map(str, layer.in_shape[1:])),
                         "x".join(map(str, layer.out_shape[1:])), str(layer.m), str(layer.n), str(layer.k),
                         layer.status + (" (scales rounded)" if layer.scales_rounded else ""),
                         _grid(layer), str(layer.acc_bits),
                         layer.threshold, str(layer.next_bases) if layer.next_bases else "-",
                         "-" if layer.equal_bits is None else f"{100 * layer.equal_bits:.3f}%"])
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        summary = f"{len(self.layers)} layers, {'all exact' if self.exact else 'some rounded'}"
        if self.images:
            summary += (f"; on {self.images} inputs: {100 * self.output_equal:.3f}% of outputs bit-equal, "
                        f"prediction agreement {100 * self.prediction_agreement:.3f}%")
        out = lines + [summary]
        if self.calibration_agreement is not None:
            out.append(self.contract_line())
        return "\n".join(out)

    def contract_line(self) -> str:
        """One line: the rounding contract, the chosen grids and the agreement measured on the
        calibration inputs."""
        grids = ", ".join(f"{k} {v} b" for k, v in self.grid_bits.items())
        return (f"rounding contract: prediction agreement >= {100 * self.min_agreement:g}% with the export"
                + ("" if self.min_agreement >= DEFAULT_MIN_AGREEMENT else
                   f" (lowered by --min-agreement from {100 * DEFAULT_MIN_AGREEMENT:g}%)")
                + f"; measured {100 * self.calibration_agreement:.3f}% on {self.calibration}"
                + (f"; coefficient grids {grids} (accumulators <= {self.max_acc_bits} bits, "
                   f"{self.grid_evaluations} measurement runs)" if grids else ""))


def _grid(layer: LayerReport) -> str:
    if layer.grid_bits is not None:
        return f"{layer.grid_bits} b"
    return "float32" if layer.scales_rounded else "-"
