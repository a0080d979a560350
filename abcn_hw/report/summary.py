"""``abcn-hw summary``: a per-layer model summary in the spirit of Larq's ``lq.models.summary``.

It lowers the model in memory (so it works for any export the compiler supports, ours or
third-party, and fails with the support check's list otherwise) and tabulates, per layer, the
parameters by bit width, their memory, the operation counts and the binarized share.
"""
from __future__ import annotations

from .gain import NetworkGain, network_gain


def _kib(bits: int) -> str:
    return f"{bits / 8 / 1024:,.2f}"


def _count(n: int) -> str:
    return f"{n:,}"


def summarise_model(path: str) -> tuple[NetworkGain, dict]:
    """Lower ``path`` in memory; returns (gain, lowering report dict)."""
    from qonnx.core.modelwrapper import ModelWrapper

    from ..compiler import lower
    from ..compiler.modelfile import read_model

    proto = read_model(path)
    _, report = lower(ModelWrapper(proto), where=str(path))
    rep = report.to_dict()
    return network_gain(rep), rep


def render_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary_text(gain: NetworkGain) -> str:
    head = ["layer", "op", "out", "M", "N", "K", "1-bit params", "float32-equiv params", "memory KiB",
            "MACs", "binary ops"]
    rows = [head]
    for g in gain.layers:
        rows.append([g.name, g.op, "x".join(map(str, g.out_shape[1:])), str(g.m), str(g.n), str(g.k),
                     _count(g.weight_bits_binary), _count(g.weight_bits_float // 32),
                     _kib(g.weight_bits_binary + g.threshold_bits), _count(g.macs), _count(g.binary_ops)])
    d = gain.to_dict()
    total = [
        f"total: {_count(sum(g.weight_bits_binary for g in gain.layers))} 1-bit weights, "
        f"memory {_kib(gain.memory_bits_binary)} KiB (float32: {_kib(gain.memory_bits_float)} KiB, "
        f"{gain.compression:.1f}x smaller; thresholds and integer scales included)",
        f"{_count(gain.macs)} float MACs -> {_count(d['binary_ops'])} XNOR-popcount bit ops + "
        f"{_count(d['int_adds'])} integer adds; binarized share of MACs {100 * gain.binarized_mac_share:.1f}%",
        f"estimated compute energy per image: float32 {gain.energy_float_pj / 1e6:.3f} uJ, lowered "
        f"{gain.energy_binary_pj / 1e6:.4f} uJ ({d['energy_ratio']:.1f}x less) [{d['energy_source']}]",
    ]
    return render_table(rows) + "\n" + "\n".join(total)
