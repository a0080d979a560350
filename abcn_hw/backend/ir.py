"""The backend's layer IR: one dataclass per layer of the lowered graph, all shapes static (per image).

The frontend (:mod:`.frontend`) builds a :class:`Network` from a lowered graph: its layers in a
topological order, each naming the lowered tensors it reads (``inputs``) and writes
(``out_tensor``), so the layers form a dataflow graph. Folding (:mod:`.folding`) assigns PE/SIMD
per :class:`MatrixLayer`; the passes (:mod:`.passes`) turn the layers into the kernel graph
(:mod:`.graph`, kernel classes in :mod:`.kernels`) the emitter (:mod:`.emit`) wires. Only these
dataclasses cross the boundaries, so changes in the compiler's graph shapes stay in the frontend
and changes of a kernel's template signature stay in its kernel class.

Conventions (as the kernel library, hls/README.md):
* activation bit 1 = +1, bit 0 = -1; a bit tensor per image is (N, C, H, W) or (N, C);
* stream words are base-major: bit ``n*W + j`` = base n, element j of the word;
* pixels stream in (y, x) order, channels in folds of W inside a pixel (c = cf*W + j);
* weights are kept unpacked here as (M, O, K) uint8 bits in the *kernel's* K order:
  (ky, kx, c) for convolutions, the stream order (y, x, c) for a fully connected layer that
  follows a convolution, the lowered K order otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class InputSpec:
    """The accelerator's input tensor (what the host computes from the float input)."""

    tensor: str               # lowered tensor name (never printed into generated code)
    kind: str                 # "bits" (N activation bases) or "int" (integer pixels)
    shape: tuple[int, ...]    # per image: (N, C, H, W) / (N, K) for bits; (C, H, W) / (K,) for int
    in_bits: int = 1          # int: bits per pixel
    signed: bool = False      # int: two's complement pixels
    lo: int = 0               # int: value range the host checks
    hi: int = 1

    @property
    def spatial(self) -> bool:
        return len(self.shape) == (4 if self.kind == "bits" else 3)


@dataclass
class ConvGeom:
    """Sliding window: KH x KW kernel, strides SH/SW, paddings top/left/bottom/right (floor mode)."""

    ifm_h: int
    ifm_w: int
    kh: int
    kw: int
    sh: int
    sw: int
    pt: int = 0
    pl: int = 0
    pb: int = 0
    pr: int = 0

    @property
    def ofm_h(self) -> int:
        return (self.ifm_h + self.pt + self.pb - self.kh) // self.sh + 1

    @property
    def ofm_w(self) -> int:
        return (self.ifm_w + self.pl + self.pr - self.kw) // self.sw + 1

    @property
    def square_pool(self) -> bool:
        """Non-overlapping square window without padding (the cheap BitMaxPool)."""
        return self.kh == self.kw == self.sh == self.sw and not (self.pt or self.pl or self.pb or self.pr)


@dataclass
class PadCorrection:
    """Zero padding of a binary convolution (abcn::ZeroPadCorrection): the window generator pads
    with bit 0 (-1), and ``dot[m, n, o](y, x) += table[m, o, row[y], col[x]]`` restores the value 0
    of the padding (the sum of the weights on the padded taps, the same for every base n)."""

    row: np.ndarray           # (OFM_H,) row class of each output row
    col: np.ndarray           # (OFM_W,) column class of each output column
    table: np.ndarray         # (M, O, RC, CC) int64

    @property
    def rc(self) -> int:
        return int(self.table.shape[2])

    @property
    def cc(self) -> int:
        return int(self.table.shape[3])

    @property
    def cw(self) -> int:
        """Signed width of the corrections (at least 2)."""
        mx = int(np.abs(self.table).max()) if self.table.size else 0
        return max(2, mx.bit_length() + 1)

    @property
    def rom_bits(self) -> int:
        return int(self.table.size) * self.cw


@dataclass
class MatrixLayer:
    """A matrix-vector unit (+ its activation): XnorPopcount{Conv,MatMul} or IntegerInput{Conv,MatMul}
    followed by MultiBaseThreshold (``nout`` output bases) or MultiBaseAccumulate (final layer)."""

    index: int
    ident: str                # derived, safe C++ identifier (names.layer_id)
    node: str                 # original node name (JSON only)
    op: str                   # lowered op type of the matrix node
    kind: str                 # "xnor" or "int"
    c_in: int                 # input channels (conv) / input length (fc) per base
    mw: int                   # K: input bits per base of one vector
    mh: int                   # O: output channels
    m: int                    # weight bases
    n: int                    # input activation bases (1 for int)
    weights: np.ndarray       # (M, O, K) uint8 bits in kernel K order
    a: np.ndarray | None      # (M, O) int64 weight-scale integers (None: C does not factor)
    b: np.ndarray | None      # (N,) int64 activation-scale integers
    geom: ConvGeom | None     # None: fully connected
    final: bool               # True: MultiBaseAccumulate (logits), else threshold
    coef: np.ndarray | None = None   # (M, N, O) int64: C[m, n, o] (= a[m, o] * b[n] when factored)
    thr: np.ndarray | None = None    # (NOUT, O) int64, clipped to +-(acc_max + 1)
    pos: np.ndarray | None = None    # (O,) uint8, 1: acc >= thr, 0: acc <= thr
    out_tensor: str = ""      # lowered tensor of the activation output (bits or accumulator)
    in_bits: int = 8          # int layers: pixel bits
    in_signed: bool = False
    a_w: int = 2
    b_w: int = 2
    acc_w: int = 2
    dot_max: int = 0
    simd: int = 1
    pe: int = 1
    pad_corr: PadCorrection | None = None   # zero-padded binary conv (XnorConvMVU)
    inputs: list[str] = field(default_factory=list)  # lowered tensors it reads (the dataflow graph's edges)
    acc_max: int = 0          # max |accumulator| over all inputs: dot_max * max_o sum |C[m, n, o]|

    @property
    def nout(self) -> int:
        return 0 if self.final else int(self.thr.shape[0])

    @property
    def vectors(self) -> int:
        """Input vectors (output pixels) per image."""
        return self.geom.ofm_h * self.geom.ofm_w if self.geom else 1

    @property
    def out_shape(self) -> tuple[int, ...]:
        """Per-image shape of the activation output as in the lowered graph."""
        sp = (self.geom.ofm_h, self.geom.ofm_w) if self.geom else ()
        return ((self.mh,) if self.final else (self.nout, self.mh)) + sp

    @property
    def simd_len(self) -> int:
        """The length SIMD must divide: input channels for a convolution (one pixel is folded into
        C/SIMD words by the window generator), the whole input vector for a fully connected layer."""
        return self.c_in if self.geom else self.mw

    @property
    def weight_bits(self) -> int:
        return self.m * self.mh * self.mw


