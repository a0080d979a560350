"""Read and validate a model file: the one gate every command's model input passes through.

``read_model(path)`` parses the protobuf without following external-data references, checks every
such reference (relative, inside the model's folder after resolving links, a regular file, offset
and length within it) before reading any of it, then runs :func:`check_model`.
``check_model(proto)`` rejects what would otherwise surface deep in qonnx, onnxruntime or the
backend as a traceback, a hang or a wrong answer: no IR version / default opset, an empty graph,
not exactly one float graph input, zero, negative or huge dimensions, malformed or non-finite
constants, duplicate or undefined tensor names, cycles, control-flow subgraphs.

Every problem is an :class:`~abcn_hw.errors.UnsupportedModelError` (one line, exit code 2) naming the
file and the offending tensor or node. Names are untrusted: they are quoted with ``repr`` (control
characters escaped) and shortened in messages.
"""
from __future__ import annotations

import math
import os
import stat
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from ..errors import UnsupportedModelError

#: protobuf cannot hold more than 2 GiB; anything larger is not a model file
MAX_FILE_BYTES = 2 << 30
#: elements of one constant tensor or of one input sample (far above any binary net we compile)
MAX_ELEMENTS = 1 << 28
#: one dimension of the graph input
MAX_DIM = 1 << 16
#: oldest default-domain opset we accept (Brevitas exports 13 and newer; qonnx needs >= 11)
MIN_OPSET = 11
FIX = "pass a QONNX .onnx file exported with brevitas.export.export_qonnx (or written by abcn-hw)"


def _q(name: str, limit: int = 60) -> str:
    """An untrusted name for a message: repr (control characters escaped), shortened."""
    r = repr(str(name))
    return r if len(r) <= limit else r[:limit - 4] + "...'"


def _bad(what: str, where: str | None, fix: str = FIX) -> UnsupportedModelError:
    return UnsupportedModelError(what, where, fix)


def read_model(path: str | os.PathLike, where: str | None = None) -> onnx.ModelProto:
    """The validated ModelProto of the file ``path`` (external data loaded only from inside the
    model's folder). Raises UnsupportedModelError (or UsageError for a missing file)."""
    from ..errors import UsageError

    path = Path(path)
    where = where or str(path)
    try:
        st = path.stat()
    except OSError as e:
        raise UsageError(f"no such model file: {path}" if isinstance(e, FileNotFoundError) else
                         f"cannot read the model file: {e.strerror}", where, FIX) from e
    if not stat.S_ISREG(st.st_mode):
        raise UsageError("the model path is not a regular file", where, FIX)
    if st.st_size == 0:
        raise _bad("the model file is empty", where)
    if st.st_size > MAX_FILE_BYTES:
        raise _bad(f"the model file is {st.st_size} bytes, more than a protobuf can hold", where)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read the model file: {e.strerror}", where, FIX) from e
    try:
        proto = onnx.ModelProto.FromString(data)
    except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError / RuntimeWarning-like types
        raise _bad(f"not an ONNX model (the protobuf does not parse: {type(e).__name__})", where) from e
    if not proto.HasField("graph"):
        raise _bad("not an ONNX model (no graph)", where)
    _load_external_data(proto, path.parent, where)
    check_model(proto, where)
    return proto


def _all_tensors(proto: onnx.ModelProto):
    """Initializers and tensor-valued attributes of the main graph, its subgraphs and functions."""
    from onnx.external_data_helper import _get_all_tensors

    return _get_all_tensors(proto)


