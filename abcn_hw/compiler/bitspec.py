"""How a float tensor z becomes activation bits (the predicate the thresholds must reproduce)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import NodeProto, helper

from .ops import DOMAIN
from .ops.float_quant_bits import quant_int, quant_range


@dataclass(frozen=True)
class ShiftBits:
    """ABC / bipolar activation bases: bit n = (z + c_n >= 0) in float32."""

    shifts: tuple[float, ...]

    @property
    def count(self) -> int:
        return len(self.shifts)

    def bits(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, np.float32)
        return np.stack([(z + np.float32(c)) >= np.float32(0) for c in self.shifts])

    def node(self, z: str, out: str) -> NodeProto:
        return helper.make_node("FloatBaseQuant", [z], [out], domain=DOMAIN, shifts=[float(c) for c in self.shifts],
                                name=out + "_FloatBaseQuant")

    def encode(self) -> str:
        return "shift:" + ",".join(repr(float(c)) for c in self.shifts)


@dataclass(frozen=True)
class QuantBits:
    """k-bit integer activation (qonnx Quant) as L-1 thermometer bits: bit j = (q(z) >= qmin + j)."""

    scale: float
    zero_point: float
    bitwidth: int
    signed: bool
    narrow: bool

    @property
    def range(self) -> tuple[int, int]:
        return quant_range(self.bitwidth, self.signed, self.narrow)

    @property
    def count(self) -> int:
        lo, hi = self.range
        return hi - lo

    def bits(self, z: np.ndarray) -> np.ndarray:
        lo, hi = self.range
        q = quant_int(z, self.scale, self.zero_point, lo, hi)
        return np.stack([q >= lo + j for j in range(1, hi - lo + 1)])

    def node(self, z: str, out: str) -> NodeProto:
        return helper.make_node("FloatQuantBits", [z], [out], domain=DOMAIN, scale=float(self.scale),
                                zero_point=float(self.zero_point), bitwidth=int(self.bitwidth),
                                signed=int(self.signed), narrow=int(self.narrow), name=out + "_FloatQuantBits")

    def encode(self) -> str:
        return f"quant:{self.scale!r},{self.zero_point!r},{self.bitwidth},{int(self.signed)},{int(self.narrow)}"


BitSpec = ShiftBits | QuantBits


def decode(s: str) -> BitSpec:
    kind, _, rest = s.partition(":")
    if kind == "shift":
        return ShiftBits(tuple(float(c) for c in rest.split(",")))
    sc, zp, bw, sg, nw = rest.split(",")
    return QuantBits(float(sc), float(zp), int(bw), bool(int(sg)), bool(int(nw)))


def from_node(node: NodeProto) -> BitSpec | None:
    if node.domain != DOMAIN:
        return None
    a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
    if node.op_type == "FloatBaseQuant":
        return ShiftBits(tuple(float(c) for c in a["shifts"]))
    if node.op_type == "FloatQuantBits":
        return QuantBits(float(a["scale"]), float(a.get("zero_point", 0.0)), int(a["bitwidth"]),
                         bool(a.get("signed", 1)), bool(a.get("narrow", 0)))
    return None
