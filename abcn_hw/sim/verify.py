"""verify(model, build_dir, x): the exported model, the lowered graph and the C simulation.

Pass = the csim output equals the lowered graph's (onnxruntime) on every element of every output,
the C simulation's iteration counters equal the cycle estimate in every stage, and the lowering's
contract holds between lowered graph and executed export on the verify inputs
(docs/lowering.md: when every layer is exact, every output element is bit-equal; otherwise -- scales
rounded onto a coefficient grid, or float32 partial sums beyond 2**24 -- the prediction agreement is
at least the contract the build recorded, 99.9 % unless lowered with --min-agreement, and the layer
to blame is named). On a csim mismatch the first layer whose activation bits differ is named, from
the csim's per-layer dumps against the lowered graph's intermediate tensors.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from ..errors import UsageError
from .csim import _project, check_inputs, simulate

#: images per onnxruntime call (the lowered graph's im2col/packing tensors grow with the batch)
BATCH = 64


@dataclass
class VerifyResult:
    images: int
    bit_exact: bool                     # csim == lowered graph on every output element
    mismatches: int                     # differing output elements (csim vs lowered)
    elements: int
    prediction_agreement: float         # argmax agreement csim vs lowered (NaN for non-2-D outputs)
    lowered_vs_exported: dict | None    # compare() summary, None for a lowered input model
    lowering_exact: bool | None
    contract_ok: bool
    first_mismatch_layer: str | None = None
    min_agreement: float | None = None  # the contract of a lowering that is not exact
    contract_layer: str | None = None   # the layer named when the contract fails
    grid_bits: dict = field(default_factory=dict)  # coefficient grid per rounded layer (bits)
    layer_mismatches: dict = field(default_factory=dict)  # layer id -> differing elements
    cycles_match: bool = False
    cycles: list = field(default_factory=list)
    accuracy: dict = field(default_factory=dict)
    csim_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.bit_exact and self.contract_ok and self.cycles_match

    @property
    def first_cycle_mismatch(self) -> dict | None:
        """The first stage whose C-simulation counter differs from the cycle estimate."""
        return next((c for c in self.cycles if not c.get("match")), None) if self.cycles else None

    def to_dict(self) -> dict:
        return {"ok": self.ok, "bit_exact": self.bit_exact, "mismatches": self.mismatches, "elements": self.elements,
                "prediction_agreement": self.prediction_agreement, "images": self.images,
                "lowering_exact": self.lowering_exact, "contract_ok": self.contract_ok,
                "min_agreement": self.min_agreement, "contract_layer": self.contract_layer, "grid_bits": self.grid_bits,
                "lowered_vs_exported": self.lowered_vs_exported, "first_mismatch_layer": self.first_mismatch_layer,
                "layer_mismatches": self.layer_mismatches, "cycles_match": self.cycles_match, "cycles": self.cycles,
                "csim_seconds": round(self.csim_seconds, 3)}

    def summary(self) -> str:
        lines = [f"{self.images} images: csim vs lowered graph: "
                 + ("bit-exact" if self.bit_exact else f"{self.mismatches} of {self.elements} output elements differ")
                 + f", prediction agreement {100 * self.prediction_agreement:.2f}%"]
        if self.first_mismatch_layer:
            lines.append(f"first layer that differs: {self.first_mismatch_layer} "
                         f"({self.layer_mismatches.get(self.first_mismatch_layer)} elements)")
        if self.lowered_vs_exported is not None:
            c = self.lowered_vs_exported
            if self.lowering_exact:
                contract = "exact (contract: every output bit-equal)"
            else:
                grids = ", ".join(f"{k} {v} b" for k, v in self.grid_bits.items())
                contract = (f"not exact (contract: prediction agreement >= {100 * self.min_agreement:g}%"
                            + (f"; coefficient grids {grids}" if grids else "") + ")")
            lines.append(f"lowered vs exported: {100 * c['output_equal']:.3f}% outputs bit-equal, prediction agreement "
                         f"{100 * c['prediction_agreement']:.2f}%; lowering " + contract
                         + ("" if self.contract_ok else " -- CONTRACT VIOLATED"
                            + (f" at layer '{self.contract_layer}'" if self.contract_layer else "")))
        lines.append(cycles_line(self.cycles))
        lines.append("verify: " + ("PASS" if self.ok else "FAIL"))
        return "\n".join(lines)


def cycles_line(counts: list[dict]) -> str:
    """One line: the folding model's cycles per image vs the C simulation's iteration counters
    (advanced by the kernels as they move stream words; every loop iteration with
    --synthesis-view), naming the first stage and layer that differ."""
    head = "cycle estimate vs C-simulation iteration counters: "
    if not counts:
        return head + "MISMATCH (no counters were returned)"
    bad = next((c for c in counts if not c.get("match")), None)
    if bad is None:
        return head + f"match in all {len(counts)} stages"
    layer = bad["id"].rsplit("_", 1)[0]
    return (head + f"MISMATCH in stage {bad['id']} (layer {layer}): estimated {bad['estimated']} cycles per image, "
            f"counted {bad['counted']:g}")


def _lowered_run(lowered: onnx.ModelProto, x: np.ndarray, names: list[str]) -> list[np.ndarray]:
    from ..compiler.compare import _with_outputs
    from ..compiler.export_runtime import run, session

    out = lowered.graph.output[0].name
    m = _with_outputs(lowered, names)
    return run(session(m, optimize=True), x, BATCH, [out] + names)


def verify(model, build_dir, x: np.ndarray, dump_on_mismatch: bool = True, csim_result=None,
           threads: int | None = None, variant: str = "fast", min_agreement: float | None = None,
           host: str = "auto", timeout: float | None = None) -> VerifyResult:
    """``model``: the exported QONNX (or the lowered graph) the build dir was compiled from.

    ``csim_result``: a :class:`CsimResult` of ``simulate(build_dir, x)`` already run by the caller
    on exactly these inputs (e.g. by the flow's csim stage); it is used instead of simulating again.
    ``min_agreement``: the rounding contract to check (default: the one the build recorded).
    ``host``: where the C simulation's host steps run (:func:`simulate`).
    ``timeout``: the C simulation's time limit (:func:`abcn_hw.sim.simulate`)."""
    from qonnx.core.modelwrapper import ModelWrapper

    from ..backend.canonical import digest
    from ..backend.frontend import is_lowered
    from ..compiler import lower
    from ..compiler.contract import check_min_agreement
    from ..compiler.pipeline import grid_metadata
    from ..compiler.report import DEFAULT_MIN_AGREEMENT
    from ..compiler.scales import MAX_ACC_BITS

    b, io = _project(build_dir)
    x = check_inputs(io, x)
    where = str(model) if isinstance(model, (str, os.PathLike)) else None
    if isinstance(model, (str, os.PathLike)):
        from ..compiler.modelfile import read_model

        proto = read_model(model, where)
    else:
        proto = model.model if isinstance(model, ModelWrapper) else model
    try:
        built = onnx.load(str(b / "host" / "lowered.onnx"))
    except Exception as e:  # noqa: BLE001 - protobuf raises many types
        raise UsageError(f"cannot read the build dir's host/lowered.onnx: {type(e).__name__}", str(b),
                         "recompile with 'abcn-hw compile MODEL --out BUILD_DIR --force'") from e
    exported = None
    rep = None
    # the coefficient grids and the contract the build was lowered with (chosen on calibration
    # inputs by compile / lower); the same grids reproduce the same lowered graph
    try:
        meta = grid_metadata(built) or {}
        recorded = check_min_agreement(meta.get("min_agreement", DEFAULT_MIN_AGREEMENT), "the recorded min_agreement")
        grid = {str(k): int(v) for k, v in meta.get("bits", {}).items()}
        max_acc_bits = int(meta.get("max_acc_bits", MAX_ACC_BITS))
    except (TypeError, ValueError, AttributeError) as e:
        raise UsageError(f"the build's coefficient-grid record is malformed: {type(e).__name__}",
                         str(b / "host" / "lowered.onnx"),
                         "recompile with 'abcn-hw compile MODEL --out BUILD_DIR --force'") from e
    if is_lowered(proto):
        lowered = proto
    else:
        exported = proto
        low, rep = lower(ModelWrapper(onnx.ModelProto.FromString(proto.SerializeToString())), where=where,
                         grid=grid, max_acc_bits=max_acc_bits, min_agreement=recorded)
        lowered = low.model
    # the contract checked: the caller's, else the one the build was lowered with
    min_agreement = recorded if min_agreement is None else check_min_agreement(min_agreement)
    if digest(lowered) != digest(built):  # same lowering, whatever its tensor names
        raise UsageError("the build dir was not generated from this model (its host/lowered.onnx is another "
                         "lowering)", str(b), "recompile with 'abcn-hw compile MODEL --out BUILD_DIR --force'")

    if rep is not None:  # the report names the lowering's tensors; the build has canonical names
        _rename_probes(rep, lowered, built)
    lowered = built  # the same graph with the build's canonical tensor names, which io.json uses
    if csim_result is not None:
        if csim_result.output.shape[0] != len(x):
            raise UsageError(f"csim_result holds {csim_result.output.shape[0]} images, the inputs {len(x)}")
        res = csim_result
    else:
        res = simulate(b, x, dump=False, threads=threads, variant=variant, host=host, timeout=timeout)
    ref, cmp = _reference(exported, lowered, x)
    y = res.output
    diff = int(np.sum(ref != y)) if ref.shape == y.shape else int(max(ref.size, y.size))
    agree = float(np.mean(ref.argmax(-1) == y.argmax(-1))) if ref.ndim == 2 and ref.shape == y.shape else float("nan")
    result = VerifyResult(len(x), diff == 0 and ref.dtype == y.dtype, diff, int(ref.size), agree, None, None, True,
                          cycles_match=res.cycles_match, cycles=res.counts, csim_seconds=res.seconds)
    if exported is not None:
        from ..compiler.contract import culprit

        result.lowered_vs_exported = cmp.summary()
        result.lowering_exact = rep.exact
        if rep.exact:
            result.contract_ok = cmp.output_equal == 1.0
        else:
            result.min_agreement = min_agreement
            result.grid_bits = rep.grid_bits
            result.contract_ok = bool(cmp.prediction_agreement >= min_agreement)
            if not result.contract_ok:
                result.contract_layer = culprit(rep, cmp, min_agreement)
    if not result.bit_exact and dump_on_mismatch:
        _locate(b, io, x, lowered, result, variant, timeout)
    return result


def _rename_probes(rep, lowered: onnx.ModelProto, built: onnx.ModelProto) -> None:
    """Point the report's per-layer bit tensors at the build's canonical names (a probe's value,
    the export tensor and its quantizer, is the same in both graphs)."""
    def probes(m):
        return {p.value: p.key for p in m.metadata_props if p.key.startswith("abcn_hw.probe.")}

    canonical = probes(built)
    by_name = {k: canonical.get(v) for v, k in probes(lowered).items()}
    for layer in rep.layers:
        if layer.bits_tensor is not None:
            key = by_name.get("abcn_hw.probe." + layer.bits_tensor)
            layer.bits_tensor = key[len("abcn_hw.probe."):] if key else None


def _reference(exported, lowered: onnx.ModelProto, x: np.ndarray):
    """The lowered graph's output (onnxruntime) and, with an exported model, the lowering's
    Comparison with the executed export (abcn_hw.compiler.compare; one run of each graph)."""
    from ..compiler.compare import compare
    from ..compiler.export_runtime import run, session

    if exported is None:
        return run(session(lowered, optimize=True), x, BATCH, [lowered.graph.output[0].name])[0], None
    cmp = compare(exported, lowered, x, keep_output=True)  # streamed in chunks of bounded memory
    return cmp.lowered_output, cmp


def _locate(b: Path, io: dict, x: np.ndarray, lowered: onnx.ModelProto, result: VerifyResult,
            variant: str = "fast", timeout: float | None = None) -> None:
    """Name the first layer whose csim output differs from the lowered graph's tensor."""
    n = min(len(x), 256)
    res = simulate(b, x[:n], dump=True, variant=variant, timeout=timeout)
    names = [t["tensor"] for t in io["taps"]]
    outs = _lowered_run(lowered, x[:n], names)[1:]
    for t, ref in zip(io["taps"], outs):
        got = res.taps[t["tensor"]]
        bad = int(np.sum(ref != got)) if ref.shape == got.shape else int(ref.size)
        result.layer_mismatches[t["layer"]] = bad
        if bad and result.first_mismatch_layer is None:
            result.first_mismatch_layer = t["layer"]
    acc_bad = int(np.sum(res.accumulators != _final_acc(lowered, io, x[:n])))
    last = io["stages"][-1]["id"].rsplit("_mvu", 1)[0]
    result.layer_mismatches[last] = acc_bad
    if result.first_mismatch_layer is None:
        result.first_mismatch_layer = last if acc_bad else "host post-processing (host/post.onnx)"


def _final_acc(lowered: onnx.ModelProto, io: dict, x: np.ndarray) -> np.ndarray:
    from ..backend.frontend import build_network

    net = build_network(lowered)
    return _lowered_run(lowered, x, [net.output_tensor])[1]
