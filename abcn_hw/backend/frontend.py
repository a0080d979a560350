"""Lowered ONNX graph -> :class:`~abcn_hw.backend.ir.Network`.

The lowered graph (docs/lowering.md) is a float *prefix* (input quantisation, e.g. Div/Clip/Round/
Cast or Mul/FloatBaseQuant), a chain of integer custom ops, and a float *postfix* on the final
integer accumulator (Cast, the power-of-two unit scale, batch-norm-like affine ops). The chain is
mapped onto hardware units:

* ``XnorPopcountConv`` / ``IntegerInputConv`` + ``MultiBaseThreshold``  -> window generator + MVU
* ``XnorPopcountMatMul`` / ``IntegerInputMatMul`` + threshold/accumulate -> MVU
* ``BitMaxPool`` -> bit max-pool;  ``Reshape``/``Flatten`` of a bit feature map -> (nothing: the FC
  weights are permuted to the stream order)

The prefix and postfix stay on the host and are kept as ONNX graphs (run by onnxruntime in the
C simulation driver), so the float op sequence is exactly the lowered graph's. Anything else is
reported at once, with every offending node, as :class:`UnsupportedModelError`. Sizes are checked
against :mod:`.limits` from the initializer shapes before any weight is unpacked.
"""
from __future__ import annotations

import os
import re
from collections import defaultdict

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..compiler.pipeline import topological_nodes
from ..errors import UnsupportedModelError, group_problems
from . import limits
from .ir import (ConvGeom, GlobalSumPoolLayer, InputSpec, IntMaxPoolLayer, IntThresholdLayer, MatrixLayer, Network,
                 PoolLayer, ResidualAddLayer)
from .names import hint, layer_id
from .padding import pad_correction

DOMAIN = "abcn_hw.compiler.ops"
MATRIX_OPS = ("XnorPopcountConv", "XnorPopcountMatMul", "IntegerInputConv", "IntegerInputMatMul")
HOST_CUSTOM_OPS = ("FloatBaseQuant", "FloatQuantBits")  # allowed in the host prefix
#: integer-stream ops of residual networks (docs/residual-networks.md) -> layer kind
RESIDUAL_OPS = {"ResidualAdd": "radd", "IntegerThreshold": "ithr", "GlobalSumPool": "sumpool",
                "IntegerMaxPool": "imaxpool"}


def is_lowered(proto: onnx.ModelProto) -> bool:
    return any(n.domain == DOMAIN for n in proto.graph.node)


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _desc(node: onnx.NodeProto) -> str:
    return f"{node.op_type} {node.name!r}"


def _unsupported(problems: list[str], where: str | None) -> UnsupportedModelError:
    fix = "the backend maps the lowered XNOR-popcount chain (see docs/lowering.md); change the model or report the pattern"
    if len(problems) == 1:
        return UnsupportedModelError("the backend cannot map this node: " + problems[0], where, fix)
    pairs = []  # "Op 'name'[:] reason" -> (reason, "Op 'name'"), grouped by reason
    for p in problems:
        m = re.match(r"^(\w+ '[^']*'):? (.*)$", p)
        pairs.append((m.group(2), m.group(1)) if m else (p, ""))
    return UnsupportedModelError(f"the backend cannot map {len(problems)} nodes for "
                                 f"{len({r for r, _ in pairs})} reason(s), listed below", where, fix,
                                 details=group_problems(pairs))


def signed_width(lo: int, hi: int) -> int:
    """Smallest two's-complement width (>= 2) holding lo..hi."""
    w = 2
    while not (-(1 << (w - 1)) <= lo and hi <= (1 << (w - 1)) - 1):
        w += 1
    return w


def clog2(x: int) -> int:
    return 0 if x <= 1 else int(x - 1).bit_length()


def bits_signed_sym(mx: int) -> int:
    """Mirror of abcn::bits_signed_sym: signed width holding -(mx+1)..mx+1."""
    return clog2(mx + 2) + 1


def _subgraph(proto: onnx.ModelProto, nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto],
              outputs: list[onnx.ValueInfoProto], name: str, extra: list[onnx.TensorProto] = ()) -> bytes:
    used = {i for n in nodes for i in n.input}
    inits = [t for t in proto.graph.initializer if t.name in used] + list(extra)
    g = helper.make_graph(list(nodes), name, inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=list(proto.opset_import), ir_version=proto.ir_version)
    m.functions.extend(proto.functions)
    return m.SerializeToString(deterministic=True)


