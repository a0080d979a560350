"""C simulation of a generated project, and bit-exact verification against onnxruntime.

    csim(build_dir, x) -> np.ndarray                 the model output, as the lowered graph computes it
    simulate(build_dir, x, dump=False, threads=None, variant="fast", host="auto") -> CsimResult
                                                     + per-stage iteration counts, per-layer dumps
    verify(model, build_dir, x) -> VerifyResult      exported vs lowered vs csim

The design is compiled once with g++ (cached in BUILD_DIR/.csim/<key>/, the key covering the
sources, the compiler and the CPU features -march=native resolves to) as a shared library, which a
child process loads (a crashing design is a CsimError, not a dead Python); a whole batch runs there
in one call, split over threads, through shared memory: the float input is quantised as
host/pre.onnx does and packed into stream words, the driver streams them through ``abcn_top`` (64
images per call), and the integer accumulators become the model output as host/post.onnx computes
it. These host steps run in the library too (tb/csim_host.cpp, generated from the same constants by
abcn_hw/backend/host_native.py and tested equal to the ONNX graphs bit for bit); ``host="onnx"``, a
host graph the translation does not cover, and the per-layer dump (which runs the driver executable
on files) run the ONNX graphs in onnxruntime and pack in numpy instead. A build dir is code: simulate only
build dirs you generated or trust.
"""
from .csim import CsimError, CsimResult, build, csim, simulate
from .verify import VerifyResult, verify

__all__ = ["CsimError", "CsimResult", "VerifyResult", "build", "csim", "simulate", "verify"]
