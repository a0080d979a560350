"""C simulation of a generated project, and bit-exact verification against onnxruntime.

    csim(build_dir, x) -> np.ndarray                 the model output, as the lowered graph computes it
    simulate(build_dir, x, dump=False) -> CsimResult  + per-stage iteration counts, per-layer dumps
    verify(model, build_dir, x) -> VerifyResult      exported vs lowered vs csim

The design is compiled once with g++ (cached in BUILD_DIR/.csim/<content hash>/) and a whole batch
runs in one process: the host quantises the float input with host/pre.onnx, packs the stream words
into a file, the driver streams them through ``abcn_top`` (64 images per call), and the host turns
the integer accumulators into the model output with host/post.onnx.
"""
from .csim import CsimError, CsimResult, build, csim, simulate
from .verify import VerifyResult, verify

__all__ = ["CsimError", "CsimResult", "VerifyResult", "build", "csim", "simulate", "verify"]
