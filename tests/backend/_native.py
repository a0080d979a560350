"""The native host path (tb/csim_host.cpp) against its reference, the ONNX host graphs: helpers of
the backend tests.

``assert_native_host_exact(build_dir, x)`` checks, on any compiled project,
* quantisation + packing: abcn_csim_host_pre on ``x`` and on edge inputs (values on and next to
  quantisation boundaries, -0.0, denormals, out-of-range values) gives the words of
  host.pack_input_words(host.run_pre(host/pre.onnx)), bit for bit;
* unpacking + output affine: abcn_csim_host_post on random output words (accumulators up to both
  ends of their range) gives host.run_post(host/post.onnx) on host.unpack_output_chunks, bit for
  bit (float32 bit patterns, so -0.0 != 0.0 here), and the same accumulators;
* the whole batch: simulate(host="native") equals simulate(host="onnx") (outputs bit for bit,
  accumulators, iteration counts).
The library is loaded into the test process with ctypes (the tests trust their own builds).
"""
from __future__ import annotations

import ctypes
import json
from pathlib import Path

import numpy as np

from abcn_hw.sim import host, simulate
from abcn_hw.sim.csim import build

_P = ctypes.c_void_p


def load(lib_path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(lib_path))
    lib.abcn_csim_host_pre.argtypes = [_P, ctypes.c_uint64, _P, _P]
    lib.abcn_csim_host_pre.restype = ctypes.c_int
    lib.abcn_csim_host_post.argtypes = [_P, ctypes.c_uint64, _P, _P]
    lib.abcn_csim_host_post.restype = ctypes.c_int
    return lib


def native_pre(lib, io: dict, x: np.ndarray) -> tuple[int, int, np.ndarray]:
    """(return code, refused image, words (images * words, chunks) uint64)."""
    a = io["accel_input"]
    x = np.ascontiguousarray(x, np.float32)
    ch = (a["width"] + 63) // 64
    words = np.zeros((len(x) * a["words"], ch), np.uint64)
    bad = np.zeros(1, np.uint64)
    rc = lib.abcn_csim_host_pre(x.ctypes.data, len(x), words.ctypes.data, bad.ctypes.data)
    return rc, int(bad[0]), words


def native_post(lib, io: dict, words: np.ndarray, images: int) -> tuple[np.ndarray, np.ndarray]:
    o = io["accel_output"]
    words = np.ascontiguousarray(words, np.uint64)
    y = np.zeros((images, *io["output_shape"]), np.float32)
    acc = np.zeros((images, o["mh"] * o["vectors"]), np.int64)
    assert lib.abcn_csim_host_post(words.ctypes.data, images, y.ctypes.data, acc.ctypes.data) == 0
    acc = acc.reshape(images, o["mh"]) if o["vectors"] == 1 else acc.reshape(images, o["mh"], o["vectors"])
    return y, acc


def onnx_pre(pre: bytes, io: dict, x: np.ndarray) -> np.ndarray:
    return host.pack_input_words(io, host.run_pre(pre, io, x))


def onnx_post(post: bytes, io: dict, words: np.ndarray, images: int) -> tuple[np.ndarray, np.ndarray]:
    acc = host.unpack_output_chunks(io, words, images)
    return host.run_post(post, acc, io["accel_output"].get("dtype", "int32")), acc


EXTREMES = [3.4028235e38, -3.4028235e38, 1e30, -1e30, 1e9, -1e9, 255.5, 256.0, -255.5]


