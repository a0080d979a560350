"""Computational gain of a lowered network against the float32 network of the same topology.

Counts come from the lowering report (per layer: output shape, K, M, N, next-layer bases,
accumulator width), so they describe exactly the graph that the hardware runs.

Energy is a compute-only estimate (weight/activation memory traffic is not included) from the
per-operation energies of M. Horowitz, "Computing's energy problem (and what we can do about
it)", ISSCC 2014, 45 nm: float32 multiply 3.7 pJ + add 0.9 pJ per MAC; 32-bit integer add 0.1 pJ;
8-bit integer add 0.03 pJ. Horowitz gives no XNOR/popcount figure: we charge one binary operation
(an XNOR plus its share of the popcount adder tree, about one full-adder cell) as 1/8 of an 8-bit
add, i.e. 0.00375 pJ. This assumption is ours and is printed with every energy figure.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

PJ_FP32_MAC = 3.7 + 0.9
PJ_INT32_ADD = 0.1
PJ_INT8_ADD = 0.03
PJ_BINARY_OP = PJ_INT8_ADD / 8
ENERGY_SOURCE = ("M. Horowitz, Computing's energy problem (and what we can do about it), ISSCC 2014 (45 nm); "
                 "binary op = 1/8 of an 8-bit add (our assumption)")

INTEGER_INPUT_OPS = ("IntegerInputConv", "IntegerInputMatMul")


@dataclass
class LayerGain:
    name: str
    op: str
    out_shape: list
    m: int
    n: int
    k: int
    macs: int  # multiply-accumulates of the float32 layer
    binary_ops: int  # XNOR-popcount bit operations (M*N*MACs) for binary layers
    int_adds: int  # integer adds: first-layer add/subtract, threshold-unit accumulation and compares
    weight_bits_float: int
    weight_bits_binary: int  # packed binary weight bases
    threshold_bits: int  # thresholds + integer scale mantissas
    energy_float_pj: float
    energy_binary_pj: float

    @property
    def binarized(self) -> bool:
        return self.op not in INTEGER_INPUT_OPS


def _outputs(out_shape) -> tuple[int, int]:
    """(output channels O, output positions) from (B, O, *spatial)."""
    o = int(out_shape[1])
    pos = math.prod(int(s) for s in out_shape[2:]) if len(out_shape) > 2 else 1
    return o, pos


def layer_gain(layer: dict) -> LayerGain:
    o, pos = _outputs(layer["out_shape"])
    m, n, k = int(layer["m"]), int(layer["n"]), int(layer["k"])
    macs = o * pos * k
    integer_input = layer["op"] in INTEGER_INPUT_OPS
    binary_ops = 0 if integer_input else m * n * macs
    nxt = int(layer.get("next_bases") or 0)
    acc_bits = int(layer.get("acc_bits") or 32)
    # threshold unit per output element: M*N accumulations, N' compares
    unit_adds = o * pos * (m * n + max(nxt, 0))
    first_adds = m * macs if integer_input else 0
    energy_bin = (binary_ops * PJ_BINARY_OP + first_adds * PJ_INT32_ADD + unit_adds * PJ_INT32_ADD)
    return LayerGain(
        name=layer["name"], op=layer["op"], out_shape=list(layer["out_shape"]), m=m, n=n, k=k, macs=macs,
        binary_ops=binary_ops, int_adds=first_adds + unit_adds, weight_bits_float=32 * o * k,
        weight_bits_binary=m * o * k, threshold_bits=nxt * o * acc_bits + m * o * 8 + n * 8,
        energy_float_pj=macs * PJ_FP32_MAC, energy_binary_pj=energy_bin)


@dataclass
class NetworkGain:
    layers: list[LayerGain]

    @property
    def macs(self) -> int:
        return sum(g.macs for g in self.layers)

    @property
    def binarized_mac_share(self) -> float:
        """Share of the float network's MACs that run as XNOR-popcount in the lowered network."""
        return sum(g.macs for g in self.layers if g.binarized) / max(self.macs, 1)

    @property
    def memory_bits_float(self) -> int:
        return sum(g.weight_bits_float for g in self.layers)

    @property
    def memory_bits_binary(self) -> int:
        return sum(g.weight_bits_binary + g.threshold_bits for g in self.layers)

    @property
    def compression(self) -> float:
        return self.memory_bits_float / max(self.memory_bits_binary, 1)

    @property
    def energy_float_pj(self) -> float:
        return sum(g.energy_float_pj for g in self.layers)

    @property
    def energy_binary_pj(self) -> float:
        return sum(g.energy_binary_pj for g in self.layers)

    def to_dict(self) -> dict:
        return {
            "layers": [asdict(g) | {"binarized": g.binarized} for g in self.layers],
            "macs": self.macs,
            "binary_ops": sum(g.binary_ops for g in self.layers),
            "int_adds": sum(g.int_adds for g in self.layers),
            "binarized_mac_share": self.binarized_mac_share,
            "memory_bits_float": self.memory_bits_float,
            "memory_bits_binary": self.memory_bits_binary,
            "memory_compression": self.compression,
            "energy_float_pj": self.energy_float_pj,
            "energy_binary_pj": self.energy_binary_pj,
            "energy_ratio": self.energy_float_pj / max(self.energy_binary_pj, 1e-12),
            "energy_source": ENERGY_SOURCE,
        }


def network_gain(lowering_report: dict) -> NetworkGain:
    """From ``LoweringReport.to_dict()``."""
    return NetworkGain([layer_gain(layer) for layer in lowering_report["layers"]])