def build_network(proto: onnx.ModelProto, source: str | None = None, where: str | None = None) -> Network:
    """Map a lowered graph onto hardware units (raises UnsupportedModelError listing every problem)."""
    g = proto.graph
    init_protos = {t.name: t for t in g.initializer}
    graph_inputs = [i for i in g.input if i.name not in init_protos]
    if len(graph_inputs) != 1 or len(g.output) != 1:
        raise _unsupported([f"the graph has {len(graph_inputs)} inputs and {len(g.output)} outputs "
                            "(one of each is supported)"], where)
    gin, gout = graph_inputs[0], g.output[0]
    in_dims = [d.dim_value if d.HasField("dim_value") else None for d in gin.type.tensor_type.shape.dim]
    if len(in_dims) < 2 or any(d is None or d <= 0 for d in in_dims[1:]):
        raise _unsupported([f"graph input shape {in_dims} is not (batch, static dims...)"], where)
    if int(np.prod(in_dims[1:])) > limits.MAX_TENSOR_ELEMENTS:
        raise UnsupportedModelError(f"the input has {int(np.prod(in_dims[1:]))} elements per image, more than the "
                                    f"limit {limits.MAX_TENSOR_ELEMENTS}", where, "see abcn_hw/backend/limits.py")

    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for n in g.node:
        for i in n.input:
            consumers[i].append(n)
    problems: list[str] = []

    first = next((n for n in g.node if n.domain == DOMAIN and n.op_type in MATRIX_OPS), None)
    if first is None:
        raise _unsupported(["no XNOR-popcount / integer-input layer found: is this a lowered abcn-hw graph?"], where)
    accel_in = first.input[0]

    # prefix: ancestors of the accelerator input
    prefix_ids: set[int] = set()
    stack = [accel_in]
    while stack:
        t = stack.pop()
        p = producer.get(t)
        if p is None or id(p) in prefix_ids:
            continue
        prefix_ids.add(id(p))
        stack.extend(p.input)
    prefix = [n for n in g.node if id(n) in prefix_ids]
    for n in prefix:
        if n.domain == DOMAIN and n.op_type not in HOST_CUSTOM_OPS:
            problems.append(f"{_desc(n)} computes the accelerator input on the host")
        if n.op_type in ("MatMul", "Conv", "Gemm"):
            problems.append(f"{_desc(n)}: a float layer before the first binary layer")

    # walk the chain (a residual network: the dataflow graph, in node order)
    chain: list[tuple[str, list[onnx.NodeProto]]] = []  # (kind, nodes)
    core_ids: set[int] = set()
    cur: onnx.NodeProto | None = first
    acc_tensor = None
    if any(n.domain == DOMAIN and n.op_type in RESIDUAL_OPS for n in g.node):
        from ..compiler.accelerated import check_integer_only

        check_integer_only(proto, where)  # a join the lowering kept in float32: refused by name
        acc_tensor = _walk_graph(g, prefix_ids, consumers, chain, core_ids, problems)
        cur = None
    while cur is not None:
        node = cur
        cur = None
        if node.domain == DOMAIN and node.op_type in MATRIX_OPS:
            if chain and node.op_type.startswith("Integer"):
                problems.append(f"{_desc(node)}: an integer-input layer after the first layer")
                break
            cons = consumers.get(node.output[0], [])
            if len(cons) != 1 or cons[0].op_type not in ("MultiBaseThreshold", "MultiBaseAccumulate") \
                    or cons[0].domain != DOMAIN or cons[0].input[0] != node.output[0]:
                problems.append(f"{_desc(node)}: its dots must feed exactly one MultiBaseThreshold/Accumulate")
                break
            act = cons[0]
            chain.append(("matrix", [node, act]))
            core_ids.update({id(node), id(act)})
            if act.op_type == "MultiBaseAccumulate":
                acc_tensor = act.output[0]
                break
            nxt = consumers.get(act.output[0], [])
        elif node.op_type == "BitMaxPool" and node.domain == DOMAIN:
            chain.append(("pool", [node]))
            core_ids.add(id(node))
            nxt = consumers.get(node.output[0], [])
        elif node.op_type in ("Reshape", "Flatten") and node.domain in ("", "ai.onnx"):
            chain.append(("flatten", [node]))
            core_ids.add(id(node))
            nxt = consumers.get(node.output[0], [])
        else:
            problems.append(f"{_desc(node)} inside the binary chain")
            break
        if len(nxt) != 1:
            problems.append(f"{_desc(node)}: its output feeds {len(nxt)} nodes (a single chain is supported)")
            break
        cur = nxt[0]
    if acc_tensor is None and not problems:
        problems.append("the chain does not end in MultiBaseAccumulate (the final integer layer)")

    # postfix: descendants of the accumulator
    post_ids: set[int] = set()
    if acc_tensor is not None:
        stack = [acc_tensor]
        while stack:
            t = stack.pop()
            for c in consumers.get(t, []):
                if id(c) not in post_ids:
                    post_ids.add(id(c))
                    stack.extend(c.output)
    postfix = [n for n in g.node if id(n) in post_ids]
    inner = [n for n in postfix if n.domain == DOMAIN and n.op_type in MATRIX_OPS]
    if inner:
        # a layer kept in float32 by the lowering (a residual join, an average pool) with binary
        # layers after it: say that, instead of listing every node behind it
        float_ops = sorted({n.op_type for n in postfix if n.domain in ("", "ai.onnx")})
        joins = [n for n in postfix if n.op_type == "Add" and sum(i not in init_protos for i in n.input) == 2]
        raise UnsupportedModelError(
            f"{_desc(producer[acc_tensor])} is not the last layer: its output stays float32 in the lowered graph "
            f"({', '.join(float_ops)}{f'; {len(joins)} joins of two branches, e.g. residual adds' if joins else ''}) "
            f"and feeds {len(inner)} more binary layers. The HLS backend maps a single chain of integer layers with "
            "no float region inside", where,
            "Such networks (e.g. resnet8) lower and run bit-exact with 'abcn-hw lower' and onnxruntime, but cannot be "
            "compiled to HLS yet; compile a chain network (lenet, tfc, sfc, lfc, cnv, BNN-PYNQ)")
    post_known = {acc_tensor} | set(init_protos) | {o for n in postfix for o in n.output}
    for n in postfix:
        if n.domain not in ("", "ai.onnx"):
            problems.append(f"{_desc(n)} after the final integer layer")
        elif any(i and i not in post_known for i in n.input):
            problems.append(f"{_desc(n)} after the final layer reads a tensor from before it")
    for n in g.node:
        if id(n) not in prefix_ids | core_ids | post_ids:
            problems.append(f"{_desc(n)} is not on the input -> binary chain -> output path")
    if acc_tensor is not None and gout.name not in {o for n in postfix for o in n.output} | {acc_tensor}:
        problems.append("the graph output is not computed from the final integer layer")
    if len(chain) > limits.MAX_LAYERS:
        problems.append(f"{len(chain)} layers (limit {limits.MAX_LAYERS})")
    if problems:
        raise _unsupported(problems, where)

    # -- size limits from the initializer shapes, before unpacking anything ---------------------
    total_w = total_t = 0
    for kind, nodes in chain:
        if kind != "matrix":
            continue
        mat, act = nodes
        for t in [mat.input[1]] + list(act.input[1:]):
            if t not in init_protos:
                raise _unsupported([f"{_desc(mat if t == mat.input[1] else act)}: parameter is not a constant"], where)
        wd = list(init_protos[mat.input[1]].dims)
        if len(wd) != 3:
            raise _unsupported([f"{_desc(mat)}: packed weights of rank {len(wd)}"], where)
        wbits = int(np.prod(wd, dtype=object)) * 8
        total_w += wbits
        if wbits > limits.MAX_LAYER_WEIGHT_BITS:
            raise UnsupportedModelError(f"layer {mat.name!r} asks for {wbits} weight bits, more than the per-layer limit "
                                        f"{limits.MAX_LAYER_WEIGHT_BITS}", where, "see abcn_hw/backend/limits.py")
        if wd[0] > limits.MAX_BASES:
            raise UnsupportedModelError(f"layer {mat.name!r} has {wd[0]} weight bases (limit {limits.MAX_BASES})", where)
        if act.op_type == "MultiBaseThreshold":
            nthr = int(np.prod(list(init_protos[_act_inputs(act)[1]].dims), dtype=object))
            total_t += nthr
            if nthr > limits.MAX_LAYER_THRESHOLDS:
                raise UnsupportedModelError(f"layer {mat.name!r} asks for {nthr} thresholds, more than the per-layer "
                                            f"limit {limits.MAX_LAYER_THRESHOLDS}", where, "see abcn_hw/backend/limits.py")
    if total_w > limits.MAX_TOTAL_WEIGHT_BITS:
        raise UnsupportedModelError(f"the network asks for {total_w} weight bits, more than the limit "
                                    f"{limits.MAX_TOTAL_WEIGHT_BITS}", where, "see abcn_hw/backend/limits.py")
    if total_t > limits.MAX_TOTAL_THRESHOLDS:
        raise UnsupportedModelError(f"the network asks for {total_t} thresholds, more than the limit "
                                    f"{limits.MAX_TOTAL_THRESHOLDS}", where, "see abcn_hw/backend/limits.py")

    shapes = _tensor_shapes(proto, gin, in_dims, [accel_in] + [n.output[0] for _, ns in chain for n in ns] +
                            [gout.name], where)
    for t, s in shapes.items():
        if int(np.prod(s, dtype=object)) > limits.MAX_TENSOR_ELEMENTS:
            raise UnsupportedModelError(f"a tensor has {int(np.prod(s, dtype=object))} elements per image, more than "
                                        f"the limit {limits.MAX_TENSOR_ELEMENTS}", where, "see abcn_hw/backend/limits.py")
    init = {k: numpy_helper.to_array(v) for k, v in init_protos.items()}

    # -- input spec ------------------------------------------------------------------------------
    xs = shapes[accel_in]
    if first.op_type.startswith("Integer"):
        lo, hi = _int_range(accel_in, producer, init)
        if lo is None:
            raise _unsupported([f"{_desc(first)}: cannot bound the integer input (no Clip with constant "
                                "limits before it)"], where)
        signed = lo < 0
        in_bits = signed_width(lo, hi) if signed else max(1, int(hi).bit_length())
        if in_bits > 32:
            raise _unsupported([f"{_desc(first)}: {in_bits}-bit integer input"], where)
        inp = InputSpec(accel_in, "int", tuple(xs), in_bits, signed, int(lo), int(hi))
    else:
        inp = InputSpec(accel_in, "bits", tuple(xs))

    # -- layers ----------------------------------------------------------------------------------
    layers: list = []
    spatial: tuple[int, int, int, int] | None = None  # (N, C, H, W) of the current bit feature map
    flat_from: tuple[int, int, int, int] | None = None
    if inp.kind == "bits" and len(xs) == 4:
        spatial = tuple(xs)
    idx = 0
    alias: dict[str, str] = {}  # a flattening's output -> the tensor it reorders (the FC weights absorb it)
    flat: dict[str, tuple[int, int, int, int]] = {}  # flattened tensor -> the (N, C, H, W) it came from
    bounds: dict[str, int] = {}  # integer tensor -> bound of its absolute values
    for kind, nodes in chain:
        node = nodes[0]
        reads = [alias.get(t, t) for t in node.input if t and t not in init]
        if kind == "flatten":
            s_in, s_out = shapes[node.input[0]], shapes[node.output[0]]
            if spatial is None or len(s_in) != 4 or tuple(s_out) != (s_in[0], s_in[1] * s_in[2] * s_in[3]):
                problems.append(f"{_desc(node)}: only the flattening (N, C, H, W) -> (N, C*H*W) of a bit feature map "
                                "is supported")
                break
            alias[node.output[0]] = reads[0]
            flat[node.output[0]] = tuple(s_in)
            flat_from = tuple(s_in)
            spatial = None
            continue
        if kind in RESIDUAL_OPS.values():
            try:
                layer = _int_layer(kind, idx, node, reads, init, shapes, bounds)
            except ValueError as e:
                problems.append(f"{_desc(node)}: {e}")
                break
            layers.append(layer)
            if isinstance(layer, (ResidualAddLayer, GlobalSumPoolLayer)):
                bounds[layer.out_tensor] = layer.bound
            elif isinstance(layer, IntMaxPoolLayer):
                bounds[layer.out_tensor] = bounds[reads[0]]
            spatial = tuple(shapes[layer.out_tensor]) if isinstance(layer, IntThresholdLayer) else None
            idx += 1
            continue
        if kind == "pool":
            node = nodes[0]
            a = _attrs(node)
            s_in = shapes[node.input[0]]
            if spatial is None or len(s_in) != 4:
                problems.append(f"{_desc(node)}: max-pool of a non-spatial tensor")
                break
            n_, c_, h_, w_ = s_in
            try:
                geom = _geom(a, h_, w_)
            except ValueError as e:
                problems.append(f"{_desc(node)}: {e}")
                break
            pl = PoolLayer(idx, layer_id(idx, node.name), node.name, c_, n_, geom, node.output[0], reads[:1])
            if tuple(pl.out_shape) != tuple(shapes[node.output[0]]):
                problems.append(f"{_desc(node)}: output shape {shapes[node.output[0]]} is not floor mode")
                break
            layers.append(pl)
            spatial = pl.out_shape
            idx += 1
            continue
        mat, act = nodes
        flat_from = flat.get(mat.input[0])
        try:
            layer = _matrix_layer(idx, mat, act, init, shapes, inp, flat_from)
        except ValueError as e:
            problems.append(f"{_desc(mat)}: {e}")
            break
        flat_from = None
        layer.inputs = reads[:1]
        if layer.final:
            bounds[layer.out_tensor] = layer.acc_max
        layers.append(layer)
        spatial = (layer.nout,) + layer.out_shape[1:] if (layer.geom and not layer.final) else None
        idx += 1
    if problems:
        raise _unsupported(problems, where)

    # the accumulator's dtype is the coefficients' (int32, or int64 for rounded layers)
    final_act = chain[-1][1][1]
    acc_dtype = np.dtype(init[final_act.input[1]].dtype)
    if acc_dtype not in (np.dtype(np.int32), np.dtype(np.int64)):
        raise _unsupported([f"{_desc(final_act)}: {acc_dtype} coefficients"], where)
    acc_dims = list(shapes.get(acc_tensor, (layers[-1].mh,)))
    post_inits: list[onnx.TensorProto] = []
    stream_dims = [layers[-1].mh] if layers[-1].vectors == 1 else [layers[-1].mh, layers[-1].vectors]
    post_in = acc_tensor
    if acc_dims != stream_dims:  # a final conv's (O, Ho, Wo): the host gets (O[, Ho*Wo]) from the stream
        post_in = acc_tensor + "_stream"
        while post_in in {t for n in g.node for t in list(n.input) + list(n.output)} | set(init_protos):
            post_in += "_"
        target = numpy_helper.from_array(np.asarray([-1] + acc_dims, np.int64), post_in + "_shape")
        postfix = [helper.make_node("Reshape", [post_in, target.name], [acc_tensor], name=post_in + "_reshape")] \
            + postfix
        post_inits = [target]
    acc_vi = helper.make_tensor_value_info(post_in, helper.np_dtype_to_tensor_dtype(acc_dtype), ["batch", *stream_dims])
    in_type = onnx.TensorProto.INT32 if inp.kind == "int" else onnx.TensorProto.UINT8
    pre = _subgraph(proto, prefix, [gin], [helper.make_tensor_value_info(accel_in, in_type, ["batch", *inp.shape])],
                    "abcn_host_pre")
    post = _subgraph(proto, postfix, [acc_vi], [gout], "abcn_host_post", post_inits)
    name = hint(g.name) or "model"
    return Network(name, inp, layers, acc_tensor, pre, post, gin.name, gout.name, tuple(in_dims[1:]),
                   tuple(shapes[gout.name]), os.path.basename(source) if source else "", acc_dtype=acc_dtype.name)


