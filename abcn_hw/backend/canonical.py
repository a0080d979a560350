"""Deterministic tensor names for a lowered graph.

Two lowerings of the same model may differ in tensor names only (a lowering written by another
version, or a lowered graph renamed by a tool). The backend renames every tensor except
the graph input and output to ``t<i>`` (in order of first appearance: initializers by first use,
node outputs in node order) and replaces a renamed tensor's name inside node names, so the
generated project (host graphs, io.json) is byte-identical for identical inputs. Semantics are
unchanged; the probe metadata written by the lowering and the datatype annotations are renamed
along (annotations of tensors not in the graph are dropped). ``canonicalize`` is idempotent, so
:func:`digest` identifies a lowering whatever names it was written with (``verify`` compares it
with the build dir's ``host/lowered.onnx``).

The model-local functions of abcn-hw's ops are replaced by this version's (those of the ops in use,
as the lowering attaches them): they only let onnxruntime run the graph, the ops are defined by
abcn-hw (docs/lowering.md) and the kernels implement that definition. A graph lowered by an
earlier version (whose function bodies differ) thus compiles to the same project, and a body that
was edited or corrupted can no longer make the reference that verify compares the C simulation
with compute something else than the design (a fuzz finding: it compiled, and csim differed).
"""
from __future__ import annotations

import hashlib

import onnx


def canonicalize(proto: onnx.ModelProto) -> onnx.ModelProto:
    m = onnx.ModelProto.FromString(proto.SerializeToString())
    g = m.graph
    keep = {i.name for i in g.input} | {o.name for o in g.output}
    inits = {t.name for t in g.initializer}
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name and name not in seen and name not in keep:
            seen.add(name)
            order.append(name)

    for node in g.node:
        for i in node.input:
            if i in inits:
                visit(i)
        for o in node.output:
            visit(o)
    for t in sorted(inits):
        visit(t)
    for vi in g.value_info:
        visit(vi.name)
    live = keep | seen | {i for n in g.node for i in n.input}  # names in the graph, before renaming
    mapping = {}
    i = 0
    for old in order:
        while f"t{i}" in keep:
            i += 1
        mapping[old] = f"t{i}"
        i += 1
    # rename longest names first inside node names (a name may contain another)
    by_len = sorted(mapping, key=len, reverse=True)

    def rn(x: str) -> str:
        return mapping.get(x, x)

    for node in g.node:
        node.input[:] = [rn(i) for i in node.input]
        node.output[:] = [rn(o) for o in node.output]
        name = node.name
        for old in by_len:
            if len(old) >= 4 and old in name:
                name = name.replace(old, mapping[old])
        node.name = name
    for t in g.initializer:
        t.name = rn(t.name)
    for vi in g.value_info:
        vi.name = rn(vi.name)
    annotations = []
    for a in g.quantization_annotation:
        if a.tensor_name in live:
            a.tensor_name = rn(a.tensor_name)
            annotations.append(onnx.TensorAnnotation.FromString(a.SerializeToString()))
    del g.quantization_annotation[:]
    g.quantization_annotation.extend(sorted(annotations, key=lambda a: a.tensor_name))
    props = []
    for p in m.metadata_props:
        key, val = p.key, p.value
        if key.startswith("abcn_hw.probe."):
            key = "abcn_hw.probe." + rn(key[len("abcn_hw.probe."):])
        props.append((key, val))
    del m.metadata_props[:]
    for key, val in sorted(props):
        e = m.metadata_props.add()
        e.key, e.value = key, val
    _own_functions(m)
    return m


def _own_functions(m: onnx.ModelProto) -> None:
    from ..compiler.ops import DOMAIN, custom_op, function_protos

    used = sorted({n.op_type for n in m.graph.node if n.domain == DOMAIN and n.op_type in custom_op})
    others = [f for f in m.functions if f.domain != DOMAIN or f.name not in custom_op]
    del m.functions[:]
    m.functions.extend(others + function_protos(used))


def digest(proto: onnx.ModelProto) -> str:
    """SHA-256 of the canonical form's deterministic serialisation: equal for two lowerings of the
    same model however their tensors were named."""
    return hashlib.sha256(canonicalize(proto).SerializeToString(deterministic=True)).hexdigest()
