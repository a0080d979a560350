"""compare(exported, lowered, x): outputs and per-layer activation bits of the executed export
(onnxruntime with reference functions, see export_runtime) vs the lowered graph (onnxruntime)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper

from .export_runtime import run, runnable_export, session


@dataclass
class Comparison:
    images: int
    output_equal: float  # fraction of bit-equal output elements
    prediction_agreement: float  # argmax agreement (NaN for non-2-D outputs)
    max_abs_diff: float
    layer_equal_bits: dict[str, float] = field(default_factory=dict)  # lowered bit tensor -> fraction equal

    @property
    def identical(self) -> bool:
        return self.output_equal == 1.0


def _proto(m) -> onnx.ModelProto:
    if isinstance(m, ModelWrapper):
        return m.model
    if isinstance(m, onnx.ModelProto):
        return m
    return onnx.load(str(m))


def bit_probes(lowered: onnx.ModelProto) -> dict:
    """Lowered bit tensors produced by MultiBaseThreshold -> (export tensor z, BitSpec) whose bits
    they must equal. Recorded by the pipeline in metadata_props."""
    from .bitspec import decode

    meta = {p.key: p.value for p in lowered.metadata_props}
    out = {}
    for key, val in meta.items():
        if key.startswith("abcn_hw.probe."):
            z, spec = val.split("|")
            out[key[len("abcn_hw.probe."):]] = (z, decode(spec))
    return out


def _with_outputs(proto: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    m = onnx.ModelProto.FromString(proto.SerializeToString())
    have = {o.name for o in m.graph.output}
    for n in names:
        if n not in have:
            m.graph.output.append(helper.make_empty_tensor_value_info(n))
    return m


def auto_batch(lowered: onnx.ModelProto) -> int:
    """Images per onnxruntime call: the conv ops' intermediate tensors are large."""
    return 8 if any(n.op_type in ("XnorPopcountConv", "IntegerInputConv") for n in lowered.graph.node) else 256


def compare(exported, lowered, x: np.ndarray, batch: int | None = None, per_layer: bool = True) -> Comparison:
    """Run the export (onnxruntime with reference functions for qonnx's quantizers, optimisations
    off) and the lowered graph (plain onnxruntime) on ``x``; compare outputs element-wise, argmax,
    and, per thresholded layer, the lowered bits against the export's own quantizer decisions."""
    exp = runnable_export(_proto(exported))
    low = _proto(lowered)
    batch = batch or auto_batch(low)
    probes = bit_probes(low) if per_layer else {}
    exp_names = sorted({z for z, _ in probes.values()})
    low_names = sorted(probes)
    exp_m = _with_outputs(exp, exp_names)
    low_m = _with_outputs(low, low_names)
    out_e = exp.graph.output[0].name
    out_l = low.graph.output[0].name
    re = run(session(exp_m), x, batch, [out_e] + exp_names)
    rl = run(session(low_m, optimize=True), x, batch, [out_l] + low_names)
    ye, yl = re[0], rl[0]
    zs = dict(zip(exp_names, re[1:]))
    layer_bits = {}
    for (name, (z, spec)), bits in zip(sorted(probes.items()), rl[1:]):
        ref = np.moveaxis(spec.bits(zs[z]), 0, 1)
        layer_bits[name] = float(np.mean(ref.reshape(bits.shape) == bits.astype(bool))) if ref.size == bits.size else float("nan")
    agree = float(np.mean(ye.argmax(-1) == yl.argmax(-1))) if ye.ndim == 2 else float("nan")
    diff = float(np.max(np.abs(ye.astype(np.float64) - yl))) if ye.size else 0.0
    return Comparison(len(x), float(np.mean(ye == yl)), agree, diff, layer_bits)


__all__ = ["Comparison", "compare", "bit_probes", "auto_batch"]