def _walk_graph(g, prefix_ids: set[int], consumers: dict, chain: list, core_ids: set[int],
                problems: list[str]) -> str | None:
    """The accelerated nodes of a residual network in node (topological) order: matrix op +
    activation pairs, pools, flattenings and the integer-stream ops. Fills ``chain`` and
    ``core_ids``; returns the final accumulator tensor (the MultiBaseAccumulate no abcn op reads
    after), or None with the reason in ``problems``."""
    def descendants(n) -> list:
        seen, todo, out = set(), [n], []
        while todo:
            for o in todo.pop().output:
                for c in consumers.get(o, []):
                    if id(c) not in seen:
                        seen.add(id(c))
                        out.append(c)
                        todo.append(c)
        return out

    finals = [n for n in g.node if n.domain == DOMAIN and n.op_type == "MultiBaseAccumulate"
              and not any(c.domain == DOMAIN for c in descendants(n))]
    if len(finals) != 1:
        problems.append(f"{len(finals)} final MultiBaseAccumulate layers (one is supported)")
        return None
    post_ids = {id(n) for n in descendants(finals[0])}
    acts: set[int] = set()
    last = None
    for node in topological_nodes(g.node):
        if id(node) in prefix_ids or id(node) in post_ids or id(node) in acts:
            continue
        if node.domain == DOMAIN and node.op_type in MATRIX_OPS:
            if chain and node.op_type.startswith("Integer"):
                problems.append(f"{_desc(node)}: an integer-input layer after the first layer")
                return None
            cons = consumers.get(node.output[0], [])
            if len(cons) != 1 or cons[0].op_type not in ("MultiBaseThreshold", "MultiBaseAccumulate") \
                    or cons[0].domain != DOMAIN or cons[0].input[0] != node.output[0]:
                problems.append(f"{_desc(node)}: its dots must feed exactly one MultiBaseThreshold/Accumulate")
                return None
            item = ("matrix", [node, cons[0]])
            acts.add(id(cons[0]))
            if cons[0] is finals[0]:
                last = item
                continue
        elif node.domain == DOMAIN and node.op_type == "BitMaxPool":
            item = ("pool", [node])
        elif node.domain == DOMAIN and node.op_type in RESIDUAL_OPS:
            item = (RESIDUAL_OPS[node.op_type], [node])
        elif node.domain in ("", "ai.onnx") and node.op_type in ("Reshape", "Flatten"):
            item = ("flatten", [node])
        else:
            problems.append(f"{_desc(node)} inside the binary chain")
            return None
        chain.append(item)
    if last is None:
        problems.append("the final MultiBaseAccumulate is not computed by a binary layer")
        return None
    chain.append(last)  # nothing accelerated reads the logits: the final layer runs last
    core_ids.update(id(n) for _, ns in chain for n in ns)
    return finals[0].output[0]


