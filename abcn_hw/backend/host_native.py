"""The host steps of the C simulation as generated C++ (``tb/csim_host.cpp``).

The host side of a generated design quantises the float input (``host/pre.onnx``), packs it into
stream words, unpacks the final accumulators and turns them into the model output
(``host/post.onnx``). Those two ONNX graphs stay the documented reference; this module translates
them, node by node and from the same constants, into C++ that the C-simulation library runs next
to the design, so a batch needs no onnxruntime session and no packing in numpy.

Exactness by construction, not by luck:

* every float32 node becomes one correctly rounded IEEE single-precision operation per element
  (``+ - * /``, ``std::nearbyint`` for ONNX Round, i.e. round half to even in the default
  rounding mode), in the graph's order, one statement per node, built with ``-ffp-contract=off``
  (no fused multiply-add) and refused at compile time where ``FLT_EVAL_METHOD != 0`` (x87);
* constants are printed with 10 significant digits, which the compiler parses back to the same
  float32 (round trip), or as integers;
* Clip keeps the input when it equals a bound (onnxruntime's Clip does: ``Clip(-0.0, 0, 1)`` is
  -0.0), Cast from float to an integer refuses values outside the integer type (onnxruntime's
  result is undefined there; the packing would refuse it anyway), int -> float casts round to
  nearest even as onnxruntime's static_cast does;
* NaN and infinite inputs are refused (checked in the same pass, the image's values discarded), as
  :func:`abcn_hw.sim.csim.check_inputs` does for the ONNX path.

Anything outside the supported node set (:data:`SUPPORTED`) makes :func:`host_source` raise
:class:`NativeHostUnsupported` with the reason; the project then has no ``tb/csim_host.cpp`` and
the C simulation keeps the ONNX host graphs (io.json's ``host_native`` says which and why).
The tests compare the generated code with onnxruntime on the reference graphs, element for
element and bit for bit (tests/backend/test_host_native.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .cpp import Cpp, int_lit

#: ABI version of the entry points (abcn_csim_host_info(0); abcn_host::ABI_VERSION in abcn_host.hpp)
ABI_VERSION = 1
#: constants larger than this (elements) that broadcast over non-adjacent axes are not expanded
MAX_EXPANDED = 1 << 16

DOMAIN = "abcn_hw.compiler.ops"
LAYOUT_OPS = ("Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze")
UNARY_OPS = {"Round": "std::nearbyint({})", "Neg": "-{}", "Abs": "std::fabs({})", "Floor": "std::floor({})",
             "Ceil": "std::ceil({})"}
BINARY_OPS = {"Add": "+", "Sub": "-", "Mul": "*", "Div": "/"}
CUSTOM_OPS = ("FloatBaseQuant", "FloatQuantBits")
SUPPORTED = LAYOUT_OPS + tuple(UNARY_OPS) + tuple(BINARY_OPS) + ("Clip", "Cast") + CUSTOM_OPS

_DTYPES = {onnx.TensorProto.FLOAT: "float", onnx.TensorProto.INT32: "std::int32_t",
           onnx.TensorProto.INT64: "std::int64_t", onnx.TensorProto.UINT8: "std::uint8_t"}
_NP = {"float": np.float32, "std::int32_t": np.int32, "std::int64_t": np.int64, "std::uint8_t": np.uint8}
_INT_RANGE = {"std::int32_t": (-(2 ** 31), 2 ** 31 - 1), "std::int64_t": (-(2 ** 63), 2 ** 63 - 1),
              "std::uint8_t": (0, 255)}


class NativeHostUnsupported(Exception):
    """The host graphs use something the C++ translation does not cover (``reason`` says what)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def float_lit(v) -> str:
    """A C++ float literal that parses back to exactly the float32 ``v`` (finite values only)."""
    f = np.float32(v)
    if not np.isfinite(f):
        raise NativeHostUnsupported(f"a non-finite constant ({float(f)})")
    if f == 0:
        return "-0.0f" if np.signbit(f) else "0.0f"
    s = f"{float(f):.9e}f"  # 10 significant digits: closer to f than half a float32 ulp
    assert np.float32(float(s[:-1])) == f
    return s