@dataclass
class PoolLayer:
    """BitMaxPool on bit feature maps (OR per base; padding bit 0 = -1, the identity of max)."""

    index: int
    ident: str
    node: str
    c: int
    n: int
    geom: ConvGeom
    out_tensor: str
    inputs: list[str] = field(default_factory=list)

    op = "BitMaxPool"

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.n, self.c, self.geom.ofm_h, self.geom.ofm_w)


@dataclass
class ResidualAddLayer:
    """ResidualAdd (residual join, or the stem's affine / a requantisation with one input) on
    integer streams: ``y[c] = rshift(sum_k s[k, c] * x_k[c] + t[c], shift)`` (ties to even; shift 0:
    none), exact; ``bound`` >= max |y| from the input bounds."""

    index: int
    ident: str
    node: str
    c: int
    spatial: tuple[int, ...]          # (H, W) or ()
    s: np.ndarray                     # (K, C) int64
    t: np.ndarray                     # (C,) int64
    bound: int
    out_tensor: str
    inputs: list[str] = field(default_factory=list)
    shift: int = 0

    op = "ResidualAdd"

    @property
    def k(self) -> int:
        return int(self.s.shape[0])

    @property
    def pixels(self) -> int:
        return int(np.prod(self.spatial, dtype=np.int64)) if self.spatial else 1

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.c,) + tuple(self.spatial)


@dataclass
class IntThresholdLayer:
    """IntegerThreshold: the ``nout`` activation bases of an integer tensor (MultiBaseThreshold's
    rule): bit j of channel c = pos[c] ? x >= thr[j, c] : x <= thr[j, c]."""

    index: int
    ident: str
    node: str
    c: int
    spatial: tuple[int, ...]
    thr: np.ndarray                   # (NOUT, C) int64, clipped to +-(input bound + 1)
    pos: np.ndarray                   # (C,) uint8
    out_tensor: str
    inputs: list[str] = field(default_factory=list)

    op = "IntegerThreshold"

    @property
    def nout(self) -> int:
        return int(self.thr.shape[0])

    @property
    def pixels(self) -> int:
        return int(np.prod(self.spatial, dtype=np.int64)) if self.spatial else 1

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.nout, self.c) + tuple(self.spatial)


@dataclass
class GlobalSumPoolLayer:
    """GlobalSumPool: per channel the sum over the H*W pixels of an integer feature map."""

    index: int
    ident: str
    node: str
    c: int
    h: int
    w: int
    bound: int                        # >= max |sum|
    out_tensor: str
    inputs: list[str] = field(default_factory=list)

    op = "GlobalSumPool"

    @property
    def pixels(self) -> int:
        return self.h * self.w

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.c,)


@dataclass
class IntMaxPoolLayer:
    """IntegerMaxPool: max-pool of an integer feature map (padding never wins)."""

    index: int
    ident: str
    node: str
    c: int
    geom: ConvGeom
    out_tensor: str
    inputs: list[str] = field(default_factory=list)

    op = "IntegerMaxPool"

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.c, self.geom.ofm_h, self.geom.ofm_w)


Layer = MatrixLayer | PoolLayer | ResidualAddLayer | IntThresholdLayer | GlobalSumPoolLayer | IntMaxPoolLayer


@dataclass
class Network:
    """Accelerated part of a lowered graph plus the host-side pre/post-processing graphs."""

    name: str                       # sanitised
    input: InputSpec
    layers: list[Layer]
    output_tensor: str              # accumulator tensor (int32 (B, O)) the post graph starts from
    pre_model: bytes                # ONNX: graph input -> accelerator input tensor (host side)
    post_model: bytes               # ONNX: accumulator -> graph output (host side)
    graph_input: str
    graph_output: str
    input_shape: tuple[int, ...]    # per-image float input shape of the exported model
    output_shape: tuple[int, ...]   # per-image shape of the model output
    source: str = ""                # basename of the model file (JSON only)
    acc_dtype: str = "int32"        # dtype of the final accumulator tensor in the lowered graph
    notes: list[str] = field(default_factory=list)

    @property
    def matrix_layers(self) -> list[MatrixLayer]:
        return [l for l in self.layers if isinstance(l, MatrixLayer)]

    @property
    def final(self) -> MatrixLayer:
        return self.matrix_layers[-1]
