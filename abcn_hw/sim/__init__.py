"""C simulation of a generated project, and bit-exact verification against onnxruntime.

    csim(build_dir, x) -> np.ndarray                 the model output, as the lowered graph computes it
    simulate(build_dir, x, dump=False, threads=None, variant="fast") -> CsimResult
                                                     + per-stage iteration counts, per-layer dumps
    verify(model, build_dir, x) -> VerifyResult      exported vs lowered vs csim

The design is compiled once with g++ (cached in BUILD_DIR/.csim/<key>/, the key covering the
sources, the compiler and the CPU features -march=native resolves to) as a shared library, which a
child process loads (a crashing design is a CsimError, not a dead Python); a whole batch runs there
in one call, split over threads, through shared memory: the host quantises the float input with
host/pre.onnx, packs the stream words, the driver streams them through ``abcn_top`` (64 images per
call), and the host turns the integer accumulators into the model output with host/post.onnx. The
per-layer dump runs the driver executable on files instead. A build dir is code: simulate only
build dirs you generated or trust.
"""
from .csim import CsimError, CsimResult, build, csim, simulate
from .verify import VerifyResult, verify

__all__ = ["CsimError", "CsimResult", "VerifyResult", "build", "csim", "simulate", "verify"]