def _int_layer(kind: str, idx: int, node, reads: list[str], init: dict, shapes: dict, bounds: dict):
    """The layer of an integer-stream op (ResidualAdd, IntegerThreshold, GlobalSumPool, IntegerMaxPool)."""
    xs = [t for t in node.input if t and t not in init]
    if any(x not in bounds for x in reads):
        raise ValueError("its input is not an integer stream of the accelerator (a MultiBaseAccumulate, "
                         "ResidualAdd or pool output)")
    shp = tuple(shapes[xs[0]])
    c, sp = shp[0], tuple(shp[1:])
    lid = layer_id(idx, node.name)
    if kind == "radd":
        s = init[node.input[len(xs)]].astype(np.int64)
        t = init[node.input[len(xs) + 1]].astype(np.int64).reshape(-1)
        if s.shape != (len(xs), c) or t.shape != (c,) or len(xs) not in (1, 2):
            raise ValueError(f"S {s.shape} / T {t.shape} do not match {len(xs)} inputs of {c} channels")
        if any(tuple(shapes[x]) != shp for x in xs):
            raise ValueError("its inputs have different shapes")
        bound = int(max(sum(abs(int(s[i, ch])) * bounds[r] for i, r in enumerate(reads)) + abs(int(t[ch]))
                        for ch in range(c)))
        shift = int(next((a.i for a in node.attribute if a.name == "shift"), 0))
        if not 0 <= shift < 63:
            raise ValueError(f"rounding shift {shift} (0..62)")
        # rounding is monotone: |rshift(y)| <= rshift(bound) (ties to even, the halves round up at most)
        bound = -(-bound // (1 << shift)) if shift else bound
        return ResidualAddLayer(idx, lid, node.name, c, sp, s, t, bound, node.output[0], reads, shift)
    if kind == "ithr":
        t = init[node.input[1]].astype(np.int64)
        d = init[node.input[2]].astype(np.int64).reshape(-1)
        if t.ndim != 2 or t.shape[1] != c or d.shape != (c,) or not np.isin(d, (-1, 1)).all():
            raise ValueError(f"thresholds {t.shape} / directions {d.shape} do not match {c} channels")
        if t.shape[0] > limits.MAX_BASES:
            raise ValueError(f"{t.shape[0]} output bases (limit {limits.MAX_BASES})")
        b = bounds[reads[0]]
        return IntThresholdLayer(idx, lid, node.name, c, sp, np.clip(t, -(b + 1), b + 1), (d > 0).astype(np.uint8),
                                 node.output[0], reads)
    if len(sp) != 2:
        raise ValueError(f"input shape {shp}: a (C, H, W) feature map is expected")
    if kind == "sumpool":
        return GlobalSumPoolLayer(idx, lid, node.name, c, sp[0], sp[1], bounds[reads[0]] * sp[0] * sp[1],
                                  node.output[0], reads)
    geom = _geom(_attrs(node), sp[0], sp[1])
    layer = IntMaxPoolLayer(idx, lid, node.name, c, geom, node.output[0], reads)
    if tuple(layer.out_shape) != tuple(shapes[node.output[0]]):
        raise ValueError(f"output shape {shapes[node.output[0]]} is not floor mode")
    return layer


def _tensor_shapes(proto: onnx.ModelProto, gin, in_dims, names: list[str], where) -> dict[str, tuple[int, ...]]:
    """Per-image shapes of the given tensors: run the lowered graph once on one zero image."""
    import onnxruntime as ort

    m = onnx.ModelProto.FromString(proto.SerializeToString())
    have = {o.name for o in m.graph.output}
    for n in names:
        if n not in have:
            m.graph.output.append(helper.make_empty_tensor_value_info(n))
            have.add(n)
    so = ort.SessionOptions()
    so.log_severity_level = 4  # failures become our one-line error; no ORT log lines
    try:
        sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        out = sess.run(names, {gin.name: np.zeros([1] + list(in_dims[1:]), np.float32)})
    except Exception as e:  # noqa: BLE001 - onnxruntime raises many types
        raise UnsupportedModelError(f"onnxruntime cannot run the lowered graph: {str(e).splitlines()[0][:200]}", where) from e
    return {n: tuple(int(d) for d in o.shape[1:]) for n, o in zip(names, out)}


def _int_range(t: str, producer: dict, init: dict) -> tuple[int | None, int | None]:
    """Range of the integer accelerator input: the last Clip with constant limits before it."""
    seen = set()
    stack = [t]
    while stack:
        x = stack.pop()
        p = producer.get(x)
        if p is None or id(p) in seen:
            continue
        seen.add(id(p))
        if p.op_type == "Clip":
            a = _attrs(p)
            lo = init.get(p.input[1]) if len(p.input) > 1 and p.input[1] else a.get("min")
            hi = init.get(p.input[2]) if len(p.input) > 2 and p.input[2] else a.get("max")
            if lo is not None and hi is not None:
                lo, hi = float(np.asarray(lo).ravel()[0]), float(np.asarray(hi).ravel()[0])
                return int(np.ceil(lo)), int(np.floor(hi))
        stack.extend(i for i in p.input if i)
    return None, None


def _geom(a: dict, h: int, w: int) -> ConvGeom:
    """Window attributes (kernel_shape, strides, pads [top, left, bottom, right]) -> ConvGeom."""
    ks = list(a.get("kernel_shape", []))
    st = list(a.get("strides", [1, 1]))
    pads = list(a.get("pads", [0, 0, 0, 0]))
    if len(ks) != 2 or len(st) != 2 or len(pads) != 4:
        raise ValueError(f"kernel {ks}, strides {st}, pads {pads}: 2-D windows only")
    if any(not (1 <= v <= limits.MAX_KERNEL) for v in ks + st):
        raise ValueError(f"kernel {ks} / strides {st} out of range 1..{limits.MAX_KERNEL}")
    pt, pl, pb, pr = pads
    if not (0 <= pt < ks[0] and 0 <= pb < ks[0] and 0 <= pl < ks[1] and 0 <= pr < ks[1]):
        raise ValueError(f"pads {pads} must be smaller than the kernel {ks}")
    if h + pt + pb < ks[0] or w + pl + pr < ks[1]:
        raise ValueError("kernel larger than the padded input")
    return ConvGeom(h, w, ks[0], ks[1], st[0], st[1], pt, pl, pb, pr)


def _act_inputs(act) -> tuple[list[str], str | None, str | None]:
    """(coefficient inputs, thresholds, directions) of MultiBaseThreshold / MultiBaseAccumulate.
    Coefficients are either C (M, N, O) or the factored pair A (M, O), Bc (N,)."""
    ins = list(act.input[1:])
    if act.op_type == "MultiBaseThreshold":
        return ins[:-2], ins[-2], ins[-1]
    return ins, None, None


def factor_coefficients(c: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """C (M, N, O) integers -> (a (M, O), b (N,)) with C[m, n, o] = a[m, o] * b[n], or None.
    b is the primitive integer vector (gcd 1, first non-zero entry positive) of any non-zero row
    C[m, :, o]; every row must then be an integer multiple of it."""
    import math

    m_, n_, o_ = c.shape
    rows = c.transpose(0, 2, 1).reshape(-1, n_)  # (M*O, N)
    nz = rows[np.any(rows != 0, axis=1)]
    if len(nz) == 0:
        return np.zeros((m_, o_), np.int64), np.ones(n_, np.int64)
    r = [int(v) for v in nz[0]]
    g = 0
    for v in r:
        g = math.gcd(g, abs(v))
    b = np.array([v // g for v in r], np.int64)
    j = int(np.flatnonzero(b)[0])
    if b[j] < 0:
        b = -b
    a = rows[:, j] // b[j]
    if not np.array_equal(a[:, None] * b[None, :], rows):
        return None
    return a.reshape(m_, o_).astype(np.int64), b


def _unpack(w: np.ndarray, k: int) -> np.ndarray:
    return np.unpackbits(np.asarray(w, np.uint8), axis=-1)[..., :k]


def _matrix_layer(idx: int, mat, act, init: dict, shapes: dict, inp: InputSpec, flat_from) -> MatrixLayer:
    op = mat.op_type
    a = _attrs(mat)
    xs = shapes[mat.input[0]]
    wp = init[mat.input[1]]
    m, o, kb = wp.shape
    conv = op.endswith("Conv")
    integer = op.startswith("Integer")
    if integer:
        n = 1
        if conv:
            if len(xs) != 3:
                raise ValueError(f"input shape {xs}")
            c, h, w = xs
        else:
            (k_len,) = xs
    else:
        if conv:
            if len(xs) != 4:
                raise ValueError(f"input shape {xs}")
            n, c, h, w = xs
        else:
            n, k_len = xs
    if n > limits.MAX_BASES or m > limits.MAX_BASES:
        raise ValueError(f"{m} weight / {n} activation bases (limit {limits.MAX_BASES})")
    geom = None
    if conv:
        geom = _geom(a, h, w)
        k_len = c * geom.kh * geom.kw
    else:
        c = k_len
    if kb * 8 < k_len or kb % 8:
        raise ValueError(f"packed weights {wp.shape} do not hold K={k_len} bits")
    if np.unpackbits(np.asarray(wp, np.uint8), axis=-1)[..., k_len:].any():
        raise ValueError(f"packed weights {wp.shape} have bits set beyond K={k_len} (padding bits must be 0)")
    bits = _unpack(wp, k_len)  # (M, O, K) lowered order
    if conv:
        bits = bits.reshape(m, o, c, geom.kh, geom.kw).transpose(0, 1, 3, 4, 2).reshape(m, o, k_len)
    elif flat_from is not None:
        fn, fc, fh, fw = flat_from
        if fc * fh * fw != k_len:
            raise ValueError("flattened input length mismatch")
        bits = bits.reshape(m, o, fc, fh, fw).transpose(0, 1, 3, 4, 2).reshape(m, o, k_len)
    coef_in, thr_in, dir_in = _act_inputs(act)
    if len(coef_in) == 2:  # factored form A (M, O), Bc (N,)
        acoef = init[coef_in[0]].astype(np.int64)
        bcoef = init[coef_in[1]].astype(np.int64).reshape(-1)
        if acoef.shape != (m, o) or bcoef.shape != (n,):
            raise ValueError(f"coefficient shapes {acoef.shape}, {bcoef.shape} do not match M={m}, N={n}, O={o}")
        ccoef = acoef[:, None, :] * bcoef[None, :, None]
    elif len(coef_in) == 1:  # C (M, N, O)
        ccoef = init[coef_in[0]].astype(np.int64)
        if ccoef.shape != (m, n, o):
            raise ValueError(f"coefficient shape {ccoef.shape} does not match (M, N, O) = {(m, n, o)}")
        f = factor_coefficients(ccoef)
        acoef, bcoef = f if f is not None else (None, None)
    else:
        raise ValueError(f"{len(coef_in)} coefficient inputs")
    if integer:
        pix_max = (1 << (inp.in_bits - 1)) if inp.signed else (1 << inp.in_bits) - 1
        dot_max = k_len * pix_max
    else:
        dot_max = k_len
    if acoef is not None:
        a_w = signed_width(int(acoef.min()), int(acoef.max()))
        b_w = signed_width(int(bcoef.min()), int(bcoef.max()))
        acc_max = m * n * dot_max * (1 << (a_w - 1)) * (1 << (b_w - 1))
    else:  # general coefficients (backend glue TA): a_w holds the width of C, b_w = 0
        a_w, b_w = signed_width(int(ccoef.min()), int(ccoef.max())), 0
        acc_max = m * n * dot_max * (1 << (a_w - 1))
    acc_w = bits_signed_sym(acc_max)
    if acc_w > 64:
        raise ValueError(f"accumulator of {acc_w} bits (limit 64)")
    coef_bits = 8 * max(init[t].dtype.itemsize for t in coef_in)
    tight = dot_max * int(np.abs(ccoef).sum(axis=(0, 1)).max()) if ccoef.size else 0
    if tight >= 1 << (coef_bits - 1):  # the graph would wrap around in its coefficient dtype; hardware would not
        raise ValueError(f"accumulator reaches {tight} but the graph computes it in int{coef_bits} "
                         f"(|coefficients| up to {int(np.abs(ccoef).max())}); re-run abcn-hw lower on the export")
    final = act.op_type == "MultiBaseAccumulate"
    layer = MatrixLayer(idx, layer_id(idx, mat.name), mat.name, op, "int" if integer else "xnor", c, k_len, o, m, n,
                        np.ascontiguousarray(bits, np.uint8), acoef, bcoef, geom, final, coef=ccoef,
                        out_tensor=act.output[0],
                        in_bits=inp.in_bits if integer else 1, in_signed=inp.signed if integer else False,
                        a_w=a_w, b_w=b_w, acc_w=acc_w, dot_max=dot_max,
                        acc_max=tight)
    if int(a.get("zero_pad", 0)) and conv and not integer and any((geom.pt, geom.pl, geom.pb, geom.pr)):
        layer.pad_corr = pad_correction(layer.weights, geom, c)
    if not final:
        t = init[thr_in].astype(np.int64)
        s = init[dir_in].astype(np.int64).reshape(-1)
        if t.ndim != 2 or t.shape[1] != o or s.shape != (o,):
            raise ValueError(f"threshold shapes {t.shape}, {s.shape} do not match O={o}")
        if not np.isin(s, (-1, 1)).all():
            raise ValueError("threshold directions must be +1 or -1")
        if t.shape[0] > limits.MAX_BASES:
            raise ValueError(f"{t.shape[0]} output bases (limit {limits.MAX_BASES})")
        layer.thr = np.clip(t, -(acc_max + 1), acc_max + 1)
        layer.pos = (s > 0).astype(np.uint8)
    expect = layer.out_shape
    got = shapes[act.output[0]]
    if tuple(got) != tuple(expect):
        raise ValueError(f"output shape {got}, expected {expect}")
    return layer
