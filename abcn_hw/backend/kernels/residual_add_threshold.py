"""Fused join and threshold (abcn::ResidualAddThreshold / ResidualAddThresholdSum, residual.hpp):
the residual join ``y = s0*x0 [+ s1*x1] + t`` and the next layer's integer threshold unit (the NOUT
activation bases of y) in one pipelined loop, made by :func:`..passes.fuse_add_threshold` from a
ResidualAdd whose sum an IntThreshold reads.

Ports: inputs as the join's (one or two integer streams of one PE); output 0 the threshold's bit
words (NOUT*PE bits, base-major); with ``emit_sum`` (the sum also read elsewhere: the next block's
identity shortcut) output 1 the sum, PE fields of OUT_W bits as ResidualAdd writes them. The
thresholds compare the exact y (Y_W = residual_sum_bits), which equals the OUT_W-bit sum the
unfused threshold read (OUT_W holds the lowering's bound), so the bits are the same.

Cycles: PIXELS*C/PE per image, as each of the two kernels it replaces (one loop, one counter).
Resources (estimate, nothing synthesised): per PE lane the join's multiplier-adders
(S_W + IN_W bits per input), NOUT comparators of Y_W bits with their thresholds in LUTRAM, and the
OUT_W-bit sum register only when the sum is emitted. Against ResidualAdd + IntThreshold it saves
the OUT_W-bit sum register (bits-only variant), the stream between them and, where the sum is also
read elsewhere, the fork (DuplicateStreams) that split it; its comparators are Y_W instead of OUT_W
bits wide."""
from __future__ import annotations

from ..cpp import Cpp, targs
from .base import StreamFormat
from .int_stream import IntStreamKernel
from .int_threshold import threshold_lane_bits, threshold_params, threshold_pragmas
from .residual_add import ResidualAdd, join_params, join_pragmas


def residual_sum_bits(in0_w: int, in1_w: int, s_w: int, t_w: int) -> int:
    """Y_W of the library's residual_join (abcn::residual_sum_bits): the exact join's width."""
    return max(s_w + in0_w, s_w + in1_w, t_w) + 2


class ResidualAddThreshold(ResidualAdd):
    """The join's widths, words, cycles and token program are ResidualAdd's (the same loop)."""

    kind = "raddthr"

    def __init__(self, add_layer, thr_layer, emit_sum: bool) -> None:
        IntStreamKernel.__init__(self, f"{add_layer.ident}_addthr", add_layer)
        if (thr_layer.c, thr_layer.pixels) != (add_layer.c, add_layer.pixels):
            raise ValueError(f"{thr_layer.ident} does not threshold the sum of {add_layer.ident}")
        self.thr_layer = thr_layer
        self.emit_sum = emit_sum
        self.n_inputs = add_layer.k
        self.n_outputs = 2 if emit_sum else 1

    @property
    def layers(self) -> tuple:
        return (self.layer, self.thr_layer)

    # -- streams ------------------------------------------------------------------------------------
    @property
    def y_w(self) -> int:
        in1_w = self.in_format(1).n if self.n_inputs == 2 else 1
        return residual_sum_bits(self.in_format(0).n, in1_w, self.s_w, self.t_w)

    def out_format(self, port: int = 0) -> StreamFormat:
        if port == 0:
            return StreamFormat("bits", self.thr_layer.nout, self.pe)
        return StreamFormat("int", self.out_w, self.pe)

    def resources(self) -> dict:
        lane = (self.join_lane_bits() + threshold_lane_bits(self.thr_layer, self.y_w, self.nf)
                + (self.out_w if self.emit_sum else 0))
        return {"lut": int(1.1 * self.pe * lane), "bram18": 0}

    def tap(self) -> dict | None:
        thr = self.thr_layer
        return dict(tensor=thr.out_tensor, kind="bits", shape=list(thr.out_shape), w=self.pe, layer=thr.ident)

    def taps(self) -> list[tuple[int, dict]]:
        """The bits (port 0) and, when emitted, the sum (port 1, the join's lowered tensor)."""
        out = [(0, self.tap())]
        if self.emit_sum:
            lay = self.layer
            out.append((1, dict(tensor=lay.out_tensor, kind="acc", shape=list(lay.out_shape), w=self.pe,
                                acc_w=self.out_w, layer=lay.ident)))
        return out

    # -- code ------------------------------------------------------------------------------------------
    def param_files(self) -> dict[str, str]:
        def body(c: Cpp) -> None:
            join_params(c, self.layer, self.pe)
            threshold_params(c, self.thr_layer, self.pe)

        return {f"src/params_{self.layer.ident}.hpp": self.params_header(body)}

    def top_pragmas(self, c: Cpp) -> None:
        join_pragmas(c, self.layer)
        threshold_pragmas(c, self.thr_layer)

    def call(self, c: Cpp, ins: list[str], outs: list[str], counter: str) -> None:
        lay, tid = self.layer, self.thr_layer.ident
        widths = [self.in_format(p).n for p in range(self.n_inputs)]
        fn = "ResidualAddThresholdSum" if self.emit_sum else "ResidualAddThreshold"
        ta = targs(lay.c, self.pe, lay.pixels, *widths, *([self.out_w] if self.emit_sum else []))
        c.line(f"abcn::{fn}{ta}({', '.join(ins + outs)}, {lay.ident}_add, {tid}_thr, images {counter});")