# -- stream layouts -------------------------------------------------------------------------------

def input_order(accel: dict) -> np.ndarray | None:
    """Element of the accelerator input tensor (per image, C order) behind each field of the input
    words: integer inputs field k = word k // SIMD, field k % SIMD; bit inputs bit k = word
    k // WIDTH, bit k % WIDTH. None when that is the identity. The layouts of
    ``abcn_hw.sim.host.pack_input_words`` (the tests check both agree)."""
    shape = tuple(accel["shape"])
    simd = accel["simd"]
    idx = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    if accel["kind"] == "int":
        order = idx.transpose(1, 2, 0) if accel["conv"] else idx  # (H, W, C): pixels in (y, x) order
    elif accel["conv"]:
        n, c, h, w = shape
        order = idx.transpose(2, 3, 0, 1).reshape(h * w, n, c // simd, simd).transpose(0, 2, 1, 3)
    else:
        n, k = shape
        order = idx.reshape(n, k // simd, simd).transpose(1, 0, 2)
    order = order.reshape(-1)
    return None if np.array_equal(order, np.arange(order.size)) else order


# -- graph translation ----------------------------------------------------------------------------

@dataclass
class _Tensor:
    shape: tuple[int, ...]   # per image (no batch axis)
    ctype: str               # float, std::int32_t, std::int64_t, std::uint8_t
    planes: list[str]        # C++ locals of the loop body: plane p holds flat element p * S + i

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class _Translator:
    """One host graph -> the body of one loop over the S elements of its input (every supported
    node is element-wise in the flat C-order index, so each tensor is P "planes" of S elements,
    P = 1 except after FloatBaseQuant / FloatQuantBits, which make N values of each element; a
    node's values are locals of the loop body, one statement per node and plane)."""

    def __init__(self, model: bytes, what: str, prefix: str, input_expr: str, input_ctype: str,
                 input_shape: tuple[int, ...]):
        self.m = onnx.load_from_string(model)
        self.what = what
        self.prefix = prefix
        g = self.m.graph
        self.consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        ins = [i for i in g.input if i.name not in self.consts]
        if len(ins) != 1 or len(g.output) != 1:
            raise NativeHostUnsupported(f"{what}: {len(ins)} inputs, {len(g.output)} outputs")
        in_type = _DTYPES.get(ins[0].type.tensor_type.elem_type)
        if in_type != input_ctype:
            raise NativeHostUnsupported(f"{what}: input type {in_type} (expected {input_ctype})")
        self.S = int(np.prod(input_shape, dtype=np.int64))
        self.body: list[str] = []
        self.globals: list[tuple[str, str, np.ndarray]] = []  # (ctype, name, values) constant arrays
        self.range_checked = False  # a float -> integer Cast (its range flag is in the loop)
        self._n = 0
        self.tensors = {ins[0].name: _Tensor(tuple(input_shape), input_ctype, [self._local(input_ctype, input_expr)])}
        self.output = g.output[0].name
        for node in g.node:
            self._node(node)
        if self.output not in self.tensors:
            raise NativeHostUnsupported(f"{what}: the output is not computed from the input")

    # -- helpers ------------------------------------------------------------------------------------
    def _fail(self, node, why: str):
        raise NativeHostUnsupported(f"{self.what}: {node.op_type} node {node.name!r}: {why}")

    def _local(self, ctype: str, expr: str) -> str:
        name = f"{self.prefix}{self._n}"
        self._n += 1
        self.body.append(f"const {ctype} {name} = {expr};")
        return name

    def _const_array(self, values: np.ndarray) -> str:
        self._n += 1
        name = f"K_{self.prefix}{self._n}"
        self.globals.append(("float", name, values.reshape(-1)))
        return name

    def _in(self, node, i: int) -> _Tensor:
        name = node.input[i] if i < len(node.input) else ""
        if name not in self.tensors:
            self._fail(node, f"input {i} is not a tensor computed from the graph input")
        return self.tensors[name]

    def _const(self, node, i: int) -> np.ndarray | None:
        name = node.input[i] if i < len(node.input) else ""
        return self.consts.get(name) if name else None

    def _out(self, node, t: _Tensor) -> None:
        self.tensors[node.output[0]] = t

    def _float_in(self, node) -> _Tensor:
        x = self._in(node, 0)
        if x.ctype != "float":
            self._fail(node, f"{x.ctype} input (float32 arithmetic only)")
        return x

    def _flat(self, p: int) -> str:
        return "i" if p == 0 else f"({p * self.S}u + i)"

    def _operand(self, node, i: int, shape: tuple[int, ...], planes: int) -> list[str]:
        """Per plane, the C++ expression of input ``i`` of an element-wise node on a tensor of
        ``shape``: a tensor of that shape, or a float32 constant broadcast to it (scalar,
        contiguous block of axes, or expanded)."""
        name = node.input[i]
        if name in self.tensors:
            t = self.tensors[name]
            if t.shape != shape:
                self._fail(node, f"operand shapes {t.shape} and {shape} differ (only constants broadcast)")
            if t.ctype != "float":
                self._fail(node, f"{t.ctype} operand (float32 arithmetic only)")
            return list(t.planes)
        c = self.consts.get(name)
        if c is None:
            self._fail(node, f"input {i} is neither computed from the graph input nor a constant")
        if c.dtype != np.float32:
            self._fail(node, f"{c.dtype} constant (float32 arithmetic only)")
        full = (1,) + shape
        try:
            if np.broadcast_shapes(c.shape, full) != full:
                raise ValueError
        except ValueError:
            self._fail(node, f"constant of shape {c.shape} does not broadcast to (batch, {shape})")
        if c.size == 1:
            return [float_lit(c.reshape(-1)[0])] * planes
        cs = ((1,) * (len(full) - c.ndim) + c.shape)[1:]  # its batch axis is 1 (checked by the broadcast)
        axes = [a for a, d in enumerate(cs) if d != 1]
        size = int(np.prod(shape, dtype=np.int64))
        if axes == list(range(axes[0], axes[-1] + 1)):  # one contiguous block of axes: (f / inner) % count
            inner = int(np.prod(shape[axes[-1] + 1:], dtype=np.int64))
            count = int(np.prod([cs[a] for a in axes], dtype=np.int64))
            arr = self._const_array(np.ascontiguousarray(c, np.float32))
            out = []
            for p in range(planes):
                idx = self._flat(p) if inner == 1 else f"{self._flat(p)} / {inner}u"
                if count != size // inner:
                    idx = f"({idx}) % {count}u"
                out.append(f"{arr}[{idx}]")
            return out
        full_c = np.broadcast_to(c.reshape((1,) + cs), full).reshape(-1)
        if full_c.size > MAX_EXPANDED:
            self._fail(node, f"constant of shape {c.shape} broadcast over non-adjacent axes of a large tensor")
        arr = self._const_array(np.ascontiguousarray(full_c, np.float32))
        return [f"{arr}[{self._flat(p)}]" for p in range(planes)]

    # -- nodes --------------------------------------------------------------------------------------
    def _node(self, node) -> None:
        op = node.op_type
        if node.domain not in ("", "ai.onnx") and not (node.domain == DOMAIN and op in CUSTOM_OPS):
            self._fail(node, f"custom op of domain {node.domain!r}")
        if op not in SUPPORTED:
            self._fail(node, "no C++ translation of this op")
        if len(node.output) != 1:
            self._fail(node, f"{len(node.output)} outputs")
        getattr(self, "_op_" + (op if op in CUSTOM_OPS or op in ("Clip", "Cast") else
                                "layout" if op in LAYOUT_OPS else "unary" if op in UNARY_OPS else "binary"))(node)

    def _op_layout(self, node) -> None:
        """Identity / Reshape / Flatten / Squeeze / Unsqueeze: the per-image data stays in C order;
        only the shape changes (and the batch axis must stay the first, of the same size)."""
        x = self._in(node, 0)
        op, a = node.op_type, _attrs(node)

        def shape_for(batch: int) -> tuple[int, ...]:
            full = (batch,) + x.shape
            if op == "Identity":
                return full
            if op == "Reshape":
                s = self._const(node, 1)
                if s is None:
                    self._fail(node, "shape is not a constant")
                s = [int(v) for v in s.reshape(-1)]
                if not a.get("allowzero", 0):
                    s = [full[i] if v == 0 and i < len(full) else v for i, v in enumerate(s)]
                return np.empty(full, np.uint8).reshape(s).shape
            if op == "Flatten":
                ax = a.get("axis", 1)
                ax = ax + len(full) if ax < 0 else ax
                return (int(np.prod(full[:ax], dtype=np.int64)), int(np.prod(full[ax:], dtype=np.int64)))
            axes = a.get("axes")
            if axes is None and len(node.input) > 1 and node.input[1]:
                c = self._const(node, 1)
                if c is None:
                    self._fail(node, "axes are not a constant")
                axes = [int(v) for v in c.reshape(-1)]
            if axes is None:
                self._fail(node, "no axes")
            if op == "Squeeze":
                axes = sorted(v + len(full) if v < 0 else v for v in axes)
                return np.squeeze(np.empty(full, np.uint8), axis=tuple(axes)).shape
            rank = len(full) + len(axes)
            return np.expand_dims(np.empty(full, np.uint8), tuple(v + rank if v < 0 else v for v in axes)).shape

        try:
            s2, s3 = shape_for(2), shape_for(3)
        except (ValueError, IndexError) as e:
            self._fail(node, f"shape: {e}")
        if s2[0] != 2 or s3[0] != 3 or s2[1:] != s3[1:]:
            self._fail(node, "changes the batch axis")
        self._out(node, _Tensor(tuple(s2[1:]), x.ctype, x.planes))

    def _op_unary(self, node) -> None:
        x = self._float_in(node)
        fmt = UNARY_OPS[node.op_type]
        self._out(node, _Tensor(x.shape, "float", [self._local("float", fmt.format(v)) for v in x.planes]))

    def _op_binary(self, node) -> None:
        tensors = [self.tensors[n] for n in node.input[:2] if n in self.tensors]
        if len(node.input) != 2 or not tensors:
            self._fail(node, "needs one operand computed from the graph input")
        shape, planes = tensors[0].shape, len(tensors[0].planes)
        a, b = self._operand(node, 0, shape, planes), self._operand(node, 1, shape, planes)
        op = BINARY_OPS[node.op_type]
        self._out(node, _Tensor(shape, "float", [self._local("float", f"{u} {op} {v}") for u, v in zip(a, b)]))

    def _bound(self, node, i: int, attr: str):
        a = _attrs(node)
        if i < len(node.input) and node.input[i]:
            c = self._const(node, i)
            if c is None or c.size != 1:
                self._fail(node, f"bound {i} is not a scalar constant")
            return c.reshape(-1)[0]
        return a.get(attr)

    def _op_Clip(self, node) -> None:
        x = self._float_in(node)
        lo, hi = self._bound(node, 1, "min"), self._bound(node, 2, "max")
        planes = []
        for v in x.planes:
            # onnxruntime: max(x, lo) then min(., hi), keeping x where it equals a bound
            expr = v if lo is None else f"abcn_host::clip_lo({v}, {float_lit(lo)})"
            expr = expr if hi is None else f"abcn_host::clip_hi({expr}, {float_lit(hi)})"
            planes.append(self._local("float", expr))
        self._out(node, _Tensor(x.shape, "float", planes))

    def _op_Cast(self, node) -> None:
        x = self._in(node, 0)
        to = _DTYPES.get(_attrs(node).get("to"))
        if to is None:
            self._fail(node, f"cast to ONNX type {_attrs(node).get('to')}")
        if to == x.ctype:
            self._out(node, x)
            return
        planes = []
        for v in x.planes:
            if x.ctype == "float":
                # values outside the integer type are refused (range flag; 0 is converted instead)
                lo, hi = _INT_RANGE[to]
                hi_f = float(np.nextafter(np.float32(hi + 1), np.float32(0))) if to != "std::uint8_t" else float(hi)
                ok = self._local("bool", f"{v} >= {float_lit(lo)} && {v} <= {float_lit(hi_f)}")
                self.body.append(f"range_bad |= !{ok};")
                self.range_checked = True
                planes.append(self._local(to, f"({to})({ok} ? {v} : 0.0f)"))
            else:  # integer -> float (round to nearest even), integer -> integer (two's complement wrap)
                planes.append(self._local(to, f"({to}){v}"))
        self._out(node, _Tensor(x.shape, to, planes))

    def _op_FloatBaseQuant(self, node) -> None:
        """bit n of element e = (x[e] + c_n >= 0), output (N, *shape)."""
        x = self._float_in(node)
        shifts = [np.float32(v) for v in _attrs(node).get("shifts", [])]
        if not shifts:
            self._fail(node, "no shifts")
        planes = []
        for c in shifts:
            for v in x.planes:
                s = self._local("float", f"{v} + {float_lit(c)}")
                planes.append(self._local("std::uint8_t", f"{s} >= 0.0f"))
        self._out(node, _Tensor((len(shifts),) + x.shape, "std::uint8_t", planes))

    def _op_FloatQuantBits(self, node) -> None:
        """qonnx Quant's code q = round(clip(x / scale + zp, lo, hi)), thermometer bits q >= lo + j."""
        from ..compiler.ops.float_quant_bits import quant_range

        x = self._float_in(node)
        a = _attrs(node)
        lo, hi = quant_range(int(a.get("bitwidth", 2)), bool(a.get("signed", 1)), bool(a.get("narrow", 0)))
        levels = hi - lo
        if levels < 1 or levels > 255:
            self._fail(node, f"{levels} levels")
        scale, zp = a.get("scale", 1.0), a.get("zero_point", 0.0)
        qs = []
        for v in x.planes:
            y = self._local("float", f"{v} / {float_lit(scale)}")
            y = self._local("float", f"{y} + {float_lit(zp)}")
            y = self._local("float", f"{y} > {float_lit(hi)} ? {float_lit(hi)} : {y}")  # Where(Greater(y, hi), hi, y)
            y = self._local("float", f"{y} < {float_lit(lo)} ? {float_lit(lo)} : {y}")  # Where(Less(y, lo), lo, y)
            qs.append(self._local("float", f"std::nearbyint({y})"))
        planes = [self._local("std::uint8_t", f"{q} >= {float_lit(lo + j)}") for j in range(1, levels + 1) for q in qs]
        self._out(node, _Tensor((levels,) + x.shape, "std::uint8_t", planes))

    def emit(self, c: Cpp, store: str, check_finite: str | None = None) -> None:
        """The loop: the body, then ``store`` (format with {p} = flat index, {v} = value) for every
        plane of the output; refuse non-finite inputs (the local named ``check_finite``) and values
        outside a cast's integer type after the loop."""
        out = self.tensors[self.output]
        flags = (["nonfinite"] if check_finite else []) + (["range_bad"] if self.range_checked else [])
        if flags:
            c.line(f"unsigned {' = 0, '.join(flags)} = 0;")
        with c.block(f"for (unsigned i = 0; i < {self.S}u; i++)"):
            for ln in self.body:
                c.line(ln)
                if check_finite and ln.startswith(f"const float {check_finite} ="):
                    c.line(f"nonfinite |= !(std::fabs({check_finite}) <= FLT_MAX);  // NaN compares false")
            for p, v in enumerate(out.planes):
                c.line(store.format(p=self._flat(p), v=v) + ";")
        if check_finite:
            c.line("if (nonfinite) return abcn_host::ERR_NONFINITE;")
        if self.range_checked:
            c.line("if (range_bad) return abcn_host::ERR_RANGE;")


# -- the generated file ---------------------------------------------------------------------------

def _check_io(io: dict) -> None:
    a, o = io["accel_input"], io["accel_output"]
    if a["kind"] == "int" and not (1 <= a["in_bits"] <= 32):
        raise NativeHostUnsupported(f"{a['in_bits']}-bit integer input")
    if not (1 <= o["acc_w"] <= 64):
        raise NativeHostUnsupported(f"{o['acc_w']}-bit accumulators (64 at most)")
    if o.get("dtype", "int32") not in ("int32", "int64"):
        raise NativeHostUnsupported(f"{o.get('dtype')} accumulators")


def host_source(pre: bytes, post: bytes, io: dict, note: str = "") -> str:
    """``tb/csim_host.cpp`` of a design with the stream layouts ``io`` (host/io.json) and the host
    graphs ``pre`` / ``post``; raises :class:`NativeHostUnsupported`."""
    _check_io(io)
    a, o = io["accel_input"], io["accel_output"]
    in_shape = tuple(io["input_shape"])
    acc_ctype = "std::int64_t" if o.get("dtype", "int32") == "int64" else "std::int32_t"
    acc_size = o["mh"] * o["vectors"]
    pre_t = _Translator(pre, "host/pre.onnx", "p", "x[i]", "float", in_shape)
    acc_shape = (o["mh"],) if o["vectors"] == 1 else (o["mh"], o["vectors"])  # as host.unpack_output_chunks
    post_t = _Translator(post, "host/post.onnx", "q", f"({acc_ctype})acc[i]", acc_ctype, acc_shape)
    accel = pre_t.tensors[pre_t.output]
    want = ("std::int32_t" if a["kind"] == "int" else "std::uint8_t", tuple(a["shape"]))
    if (accel.ctype, accel.shape) != want:
        raise NativeHostUnsupported(f"host/pre.onnx: output {accel.ctype} {accel.shape}, expected {want[0]} {want[1]}")
    out = post_t.tensors[post_t.output]
    if out.ctype != "float" or out.size != int(np.prod(io["output_shape"], dtype=np.int64)):
        raise NativeHostUnsupported(f"host/post.onnx: output {out.ctype} {out.shape} (float32 "
                                    f"{tuple(io['output_shape'])} expected)")
    order = input_order(a)
    in_ch, out_ch = (a["width"] + 63) // 64, (o["width"] + 63) // 64
    in_size = pre_t.S

    c = Cpp()
    c.comment("Generated by abcn-hw compile. Do not edit: regenerate from the model instead.")
    c.comment("Host steps of the C simulation in C++ (abcn_hw/backend/host_native.py): host/pre.onnx and")
    c.comment("host/post.onnx node by node from the same constants, each as one loop over the elements of")
    c.comment("its input with one float32 statement per node (one IEEE rounding each; -ffp-contract=off),")
    c.comment("and the stream packing of host/io.json. The ONNX graphs stay the reference.")
    if note:
        c.comment(note)
    c.comment("GCC (12.2 here) fuses a vectorised multiply and add into vfmsubadd despite -ffp-contract=off,")
    c.comment("which rounds once instead of twice (found: 1-ulp differences from host/post.onnx): its SLP")
    c.comment("pattern for lanes that alternate add and subtract. So no straight-line (SLP) vectorisation in")
    c.comment("this file and post() stays scalar; pre()'s loop is vectorised (every lane runs the same node,")
    c.comment("one rounding per operation). The tests compare every output bit with the ONNX graphs.")
    c.raw("#if defined(__GNUC__) && !defined(__clang__)")
    c.raw('#pragma GCC optimize("fp-contract=off", "no-tree-slp-vectorize")')
    c.raw("#endif")
    c.raw('#include "abcn_host.hpp"')
    c.line()
    with c.block("namespace", "}  // namespace"):
        for t in (pre_t, post_t):
            for ctype, name, vals in t.globals:
                c.line(f"const {ctype} {name}[{len(vals)}] = {{")
                c._ind += 1
                c.values([float_lit(v) for v in vals], 8)
                c._ind -= 1
                c.line("};")
        if order is not None:
            c.comment("element of the accelerator input behind field (integer input) / bit (bit input) k of the words")
            c.line(f"const std::uint32_t IN_ORDER[{order.size}] = {{")
            c._ind += 1
            c.values([str(int(v)) for v in order], 16)
            c._ind -= 1
            c.line("};")
        c.line()
        with c.block("struct Design", "};"):
            c.line(f"static const unsigned IN_FLOATS = {in_size}u, OUT_FLOATS = {out.size}u, ACC = {acc_size}u;")
            c.line(f"static const unsigned IN_WORDS = {a['words']}u, IN_CH = {in_ch}u, OUT_WORDS = {o['words']}u, "
                   f"OUT_CH = {out_ch}u, STAGES = {len(io['stages'])}u;")
            with c.block("struct Scratch", "};"):
                c.line(f"{accel.ctype} accel[{accel.size}];  // the accelerator input tensor of one image")
            c.comment("one image: float input -> packed input words; 0 or an error code")
            with c.block("static int pre(const float *x, std::uint64_t *words, Scratch &s)"):
                pre_t.emit(c, "s.accel[{p}] = {v}", check_finite="p0")
                ordr = "IN_ORDER" if order is not None else "nullptr"
                ident = "true" if order is None else "false"
                if a["kind"] == "int":
                    c.line(f"return abcn_host::pack_int<{a['words']}u, {a['simd']}u, {a['in_bits']}u, {in_ch}u, "
                           f"{ident}>(s.accel, {ordr}, words, {int_lit(a['lo'])}, {int_lit(a['hi'])});")
                else:
                    c.line(f"abcn_host::pack_bits<{a['words']}u, {a['width']}u, {in_ch}u, {ident}>(s.accel, {ordr}, "
                           "words);")
                    c.line("return 0;")
            c.raw("#if defined(__GNUC__) && !defined(__clang__)")
            c.raw("#pragma GCC push_options")
            c.raw('#pragma GCC optimize("no-tree-vectorize")')
            c.raw("#endif")
            c.comment("one image: output words -> accumulators (int64, channel-major) and the float32 model output")
            c.comment("(scalar: see the note at the top)")
            with c.block("static int post(const std::uint64_t *words, float *y, std::int64_t *acc, Scratch &)"):
                c.line(f"abcn_host::unpack_acc<{o['vectors']}u, {o['mh'] // o['pe']}u, {o['pe']}u, {o['acc_w']}u, "
                       f"{out_ch}u>(words, acc);")
                post_t.emit(c, "y[{p}] = {v}")
                c.line("return 0;")
            c.raw("#if defined(__GNUC__) && !defined(__clang__)")
            c.raw("#pragma GCC pop_options")
            c.raw("#endif")
    c.line()
    c.line("ABCN_HOST_ENTRY_POINTS(Design)")
    return c.text()


def generate(pre: bytes, post: bytes, io: dict) -> tuple[str | None, dict]:
    """(``tb/csim_host.cpp`` or None, io.json's ``host_native`` record {"supported", "reason"})."""
    try:
        src = host_source(pre, post, io)
    except NativeHostUnsupported as e:
        return None, {"supported": False, "reason": e.reason}
    return src, {"supported": True, "reason": ""}
