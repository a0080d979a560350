"""Run a QONNX export directly in onnxruntime (fast reference for many images).

Attaches model-local FunctionProtos for qonnx's ``BipolarQuant`` and ``Quant`` (ROUND) that
replicate qonnx's numpy execution op by op (x/scale + zp, clamp, round half to even, - zp, *scale;
bipolar: where(x >= 0, 1, -1) * scale), and makes the batch dimension dynamic. Equality with
qonnx's executor is checked in tests/compiler/test_export_runtime.py.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper

from .. import progress
from ..errors import UnsupportedModelError
from .ops._base import FunctionBuilder
from .patterns import QONNX_DOMAINS


def _bipolar_quant(domain: str) -> onnx.FunctionProto:
    b = FunctionBuilder("BipolarQuant")
    one = b.op("CastLike", b.const(1.0, np.float32), "X")
    ge = b.op("GreaterOrEqual", "X", b.op("CastLike", b.const(0.0, np.float32), "X"))
    y = b.op("Where", ge, one, b.op("Neg", one))
    b.op("Mul", y, "S", out="Y")
    f = b.function(["X", "S"], ["Y"], [])
    f.domain = domain
    return f


def _quant(domain: str) -> onnx.FunctionProto:
    b = FunctionBuilder("Quant")
    s = b.op("Cast", b.attr_int("signed"), to=TensorProto.FLOAT)
    nw = b.op("Cast", b.attr_int("narrow"), to=TensorProto.FLOAT)
    two, one = b.const(2.0, np.float32), b.const(1.0, np.float32)
    p = b.op("Pow", two, "BW")
    h = b.op("Pow", two, b.op("Sub", "BW", one))
    ns = b.op("Sub", one, s)
    mx = b.op("Add", b.op("Mul", s, b.op("Sub", h, one)), b.op("Mul", ns, b.op("Sub", b.op("Sub", p, one), nw)))
    mn = b.op("Mul", s, b.op("Add", b.op("Neg", h), nw))
    y = b.op("Add", b.op("Div", "X", "S"), "Z")
    y = b.op("Where", b.op("Greater", y, mx), b.op("CastLike", mx, y), y)
    y = b.op("Where", b.op("Less", y, mn), b.op("CastLike", mn, y), y)
    y = b.op("Round", y)
    b.op("Mul", b.op("Sub", y, "Z"), "S", out="Y")
    f = b.function(["X", "S", "Z", "BW"], ["Y"], ["signed", "narrow", "rounding_mode"])
    f.domain = domain
    return f


def runnable_export(model: onnx.ModelProto | ModelWrapper) -> onnx.ModelProto:
    """A copy of a QONNX export that plain onnxruntime runs, with a dynamic batch dimension."""
    from .passes.finalize import MakeBatchDynamic

    from .pipeline import normalise

    proto = model.model if isinstance(model, ModelWrapper) else model
    # the compiler's normalisation (constant folding, shapes, no-op removal) is value-preserving
    w = normalise(ModelWrapper(onnx.ModelProto.FromString(proto.SerializeToString())))
    for node in w.graph.node:
        if node.op_type == "Quant":
            rm = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "rounding_mode"), b"ROUND")
            if (rm.decode() if isinstance(rm, bytes) else rm).upper() not in ("ROUND", "HALF_EVEN"):
                raise ValueError(f"Quant {node.name}: rounding mode {rm} not supported by the ORT reference")
    domains = sorted({n.domain for n in w.graph.node if n.op_type in ("Quant", "BipolarQuant") and n.domain in QONNX_DOMAINS})
    for d in domains:
        w.model.functions.extend([_bipolar_quant(d), _quant(d)])
    MakeBatchDynamic().apply(w)
    return w.model


def session(model: onnx.ModelProto, optimize: bool = False) -> ort.InferenceSession:
    so = ort.SessionOptions()
    if not optimize:
        # the reference must run each exported node as exported (no Conv+BatchNorm fusion etc.)
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 4  # a failure becomes the one-line error below, not ORT log lines
    try:
        return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises Fail, InvalidGraph, ... on a malformed graph
        raise UnsupportedModelError(f"onnxruntime cannot run the model: {_first_line(e)}",
                                    fix="the graph is inconsistent (shapes or types); re-export it") from e


def run(sess: ort.InferenceSession, x: np.ndarray, batch: int = 256, outputs: list[str] | None = None) -> list[np.ndarray]:
    name = sess.get_inputs()[0].name
    res: list[list[np.ndarray]] = []
    for i in range(0, len(x), batch):
        try:
            out = sess.run(outputs, {name: np.ascontiguousarray(x[i:i + batch], np.float32)})
        except Exception as e:  # noqa: BLE001 - a malformed graph fails at run time in many ways
            raise UnsupportedModelError(f"onnxruntime cannot run the model: {_first_line(e)}",
                                        fix="the graph is inconsistent (shapes or types); re-export it") from e
        res.append(out)
        progress.advance(len(out[0]) if out else 0)  # a caller's bar, if one is open (abcn_hw.progress)
    return [np.concatenate([r[j] for r in res], axis=0) for j in range(len(res[0]))]


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__


__all__ = ["runnable_export", "session", "run"]