def _load_external_data(proto: onnx.ModelProto, folder: Path, where: str) -> None:
    """Check every external-data reference, then load them (nothing outside ``folder`` is opened)."""
    from onnx.external_data_helper import ExternalDataInfo, load_external_data_for_tensor

    ext = [t for t in _all_tensors(proto) if t.HasField("data_location") and t.data_location == TensorProto.EXTERNAL]
    if not ext:
        return
    root = folder.resolve()
    for t in ext:
        try:
            info = ExternalDataInfo(t)
        except Exception as e:  # noqa: BLE001 - malformed key/value pairs
            raise _bad(f"tensor {_q(t.name)} has malformed external-data fields ({type(e).__name__})", where) from e
        loc = str(info.location or "")
        rel = Path(loc)
        if not loc or "\x00" in loc or rel.is_absolute() or ".." in rel.parts or loc.startswith(("\\", "~")):
            raise _bad(f"tensor {_q(t.name)} refers to external data {_q(loc)} outside the model's folder", where,
                       "keep external data files next to the model (relative names, no '..')")
        target = (folder / rel)
        try:
            resolved = target.resolve(strict=True)
            st = resolved.stat()
        except (OSError, RuntimeError) as e:
            raise _bad(f"tensor {_q(t.name)}: external data file {_q(loc)} is missing", where,
                       "copy the external data file next to the model") from e
        if resolved != root and root not in resolved.parents:
            raise _bad(f"tensor {_q(t.name)} refers to external data {_q(loc)} outside the model's folder "
                       "(through a link)", where, "keep external data files next to the model")
        if not stat.S_ISREG(st.st_mode):
            raise _bad(f"tensor {_q(t.name)}: external data {_q(loc)} is not a regular file", where)
        offset, length = int(info.offset or 0), info.length
        if offset < 0 or offset > st.st_size or (length is not None and (length < 0 or offset + int(length) > st.st_size)):
            raise _bad(f"tensor {_q(t.name)}: external data range is outside the file {_q(loc)}", where)
        _check_dims(t, where)
        try:
            load_external_data_for_tensor(t, str(folder))
        except Exception as e:  # noqa: BLE001
            raise _bad(f"tensor {_q(t.name)}: cannot read its external data ({type(e).__name__})", where) from e


def _check_dims(t: TensorProto, where: str | None) -> int:
    if any(d < 0 for d in t.dims):
        raise _bad(f"constant {_q(t.name)} has a negative dimension {list(t.dims)}", where)
    n = math.prod(int(d) for d in t.dims)
    if n > MAX_ELEMENTS:
        raise _bad(f"constant {_q(t.name)} has {n} elements (dims {list(t.dims)}), more than {MAX_ELEMENTS}", where)
    return n


def _check_tensor(t: TensorProto, where: str | None) -> None:
    if t.HasField("data_location") and t.data_location == TensorProto.EXTERNAL:
        raise _bad(f"constant {_q(t.name)} keeps its data outside the model", where,
                   "load the model with read_model(path) (it reads external data from the model's folder)")
    if t.data_type in (TensorProto.UNDEFINED, TensorProto.STRING):
        raise _bad(f"constant {_q(t.name)} is not numeric", where)
    _check_dims(t, where)
    try:
        a = numpy_helper.to_array(t)
    except Exception as e:  # noqa: BLE001 - size/type mismatches raise ValueError/TypeError/...
        raise _bad(f"constant {_q(t.name)} is malformed: its data does not match dims {list(t.dims)} "
                   f"({type(e).__name__})", where) from e
    if a.size != math.prod(int(d) for d in t.dims):
        raise _bad(f"constant {_q(t.name)} is malformed: {a.size} values for dims {list(t.dims)}", where)
    if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
        raise _bad(f"constant {_q(t.name)} contains NaN or infinity", where, "export a model with finite parameters")


def _graph_tensors(graph: onnx.GraphProto):
    yield from graph.initializer
    for node in graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                yield a.t
            elif a.type == onnx.AttributeProto.TENSORS:
                yield from a.tensors


_WINDOW_OPS = ("Conv", "MaxPool", "AveragePool", "ConvTranspose", "LpPool")
_WINDOW_ATTRS = ("strides", "kernel_shape", "dilations", "pads")


