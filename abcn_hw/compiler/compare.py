"""compare(exported, lowered, x): outputs and per-layer activation bits of the executed export
(onnxruntime with reference functions, see export_runtime) vs the lowered graph (onnxruntime)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper

from .export_runtime import run, runnable_export, session
from .ops import DOMAIN


def prediction_agreement(ref: np.ndarray, y: np.ndarray) -> float:
    """Share of rows (B, classes) where ``y``'s argmax is one of the reference's maxima. Binary nets
    give integer-valued logits, so the reference often ties; its prediction is then any of the tied
    classes, and a lowered graph that picks another of them agrees with it. 0.0 when shapes differ."""
    if ref.shape != y.shape or ref.ndim != 2:
        return 0.0
    if not len(ref):
        return float("nan")
    return agreeing_rows(ref, y) / len(ref)


def agreeing_rows(ref: np.ndarray, y: np.ndarray) -> int:
    """Rows of 2-D ``ref``/``y`` (same shape) where ``y``'s argmax is one of the reference's maxima."""
    return int(np.count_nonzero(ref[np.arange(len(ref)), y.argmax(-1)] == ref.max(-1)))


@dataclass
class Comparison:
    images: int
    output_equal: float  # fraction of bit-equal output elements
    prediction_agreement: float  # argmax agreement (NaN for non-2-D outputs)
    max_abs_diff: float
    layer_equal_bits: dict[str, float] = field(default_factory=dict)  # lowered bit tensor -> fraction equal
    lowered_output: np.ndarray | None = field(default=None, repr=False)
    tensors: dict = field(default_factory=dict, repr=False)  # captured lowered tensors

    def summary(self) -> dict:
        return {"output_equal": self.output_equal, "prediction_agreement": self.prediction_agreement,
                "max_abs_diff": self.max_abs_diff, "layer_equal_bits": self.layer_equal_bits}

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


#: working memory per chunk that compare() aims at (both graphs' tensors, a few copies of each)
CHUNK_BYTES = 512 << 20


def chunk_images(sess_e, exp_names: list[str], sess_l, low_names: list[str], x: np.ndarray,
                 budget: int | None = None, most: int = 256) -> int:
    """Images per chunk for ``compare``: the tensors both graphs produce for one image (the
    export's compared tensors; every custom op's output in the lowered graph: dots, accumulators,
    bits) summed, three times over for the copies made around them (transposes, ConvInteger's
    im2col), fit ``budget``. Small networks get ``most``, ResNet-sized layers a few images."""
    if not len(x):
        return most
    def nbytes(sess, names: list[str]) -> int:  # sess.run, not run(): no progress-bar advance
        return sum(a.nbytes for a in sess.run(names, {sess.get_inputs()[0].name: np.ascontiguousarray(x[:1], np.float32)}))

    per_image = nbytes(sess_e, exp_names) + nbytes(sess_l, low_names)
    return int(max(1, min(most, (budget or CHUNK_BYTES) // max(1, 3 * per_image))))


class ExportReference:
    """The executed export (onnxruntime with reference functions for qonnx's quantizers,
    optimisations off) on inputs ``x``, run once and compared with any number of lowered graphs
    (the rounding contract's grid search lowers one model many times)."""

    def __init__(self, exported, x: np.ndarray, batch: int | None = None):
        self.exp = runnable_export(_proto(exported))
        self.x = x
        self.batch = batch
        self.out = self.exp.graph.output[0].name
        self._values: dict[str, np.ndarray] = {}

    def values(self, names: list[str], batch: int) -> list[np.ndarray]:
        """The export's tensors ``names`` on x (computed once each)."""
        todo = sorted({n for n in names if n not in self._values} | ({self.out} - set(self._values)))
        if todo:
            outs = [self.out] + [n for n in todo if n != self.out]
            for name, v in zip(outs, run(session(_with_outputs(self.exp, outs)), self.x, batch, outs)):
                self._values[name] = v
        return [self._values[n] for n in names]

    def compare(self, lowered, per_layer: bool = True, keep_output: bool = False,
                capture: tuple[str, ...] = ()) -> Comparison:
        """Outputs element-wise and argmax, and, per thresholded layer, the lowered bits against
        the export's own quantizer decisions (the probes the lowering recorded). ``capture``:
        lowered tensors also returned (Comparison.tensors)."""
        low = _proto(lowered)
        batch = self.batch or auto_batch(low)
        probes = bit_probes(low) if per_layer else {}
        low_names = sorted(probes)
        out_l = low.graph.output[0].name
        extra = [t for t in capture if t not in low_names and t != out_l]
        rl = run(session(_with_outputs(low, low_names + extra), optimize=True), self.x, batch,
                 [out_l] + low_names + extra)
        ye, *zs = self.values([self.out] + [probes[n][0] for n in low_names], batch)
        yl = rl[0]
        got = dict(zip([out_l] + low_names + extra, rl))
        layer_bits = {name: self.equal_bits(probes[name], got[name]) for name in low_names}
        agree = prediction_agreement(ye, yl) if ye.ndim == 2 and ye.shape == yl.shape else float("nan")
        diff = float(np.max(np.abs(ye.astype(np.float64) - yl))) if ye.size and ye.shape == yl.shape else float("inf")
        equal = float(np.mean(ye == yl)) if ye.shape == yl.shape else 0.0
        return Comparison(len(self.x), equal, agree, diff, layer_bits, yl if keep_output else None,
                          {t: got[t] for t in capture})

    def equal_bits(self, probe: tuple, bits: np.ndarray) -> float:
        """Fraction of the lowered ``bits`` (B, N', ...) equal to the export's quantizer decisions
        on the probe's tensor z: ``probe`` = (z, BitSpec)."""
        z, spec = probe
        equal, total = equal_bit_count(spec, self.values([z], self.batch or 8)[0], bits)
        return equal / total if total else float("nan")


def equal_bit_count(spec, z: np.ndarray, bits: np.ndarray) -> tuple[int, int]:
    """(equal, compared) lowered ``bits`` (B, N', ...) against the quantizer decisions ``spec``
    takes on the export tensor ``z``; (0, 0) when their sizes differ (nothing comparable)."""
    ref = np.moveaxis(spec.bits(z), 0, 1)
    if ref.size != bits.size:
        return 0, 0
    return int(np.count_nonzero(ref.reshape(bits.shape) == bits.astype(bool))), int(bits.size)


def compare(exported, lowered, x: np.ndarray, batch: int | None = None, per_layer: bool = True,
            keep_output: bool = False) -> Comparison:
    """Run the export (onnxruntime with reference functions for qonnx's quantizers, optimisations
    off) and the lowered graph (plain onnxruntime) on ``x``; compare outputs element-wise, argmax,
    and, per thresholded layer, the lowered bits against the export's own quantizer decisions.

    Streams: ``x`` goes through both graphs ``batch`` images at a time (default: as many as fit
    :data:`CHUNK_BYTES`, see :func:`chunk_images`) and each chunk is compared and dropped, so the memory does not grow with
    ``len(x)`` beyond the lowered output kept with ``keep_output``. The counts are summed over
    the chunks: the same numbers as one comparison of the whole batch."""
    exp = runnable_export(_proto(exported))
    low = _proto(lowered)
    probes = bit_probes(low) if per_layer else {}
    low_names = sorted(probes)
    out_e, out_l = exp.graph.output[0].name, low.graph.output[0].name
    exp_names = [out_e] + sorted({probes[n][0] for n in low_names} - {out_e})
    sess_e = session(_with_outputs(exp, exp_names))
    if batch:
        sess_l = session(_with_outputs(low, low_names), optimize=True)
    else:  # every custom op's output is fetchable: their sizes on one image set the chunk
        ops = [o for n in low.graph.node if n.domain == DOMAIN for o in n.output if o not in low_names and o != out_l]
        sess_l = session(_with_outputs(low, low_names + ops), optimize=True)
        batch = chunk_images(sess_e, exp_names, sess_l, [out_l] + low_names + ops, x)
    n_img = len(x)
    equal = elements = agree = 0
    diff = 0.0
    comparable = two_d = True  # output shapes agree (else nothing is equal), 2-D outputs (argmax)
    bits_eq = dict.fromkeys(low_names, 0)
    bits_n = dict.fromkeys(low_names, 0)
    unmatched: set[str] = set()
    kept: list[np.ndarray] = []
    for i in range(0, n_img, batch):
        xc = x[i:i + batch]
        got_e = dict(zip(exp_names, run(sess_e, xc, batch, exp_names)))
        yl, *bits = run(sess_l, xc, batch, [out_l] + low_names)
        ye = got_e[out_e]
        if keep_output:
            kept.append(yl)
        for name, b in zip(low_names, bits):
            z, spec = probes[name]
            eq, tot = equal_bit_count(spec, got_e[z], b)
            bits_eq[name] += eq
            bits_n[name] += tot
            if b.size and not tot:  # sizes differ: nothing comparable
                unmatched.add(name)
        comparable = comparable and ye.shape == yl.shape
        two_d = two_d and ye.ndim == 2
        elements += ye.size
        if comparable:
            equal += int(np.count_nonzero(ye == yl))
            if ye.size:
                diff = max(diff, float(np.max(np.abs(ye.astype(np.float64) - yl))))
            if two_d:
                agree += agreeing_rows(ye, yl)
        del got_e, bits, ye, yl
    layer_bits = {n: bits_eq[n] / bits_n[n] if bits_n[n] and n not in unmatched else float("nan") for n in low_names}
    ok = comparable and elements > 0
    return Comparison(n_img, equal / elements if ok else 0.0,
                      agree / n_img if comparable and two_d and n_img else float("nan"),
                      diff if ok else float("inf"), layer_bits,
                      np.concatenate(kept, axis=0) if keep_output and kept else None)


__all__ = ["Comparison", "ExportReference", "compare", "bit_probes", "auto_batch", "chunk_images", "equal_bit_count"]
