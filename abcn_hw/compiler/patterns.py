"""Recognition of quantized operands in a QONNX graph (analysis only, no rewriting).

Weights:      a sum (Add tree) of ``BipolarQuant(W'_m, alpha_m)`` with constant W'_m and alpha_m,
              optionally transposed (``Transpose`` before a MatMul).
Activations:  a sum of ``BipolarQuant(z + c_n, beta_n)`` sharing one float source z (ABC bases;
              a single base may have c = 0, e.g. BNN-PYNQ ``BipolarQuant(BN(y), 1)``), optionally
              followed by max pooling, a flatten and an explicit pad with the value -sum(beta) (bit 0)
              or 0 (zero padding, corrected in the XNOR conv);
              or the integer input ``Quant(x, 2**e, zp=0, bits<=16, ROUND)`` of the first layer.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from onnx import NodeProto
from qonnx.core.modelwrapper import ModelWrapper

from .graphutil import attr, const, scalar

QONNX_DOMAINS = ("qonnx.custom_op.general", "onnx.brevitas", "finn.custom_op.general")


class PatternError(Exception):
    """A node that cannot be lowered, with the node and the reason."""

    def __init__(self, node: NodeProto | None, reason: str):
        self.node = node
        self.reason = reason
        super().__init__(reason)


def is_op(node: NodeProto | None, op_type: str) -> bool:
    return node is not None and node.op_type == op_type


def _bq_scale(model: ModelWrapper, bq: NodeProto) -> np.ndarray:
    s = const(model, bq.input[1])
    if s is None:
        raise PatternError(bq, "BipolarQuant scale is not a constant")
    return np.asarray(s, np.float32)


def add_leaves(model: ModelWrapper, tensor: str) -> tuple[list[str], list[NodeProto]]:
    """Leaves of an Add tree over run-time tensors, in left-to-right order, and the Add nodes."""
    prod = model.find_producer(tensor)
    if is_op(prod, "Add") and const(model, prod.input[0]) is None and const(model, prod.input[1]) is None:
        left, ln = add_leaves(model, prod.input[0])
        right, rn = add_leaves(model, prod.input[1])
        return left + right, ln + rn + [prod]
    return [tensor], []


# -- weights --------------------------------------------------------------------------------------

@dataclass
class WeightOperand:
    bits: np.ndarray  # (M, O, K) uint8, 1 = +1; K in (c, kh, kw) order for convs
    alpha: np.ndarray  # (M, O) float32
    nodes: list[NodeProto]
    kernel: tuple[int, ...] = ()  # (kh, kw) for convs


def _scale_like(q: NodeProto, scale, w: np.ndarray) -> np.ndarray:
    """The quantizer's scale broadcast to the weights' shape (a PatternError if it does not broadcast)."""
    try:
        return np.broadcast_to(scale, w.shape)
    except ValueError:
        raise PatternError(q, f"scale of shape {np.shape(scale)} does not broadcast to the weights' shape "
                              f"{w.shape}") from None


def weight_transpose(model: ModelWrapper, tensor: str, nodes: list[NodeProto]) -> tuple[str, list | None]:
    """An optional Transpose of the weights (a matmul's): (tensor below it, its perm or None)."""
    perm = None
    prod = model.find_producer(tensor)
    if is_op(prod, "Transpose"):
        perm = list(attr(prod, "perm", []))
        nodes.append(prod)
        tensor = prod.input[0]
    if const(model, tensor) is not None:
        raise PatternError(None, "float weights (not BipolarQuant bases)")
    return tensor, perm


def weight_operand(model: ModelWrapper, tensor: str, conv: bool) -> WeightOperand:
    nodes: list[NodeProto] = []
    tensor, perm = weight_transpose(model, tensor, nodes)
    leaves, adds = add_leaves(model, tensor)
    nodes += adds
    bits, alphas = [], []
    kernel: tuple[int, ...] = ()
    for leaf in leaves:
        bq = model.find_producer(leaf)
        if is_op(bq, "Quant"):
            for b, a in _kbit_weight_bases(model, bq, perm, conv):
                bits.append(b[0])
                alphas.append(a)
                kernel = b[1]
            nodes.append(bq)
            continue
        w = bipolar_weight(model, bq)
        b2, a, kernel = weight_base(bq, w, _scale_like(bq, _bq_scale(model, bq), w), perm, conv)
        nodes.append(bq)
        bits.append(b2)
        alphas.append(a)
    return WeightOperand(np.stack(bits), np.stack(alphas).astype(np.float32), nodes, kernel)


def bipolar_weight(model: ModelWrapper, bq: NodeProto | None) -> np.ndarray:
    """The constant float weights of a weight base ``BipolarQuant(W, alpha)``."""
    if not is_op(bq, "BipolarQuant"):
        kind = f"{bq.op_type} '{bq.name}'" if bq is not None else "the graph input"
        raise PatternError(None, f"weights are not binary: produced by {kind}, expected BipolarQuant bases")
    w = const(model, bq.input[0])
    if w is None:
        raise PatternError(bq, "BipolarQuant weight input is not a constant")
    return np.asarray(w, np.float32)


def weight_base(bq: NodeProto, w: np.ndarray, a: np.ndarray, perm, conv: bool) -> tuple[np.ndarray, np.ndarray, tuple]:
    """One binary weight base: the (O, K) bit matrix of the float weights ``w`` (bit 1 = w >= 0),
    its per-output-channel scale (from the elementwise scale ``a``) and the conv kernel shape."""
    b = (w >= 0).astype(np.uint8)
    if perm is not None:
        a, b = np.transpose(a, perm), np.transpose(b, perm)
    kernel: tuple = ()
    if conv:
        if b.ndim != 4:
            raise PatternError(bq, f"conv weights must be 4-D, got shape {b.shape}")
        o = b.shape[0]
        kernel = tuple(int(d) for d in b.shape[2:])
        a2, b2 = a.reshape(o, -1), b.reshape(o, -1)
    else:
        if b.ndim != 2:
            raise PatternError(bq, f"matmul weights must be 2-D, got shape {b.shape}")
        a2, b2 = a.T, b.T  # (O, K)
    if not np.all(a2 == a2[:, :1]):
        raise PatternError(bq, "weight scale varies inside an output channel (only per-channel or per-tensor scales)")
    return np.ascontiguousarray(b2), a2[:, 0], kernel


def _kbit_weight_bases(model: ModelWrapper, q: NodeProto, perm, conv: bool):
    """k-bit weights Quant(W) -> thermometer bases: q_w = sum_j h_j / 2 (symmetric range), each
    base of scale s / 2. Yields ((bits (O, K), kernel), alpha (O,))."""
    from .ops.float_quant_bits import quant_range

    w = const(model, q.input[0])
    s = const(model, q.input[1])
    zp = scalar(const(model, q.input[2]))
    bw = scalar(const(model, q.input[3]))
    if w is None or s is None or zp is None or bw is None:
        raise PatternError(q, "k-bit weights: weight, scale, zero point and bit width must be constants")
    signed, narrow = bool(attr(q, "signed", 1)), bool(attr(q, "narrow", 0))
    lo, hi = quant_range(int(bw), signed, narrow)
    if zp != 0.0 or lo + hi != 0:
        raise PatternError(q, f"k-bit weight range [{lo}, {hi}] is not symmetric (use narrow range, zero point 0)")
    w = np.asarray(w, np.float32)
    s = _scale_like(q, np.asarray(s, np.float32), w)
    codes = _codes(w, s, lo, hi)
    half = s.astype(np.float32) / np.float32(2)
    for j in range(1, hi - lo + 1):
        b = (codes >= lo + j).astype(np.uint8)
        a = half
        if perm is not None:
            b, a = np.transpose(b, perm), np.transpose(a, perm)
        if conv:
            o = b.shape[0]
            kernel = tuple(int(d) for d in b.shape[2:])
            b2, a2 = b.reshape(o, -1), a.reshape(o, -1)
        else:
            kernel = ()
            b2, a2 = b.T, a.T
        if not np.all(a2 == a2[:, :1]):
            raise PatternError(q, "weight scale varies inside an output channel")
        yield (b2, kernel), a2[:, 0]


def _codes(w: np.ndarray, s: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """qonnx Quant's integer code for weights with a broadcast scale (x / s, clamp, round)."""
    y = w / s
    y = np.where(y > hi, np.float32(hi), y)
    y = np.where(y < lo, np.float32(lo), y)
    return np.round(y)


# -- activations ----------------------------------------------------------------------------------

@dataclass
class BitTransform:
    kind: str  # "maxpool" | "flatten" | "pad"
    node: NodeProto
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)


@dataclass
class ActOperand:
    kind: str  # "bits" | "integer"
    source: str  # float tensor z (bits) or the float tensor fed to Quant (integer)
    shifts: list[float] = field(default_factory=list)  # c_n (bits)
    beta: np.ndarray | None = None  # (N,) float32 (bits)
    transforms: list[BitTransform] = field(default_factory=list)  # applied in order to the bits
    nodes: list[NodeProto] = field(default_factory=list)
    # integer input
    scale: float = 1.0
    signed: bool = False
    bitwidth: int = 8
    narrow: bool = False
    spec: object = None  # BitSpec for binary operands
    zero_pad: bool = False  # an explicit Pad with the value 0 (PyTorch zero padding), not -sum(beta)

    @property
    def pads(self) -> tuple[int, int, int, int]:
        return self.transforms[-1].pads if self.transforms and self.transforms[-1].kind == "pad" else (0, 0, 0, 0)


def _is_flatten(model: ModelWrapper, node: NodeProto) -> bool:
    if node.op_type == "Flatten":
        return attr(node, "axis", 1) == 1
    shape = const(model, node.input[1])
    out = model.get_tensor_shape(node.output[0])
    return shape is not None and out is not None and len(out) == 2


def _power_of_two(x: float) -> bool:
    if not np.isfinite(x) or x <= 0:
        return False
    m, _ = np.frexp(np.float32(x))
    return float(m) == 0.5


def act_operand(model: ModelWrapper, tensor: str) -> ActOperand:
    tensor, transforms, nodes, pad_value = bit_transforms(model, tensor)
    return _act_operand_below(model, tensor, transforms, nodes, pad_value)


def bit_transforms(model: ModelWrapper, tensor: str) -> tuple[str, list[BitTransform], list[NodeProto], object]:
    """Walk back from a conv / matmul input over MaxPool, Flatten/Reshape and one explicit Pad
    (right before the layer): (tensor below them, transforms in application order, their nodes,
    pad value or None)."""
    transforms: list[BitTransform] = []
    nodes: list[NodeProto] = []
    pad_value = None
    while True:
        prod = model.find_producer(tensor)
        if prod is None:
            raise PatternError(None, "float operand: input is the float graph input (not quantized)")
        if prod.op_type in ("Flatten", "Reshape") and _is_flatten(model, prod):
            transforms.append(BitTransform("flatten", prod))
        elif prod.op_type == "MaxPool":
            if attr(prod, "ceil_mode", 0) or any(d != 1 for d in attr(prod, "dilations", [1, 1])) \
                    or len(attr(prod, "kernel_shape", [])) != 2:
                raise PatternError(prod, "only 2-D MaxPool without ceil_mode or dilation can pool activation bits")
            transforms.append(BitTransform("maxpool", prod))
        elif prod.op_type == "Pad" and not transforms:
            mode = attr(prod, "mode", b"constant")
            pads = const(model, prod.input[1])
            val = const(model, prod.input[2]) if len(prod.input) > 2 and prod.input[2] else np.zeros(1, np.float32)
            if (mode not in (b"constant", "constant") or pads is None or val is None
                    or (len(prod.input) > 3 and prod.input[3])):
                raise PatternError(prod, "only constant-mode Pad with constant pads and value is supported")
            pads = [int(p) for p in pads]
            if len(pads) != 8 or pads[0] or pads[1] or pads[4] or pads[5]:
                raise PatternError(prod, "Pad must pad only the two spatial axes of an NCHW tensor")
            pad_value = np.float32(np.asarray(val).reshape(-1)[0])
            transforms.append(BitTransform("pad", prod, (pads[2], pads[3], pads[6], pads[7])))
        else:
            break
        nodes.append(prod)
        tensor = prod.input[0]
    transforms.reverse()
    if any(t.kind == "pad" for t in transforms[:-1]):
        raise PatternError(transforms[0].node, "Pad must come right before the convolution")
    return tensor, transforms, nodes, pad_value


def _act_operand_below(model: ModelWrapper, tensor: str, transforms, nodes, pad_value) -> ActOperand:
    prod = model.find_producer(tensor)
    if is_op(prod, "Quant"):
        if depends_on_layer(model, prod.input[0]):
            return _kbit_operand(model, prod, transforms, nodes, pad_value)
        return _integer_operand(model, prod, transforms, nodes)
    leaves, adds = add_leaves(model, tensor)
    nodes += adds
    bqs = [model.find_producer(t) for t in leaves]
    for t, bq in zip(leaves, bqs):
        if not is_op(bq, "BipolarQuant"):
            kind = f"{bq.op_type} '{bq.name}'" if bq is not None else "the graph input"
            raise PatternError(None, f"float operand: input produced by {kind}, not by BipolarQuant/Quant")
        if const(model, bq.input[0]) is not None:
            raise PatternError(bq, "activation BipolarQuant has a constant input")
    betas = []
    for bq in bqs:
        s = _bq_scale(model, bq)
        if s.size != 1:
            raise PatternError(bq, "activation BipolarQuant scale must be a scalar")
        betas.append(np.float32(s.reshape(-1)[0]))
    nodes += bqs
    # shared source z: BipolarQuant(Add(z, c_n)) or BipolarQuant(Sub(z, c_n)) ; one base may use c = 0
    srcs, shifts = [], []
    for bq in bqs:
        p = model.find_producer(bq.input[0])
        c = None
        if p is not None and p.op_type in ("Add", "Sub"):
            c1 = scalar(const(model, p.input[1]))
            c0 = scalar(const(model, p.input[0])) if p.op_type == "Add" else None
            if c1 is not None and const(model, p.input[0]) is None:
                c, z = (c1 if p.op_type == "Add" else -np.float32(c1)), p.input[0]
            elif c0 is not None and const(model, p.input[1]) is None:
                c, z = c0, p.input[1]
        if c is None:
            srcs.append(bq.input[0])
            shifts.append(0.0)
        else:
            srcs.append(z)
            shifts.append(float(np.float32(c)))
            nodes.append(p)
    if len(set(srcs)) != 1:
        if len(bqs) == 1:
            srcs, shifts = [bqs[0].input[0]], [0.0]
        else:
            raise PatternError(bqs[0], "activation bases do not share one input (expected BipolarQuant(x + c_n))")
    beta = np.array(betas, np.float32)
    if pad_value is not None and pad_value != 0:
        total = np.float32(beta[0])
        for bt in beta[1:]:
            total = np.float32(total + bt)
        if pad_value != -total:
            raise PatternError(transforms[-1].node, f"pad value {pad_value} is neither 0 (zero padding) nor the "
                                                    f"bit value -sum(beta) = {-total}")
    from .bitspec import ShiftBits

    return ActOperand("bits", srcs[0], shifts, beta, transforms, nodes, spec=ShiftBits(tuple(shifts)),
                      zero_pad=pad_value == 0)


def depends_on_layer(model: ModelWrapper, tensor: str) -> bool:
    """Whether a Conv/MatMul/Gemm lies upstream of ``tensor`` (else it is input preprocessing)."""
    todo, seen = [tensor], set()
    while todo:
        t = todo.pop()
        p = model.find_producer(t)
        if p is None or p.name in seen:
            continue
        seen.add(p.name)
        if p.op_type in ("Conv", "MatMul", "Gemm") or p.domain == "abcn_hw.compiler.ops":
            return True
        todo.extend(i for i in p.input if i and model.get_initializer(i) is None)
    return False


def _quant_consts(model: ModelWrapper, q: NodeProto) -> tuple:
    """A Quant node's scale, zero point and bit width (scalar constants or None) and rounding mode."""
    scale = scalar(const(model, q.input[1]))
    zp = scalar(const(model, q.input[2]))
    bw = scalar(const(model, q.input[3]))
    rounding = attr(q, "rounding_mode", b"ROUND")
    return scale, zp, bw, rounding.decode() if isinstance(rounding, bytes) else rounding


def _quant_params(model: ModelWrapper, q: NodeProto) -> tuple[float, float, int, bool, bool]:
    scale, zp, bw, rounding = _quant_consts(model, q)
    reasons = []
    if scale is None or zp is None or bw is None:
        raise PatternError(q, "Quant scale, zero point and bit width must be scalar constants")
    if bw != int(bw) or not 2 <= bw <= 16:
        reasons.append(f"Quant bit width must be an integer 2..16, got {bw}")
    if rounding.upper() not in ("ROUND", "HALF_EVEN"):
        reasons.append(f"Quant rounding {rounding} (only ROUND)")
    if reasons:
        raise PatternError(q, "; ".join(reasons))
    return float(scale), float(zp), int(bw), bool(attr(q, "signed", 1)), bool(attr(q, "narrow", 0))


def _kbit_operand(model: ModelWrapper, q: NodeProto, transforms, nodes, pad_value) -> ActOperand:
    """A hidden k-bit activation: its L-1 thermometer bits, each a base of scale s/2."""
    from .bitspec import QuantBits

    scale, zp, bw, signed, narrow = _quant_params(model, q)
    spec = QuantBits(scale, zp, bw, signed, narrow)
    lo, hi = spec.range
    if zp != 0.0 or lo + hi != 0:
        raise PatternError(q, f"k-bit activation range [{lo}, {hi}] with zero point {zp} is not symmetric "
                              "(thermometer bases need qmin + qmax = 0 and zero point 0: use narrow range)")
    if pad_value is not None and pad_value != 0:
        raise PatternError(transforms[-1].node, f"padding a k-bit activation with {pad_value} (only zero padding)")
    n = hi - lo
    beta = np.full(n, np.float32(scale) / np.float32(2), np.float32)
    return ActOperand("bits", q.input[0], [], beta, transforms, nodes + [q], spec=spec, zero_pad=pad_value == 0)


def _integer_operand(model: ModelWrapper, q: NodeProto, transforms, nodes) -> ActOperand:
    if transforms:
        raise PatternError(transforms[0].node, f"{transforms[0].kind} of the integer-coded input between its quantizer "
                                              "and the first layer (apply it to the float image before the input "
                                              "quantizer)")
    scale, zp, bw, rounding = _quant_consts(model, q)
    reasons = []
    if scale is None or not _power_of_two(scale):
        reasons.append(f"input quantizer scale must be a power of two, got {scale}")
    if zp != 0.0:
        reasons.append(f"input quantizer zero point must be 0, got {zp}")
    if bw is None or bw != int(bw) or not 2 <= bw <= 16:
        reasons.append(f"input quantizer bit width must be an integer 2..16, got {bw}")
    if rounding.upper() not in ("ROUND", "HALF_EVEN"):
        reasons.append(f"input quantizer rounding {rounding} (only ROUND)")
    if reasons:
        raise PatternError(q, "; ".join(reasons))
    return ActOperand("integer", q.input[0], nodes=nodes + [q], scale=float(scale), signed=bool(attr(q, "signed", 1)),
                      bitwidth=int(bw), narrow=bool(attr(q, "narrow", 0)))


def integer_range(op: ActOperand) -> tuple[int, int]:
    if op.signed:
        return -(2 ** (op.bitwidth - 1)) + int(op.narrow), 2 ** (op.bitwidth - 1) - 1
    return 0, 2 ** op.bitwidth - 1 - int(op.narrow)


# -- fixed-point grid (dyadic decomposition: abcn_hw.exactness) -----------------------------------

def round_to_grid(values: np.ndarray, bits: int, axis: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Round onto k * 2**e with |k| < 2**bits, one e per group (documented fixed-point grid)."""
    v = np.asarray(values, np.float64)
    mag = np.abs(v).max() if axis is None else np.abs(v).max(axis=axis)
    mag = np.maximum(mag, np.finfo(np.float32).tiny)
    e = (np.floor(np.log2(mag)).astype(np.int64) - (bits - 1))
    eb = e if axis is None else np.expand_dims(e, axis)
    k = np.round(v / np.exp2(eb.astype(np.float64))).astype(np.int64)
    return k, np.asarray(e, np.int64)