def check_model(proto: onnx.ModelProto, where: str | None = None) -> None:
    """Structural validation of an in-memory model (see the module docstring)."""
    g = proto.graph
    if proto.ir_version < 3:
        raise _bad(f"the model declares no (or an obsolete) IR version ({proto.ir_version})", where)
    if proto.ir_version > onnx.IR_VERSION:
        raise _bad(f"the model's IR version {proto.ir_version} is newer than this onnx reads ({onnx.IR_VERSION})", where)
    default = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    newest = onnx.defs.onnx_opset_version()
    if not default:
        raise _bad("the model imports no standard ONNX opset", where, "export with opset_version >= 13")
    if not MIN_OPSET <= default[0] <= newest:
        raise _bad(f"the model's standard ONNX opset is {default[0]}; abcn-hw reads opsets {MIN_OPSET}..{newest}",
                   where, "export with opset_version between 13 and " + str(newest))
    if not g.node:
        raise _bad("the graph is empty (no nodes)", where)
    _check_text(proto, where)
    for node in g.node:
        for a in node.attribute:
            if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                raise _bad(f"node {_q(node.name)} ({node.op_type}) has a subgraph; control flow is not supported",
                           where, "export a model without If/Loop/Scan")
            if node.op_type in _WINDOW_OPS and a.type == onnx.AttributeProto.INTS and \
                    any(v < (0 if a.name == "pads" else 1) for v in a.ints) and a.name in _WINDOW_ATTRS:
                raise _bad(f"node {_q(node.name)} ({node.op_type}) has attribute {_q(a.name)} = {list(a.ints)}; "
                           + ("pads must be >= 0" if a.name == "pads" else "it must be >= 1"), where)
            if a.type == onnx.AttributeProto.FLOAT and not math.isfinite(a.f) or \
                    a.type == onnx.AttributeProto.FLOATS and not all(math.isfinite(f) for f in a.floats):
                raise _bad(f"node {_q(node.name)} ({node.op_type}) has a NaN or infinite attribute {_q(a.name)}", where)
    _check_functions(proto, where)
    inits: set[str] = set()
    for t in _graph_tensors(g):
        _check_tensor(t, where)
    for t in g.initializer:
        if t.name in inits:
            raise _bad(f"two constants are named {_q(t.name)}", where)
        inits.add(t.name)
    names: set[str] = set()
    for node in g.node:
        if node.name and node.name in names:
            raise _bad(f"two nodes are named {_q(node.name)}", where, "every node needs a unique name (or none)")
        names.add(node.name)
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1:
        raise _bad(f"the graph has {len(inputs)} inputs; abcn-hw compiles models with one input", where)
    _check_input(inputs[0], where)
    if not g.output:
        raise _bad("the graph has no outputs", where)
    _check_names_and_order(g, inits, inputs[0].name, where)
    try:  # onnx's own shape inference, strict: inconsistent shapes / types of standard ops
        inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    except Exception as e:  # noqa: BLE001 - InferenceError, ValidationError, TypeError from the C++ side
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise _bad(f"the graph's shapes or types are inconsistent ({first})", where) from e
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        n = math.prod(max(int(d.dim_value), 1) for d in list(dims)[1:])
        if n > MAX_ELEMENTS:
            raise _bad(f"tensor {_q(vi.name)} would hold {n} elements per sample, more than {MAX_ELEMENTS}", where)


def _check_text(proto: onnx.ModelProto, where: str | None) -> None:
    """Names, op types and domains must be valid UTF-8 (protobuf hands invalid ones over as bytes)."""
    g = proto.graph
    fields = [(n.name, n.op_type, n.domain, *n.input, *n.output) for n in g.node]
    fields += [(v.name,) for v in list(g.input) + list(g.output) + list(g.value_info)]
    fields += [(t.name,) for t in g.initializer]
    fields += [(o.domain,) for o in proto.opset_import]
    for group in fields:
        for text in group:
            if not isinstance(text, str):
                raise _bad(f"a name, op type or domain is not valid UTF-8 ({text[:60]!r})", where)