def edge_values(extremes: bool = True) -> np.ndarray:
    """Float32 values on and next to quantisation boundaries: every multiple of 2^-10 in [-2, 2]
    (ties of round(x / 2^-k) for the 8-bit and 1-bit input quantisers, the bipolar threshold 0.5)
    and its two float32 neighbours, -0.0, denormals, and (``extremes``) huge and out-of-range values."""
    grid = np.arange(-2048, 2049, dtype=np.float64) / 1024
    g = grid.astype(np.float32)
    vals = [g, np.nextafter(g, np.float32(np.inf)), np.nextafter(g, np.float32(-np.inf)),
            np.array([-0.0, 1e-45, -1e-45, 1e-40, -1e-40, 1.1754942e-38, 0.49999997, 0.50000006], np.float32)]
    if extremes:
        vals.append(np.array(EXTREMES, np.float32))
    return np.concatenate(vals).astype(np.float32)


def edge_images(shape: tuple[int, ...], rng, extremes: bool = True) -> np.ndarray:
    """Images of ``shape`` filled with :func:`edge_values` (each value at several positions)."""
    v = edge_values(extremes)
    size = int(np.prod(shape))
    count = max(4, -(-2 * len(v) // size))
    flat = np.concatenate([v, rng.permutation(v)] + [rng.permutation(v) for _ in range(count)])
    flat = np.resize(flat, count * size)
    return flat.reshape(count, *shape).astype(np.float32)


def random_output_words(io: dict, images: int, rng) -> np.ndarray:
    """Output words of random accumulators, the extremes of their ACC_W-bit range included."""
    o = io["accel_output"]
    w, pe = o["acc_w"], o["pe"]
    count = images * o["words"]
    lim = 1 << (w - 1)
    vals = [int(v) for v in rng.integers(-min(lim, 1 << 62), min(lim, 1 << 62), size=count * pe)]
    for i, v in enumerate((-lim, lim - 1, 0, -1, 1)):
        if i < len(vals):
            vals[i] = v
    words = np.zeros((count, (o["width"] + 63) // 64), np.uint64)
    for k, v in enumerate(vals):
        r, f = divmod(k, pe)
        u = v % (1 << w)
        pos = f * w
        while u:
            words[r, pos // 64] |= np.uint64((u << (pos % 64)) & ((1 << 64) - 1))
            taken = 64 - pos % 64
            u >>= taken
            pos += taken
    return words


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


def assert_native_host_exact(build_dir, x: np.ndarray, seed: int = 0, images: int = 64) -> None:
    b = Path(build_dir)
    io = json.loads((b / "host" / "io.json").read_text())
    assert io["host_native"] == {"supported": True, "reason": ""}, io["host_native"]
    pre = (b / "host" / "pre.onnx").read_bytes()
    post = (b / "host" / "post.onnx").read_bytes()
    lib = load(build(b, library=True))
    rng = np.random.default_rng(seed)
    shape = tuple(io["input_shape"])

    xs = [np.ascontiguousarray(x[:images], np.float32), edge_images(shape, rng)]
    for xi in xs:
        rc, bad, words = native_pre(lib, io, xi)
        try:
            ref = onnx_pre(pre, io, xi)
        except ValueError:  # the reference refuses an integer input outside lo..hi: so must the native code
            assert rc == 5, rc
            continue
        assert rc == 0, (rc, bad)
        assert np.array_equal(words, ref), np.argwhere(words != ref)[:5]

    n = 97
    words = random_output_words(io, n, rng)
    y, acc = native_post(lib, io, words, n)
    y_ref, acc_ref = onnx_post(post, io, words, n)
    assert np.array_equal(acc, acc_ref)
    assert y.shape == y_ref.shape and np.array_equal(bits(y), bits(y_ref)), np.argwhere(bits(y) != bits(y_ref))[:5]

    nat = simulate(b, xs[0], host="native", threads=2)
    ref = simulate(b, xs[0], host="onnx", threads=2)
    assert (nat.host, ref.host) == ("native", "onnx")
    assert np.array_equal(bits(nat.output), bits(ref.output)) and np.array_equal(nat.accumulators, ref.accumulators)
    assert nat.accumulators.dtype == ref.accumulators.dtype
    assert [c["counted"] for c in nat.counts] == [c["counted"] for c in ref.counts] and nat.cycles_match