def _check_functions(proto: onnx.ModelProto, where: str | None) -> None:
    """Model-local functions must not call themselves (directly or through each other)."""
    funcs = {(f.domain, f.name): f for f in proto.functions}
    state: dict[tuple[str, str], int] = {}  # 1 = on the DFS stack, 2 = done

    def visit(key: tuple[str, str]) -> None:
        state[key] = 1
        for n in funcs[key].node:
            callee = (n.domain, n.op_type)
            if callee not in funcs:
                continue
            if state.get(callee) == 1:
                raise _bad(f"the model-local function {_q(callee[1])} calls itself", where,
                           "an ONNX function must not be recursive")
            if callee not in state:
                visit(callee)
        state[key] = 2

    for key in funcs:
        if key not in state:
            visit(key)


def _check_input(inp: onnx.ValueInfoProto, where: str | None) -> None:
    tt = inp.type.tensor_type
    if not inp.type.HasField("tensor_type") or tt.elem_type != TensorProto.FLOAT:
        raise _bad(f"the graph input {_q(inp.name)} is not a float32 tensor", where)
    dims = list(tt.shape.dim)
    if len(dims) < 2:
        raise _bad(f"the graph input {_q(inp.name)} has rank {len(dims)}; expected (batch, features...)", where)
    n = 1
    for i, d in enumerate(dims):
        if d.HasField("dim_value"):
            v = d.dim_value
            if v <= 0 or v > MAX_DIM:
                raise _bad(f"the graph input {_q(inp.name)} has dimension {i} = {v} (allowed 1..{MAX_DIM})", where)
            if i:
                n *= v
    if n > MAX_ELEMENTS:
        raise _bad(f"the graph input {_q(inp.name)} has {n} elements per sample, more than {MAX_ELEMENTS}", where)


def _check_names_and_order(g: onnx.GraphProto, inits: set[str], input_name: str, where: str | None) -> None:
    """Single assignment, every used tensor defined, acyclic (Kahn's algorithm; order may differ)."""
    defined = set(inits) | {input_name}
    producer: dict[str, int] = {}
    for i, node in enumerate(g.node):
        for o in node.output:
            if not o:
                continue
            if o in defined or o in producer:
                raise _bad(f"tensor {_q(o)} is defined twice (node {_q(node.name)})", where,
                           "every tensor needs a unique name")
            producer[o] = i
    missing = [(t, n) for n in g.node for t in n.input if t and t not in defined and t not in producer]
    if missing:
        t, n = missing[0]
        raise _bad(f"node {_q(n.name)} ({n.op_type}) reads tensor {_q(t)}, which no node, constant or input "
                   f"defines" + (f" ({len(missing)} such uses)" if len(missing) > 1 else ""), where,
                   "the file is incomplete (a missing initializer?); re-export the model")
    for o in g.output:
        if o.name not in producer and o.name not in defined:
            raise _bad(f"graph output {_q(o.name)} is not computed by any node", where)
    deps = [{producer[t] for t in n.input if t in producer} for n in g.node]
    users: dict[int, list[int]] = {}
    for i, d in enumerate(deps):
        for j in d:
            users.setdefault(j, []).append(i)
    pending = [len(d) for d in deps]
    ready = [i for i, p in enumerate(pending) if p == 0]
    seen = 0
    while ready:
        i = ready.pop()
        seen += 1
        for u in users.get(i, ()):
            pending[u] -= 1
            if pending[u] == 0:
                ready.append(u)
    if seen != len(g.node):
        n = g.node[next(i for i, p in enumerate(pending) if p > 0)]
        raise _bad(f"the graph has a cycle (through node {_q(n.name)}, {n.op_type})", where,
                   "an ONNX graph must be acyclic; re-export the model")


__all__ = ["read_model", "check_model", "MAX_ELEMENTS", "MAX_DIM"]
