"""The accelerator's stream words and the host side around them (the one owner of the layout).

Everything that knows how a tensor becomes stream words lives here: the compiler writes
``host/io.json`` with :func:`io_spec`, the C simulation (abcn_hw.sim) packs inputs, unpacks outputs
and decodes per-layer dumps with the functions below. ``sim`` imports this module; the backend
never imports ``sim``.

Layouts (host/io.json, conventions of hls/README.md):
* integer input, convolution: per image, pixels in (y, x) order, each C/SIMD words of SIMD fields of
  IN_BITS bits (channel s of the fold at bits [s*IN_BITS, (s+1)*IN_BITS), two's complement);
  fully connected: the K inputs in order, SIMD fields per word;
* bit input: base-major words of N*SIMD bits (bit n*SIMD + s = base n, element s of the fold);
* output: per image NF = MH/PE words of PE fields of ACC_W bits (channel nf*PE + pe);
* words travel as little-endian uint64 chunks (chunk 0 = bits 0..63).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

MAGIC = 0x4E4E4342


@lru_cache(maxsize=8)
def _session(model: bytes):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    # no graph rewrites (the host graphs are the export's own float ops, run as written); the
    # element-wise ops give the same results on any number of threads, so onnxruntime's default
    # thread pool is used (measured ~1.7x faster than one thread on TFC's 2,000-image input graph)
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    # no busy-waiting pool threads after a run: the C simulation's own threads start right after
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def run_pre(pre_model: bytes, io: dict, x: np.ndarray, batch: int = 512) -> np.ndarray:
    """Float input -> accelerator input tensor (int32 pixels or uint8 bits), as the lowered graph."""
    sess = _session(pre_model)
    name = sess.get_inputs()[0].name
    outs = [sess.run(None, {name: np.ascontiguousarray(x[i:i + batch], np.float32)})[0]
            for i in range(0, len(x), batch)]
    return np.concatenate(outs, axis=0)


def run_post(post_model: bytes, acc: np.ndarray, dtype: str = "int32", batch: int = 4096) -> np.ndarray:
    sess = _session(post_model)
    name = sess.get_inputs()[0].name
    outs = [sess.run(None, {name: np.ascontiguousarray(acc[i:i + batch], dtype)})[0]
            for i in range(0, len(acc), batch)]
    return np.concatenate(outs, axis=0)


def bits_to_chunks(bits: np.ndarray) -> np.ndarray:
    """(count, W) {0,1} -> (count, ceil(W/64)) uint64, bit j of a word = bits[:, j]."""
    count, w = bits.shape
    pad = (-w) % 64
    if pad:
        bits = np.concatenate([bits, np.zeros((count, pad), np.uint8)], axis=1)
    return np.packbits(bits.astype(np.uint8), axis=1, bitorder="little").view("<u8").reshape(count, -1)


def chunks_to_bits(chunks: np.ndarray, w: int) -> np.ndarray:
    b = np.unpackbits(np.ascontiguousarray(chunks.astype("<u8")).view(np.uint8), axis=1, bitorder="little")
    return b[:, :w]


def int_fields(vals: np.ndarray, width: int) -> np.ndarray:
    """(..., K) integers -> (..., K*width) bits, two's complement, field k at bits [k*width, ...)."""
    v = np.asarray(vals, np.int64) % (1 << width)
    bits = (v[..., None] >> np.arange(width, dtype=np.int64)) & 1
    return bits.reshape(*v.shape[:-1], -1).astype(np.uint8)


def int_fields_to_chunks(vals: np.ndarray, width: int) -> np.ndarray | None:
    """(count, K) integers -> (count, ceil(K*width/64)) uint64 words of int_fields(vals, width),
    computed without expanding to bits; None when a field would straddle two 64-bit chunks."""
    if 64 % width:
        return None
    count, k = vals.shape
    per = 64 // width
    mask = np.uint64((1 << width) - 1)
    out = np.zeros((-(-k * width // 64), count), np.uint64)
    for j in range(k):  # k = fields per word (SIMD): a short loop of whole-column operations
        col = vals[:, j].astype(np.uint64)  # two's complement (sign-extending cast), then masked
        col &= mask
        if j % per:
            col <<= np.uint64((j % per) * width)
        out[j // per] |= col
    return np.ascontiguousarray(out.T).astype("<u8", copy=False)


def fields_to_int(bits: np.ndarray, width: int) -> np.ndarray:
    b = bits.reshape(*bits.shape[:-1], -1, width).astype(np.int64)
    if width > 62:
        vals = np.zeros(b.shape[:-1], dtype=object)
        for i in range(width):
            vals = vals + b[..., i].astype(object) * (1 << i)
        vals = np.where(vals >= (1 << (width - 1)), vals - (1 << width), vals)
        return vals.astype(np.int64)
    vals = (b << np.arange(width, dtype=np.int64)).sum(-1)
    return np.where(vals >= (1 << (width - 1)), vals - (1 << width), vals)


def pack_input_words(io: dict, t: np.ndarray) -> np.ndarray:
    """Accelerator input tensor (B, ...) -> the stream words, (B * words, ceil(W/64)) uint64 chunks."""
    a = io["accel_input"]
    b = t.shape[0]
    simd = a["simd"]
    if a["kind"] == "int":
        t = np.asarray(t)
        if t.dtype.kind not in "iu":
            t = t.astype(np.int64)
        if t.size and (int(t.min()) < a["lo"] or int(t.max()) > a["hi"]):
            raise ValueError(f"integer input outside {a['lo']}..{a['hi']}")
        if a["conv"]:
            t = t.transpose(0, 2, 3, 1)  # (B, H, W, C)
        v = t.reshape(b, -1, simd)  # (B, words, SIMD)
        chunks = int_fields_to_chunks(v.reshape(-1, simd), a["in_bits"])
        if chunks is None:
            chunks = bits_to_chunks(int_fields(v, a["in_bits"]).reshape(-1, a["width"]))
    else:
        t = np.asarray(t, np.uint8)
        n = t.shape[1]
        if a["conv"]:
            _, _, c, h, w = t.shape
            v = t.transpose(0, 3, 4, 1, 2).reshape(b, h * w, n, c // simd, simd).transpose(0, 1, 3, 2, 4)
        else:
            k = t.shape[2]
            v = t.reshape(b, n, k // simd, simd).transpose(0, 2, 1, 3)
        chunks = bits_to_chunks(v.reshape(-1, a["width"]))
    assert chunks.shape[0] == b * a["words"], (chunks.shape, b, a["words"])
    return np.ascontiguousarray(chunks, "<u8")


def input_file(io: dict, words: np.ndarray, images: int) -> bytes:
    """IN.bin bytes of the driver executable: header + the packed words."""
    a = io["accel_input"]
    hdr = np.array([MAGIC, images, a["words"], (a["width"] + 63) // 64], "<u8")
    return hdr.tobytes() + words.tobytes()


def pack_input(io: dict, t: np.ndarray) -> bytes:
    """Accelerator input tensor (B, ...) -> IN.bin bytes."""
    return input_file(io, pack_input_words(io, t), t.shape[0])


def read_chunks(path) -> tuple[int, np.ndarray]:
    """OUT.bin -> (images, (count, ceil(W/64)) uint64 chunks of the words)."""
    raw = np.fromfile(path, dtype="<u8")
    if raw.size < 4 or raw[0] != MAGIC:
        raise ValueError("bad csim output file")
    images, words, ch = int(raw[1]), int(raw[2]), int(raw[3])
    body = raw[4:]
    if body.size != images * words * ch:
        raise ValueError("truncated csim output")
    return images, body.reshape(-1, ch)


def chunk_fields_to_int(chunks: np.ndarray, width: int, fields: int) -> np.ndarray | None:
    """(count, CH) uint64 words -> (count, fields) int64: two's-complement field k at bits
    [k*width, (k+1)*width) (as fields_to_int, without expanding to bits); None if width > 62."""
    if width > 62:
        return None
    count = chunks.shape[0]
    mask = np.uint64((1 << width) - 1)
    out = np.empty((count, fields), np.int64)
    for k in range(fields):
        lo = k * width
        c, b = lo // 64, lo % 64
        v = chunks[:, c] >> np.uint64(b)
        if b + width > 64:
            v = v | (chunks[:, c + 1] << np.uint64(64 - b))
        v = (v & mask).astype(np.int64)
        out[:, k] = np.where(v >= (1 << (width - 1)), v - (1 << width), v)
    return out


def unpack_output_chunks(io: dict, chunks: np.ndarray, images: int) -> np.ndarray:
    """Output words as uint64 chunks -> int64 accumulators (B, MH): field pe of word (image, v, nf)
    is the accumulator of channel nf*PE + pe (of output vector v)."""
    o = io["accel_output"]
    acc = chunk_fields_to_int(chunks, o["acc_w"], o["pe"])
    if acc is None:  # accumulators wider than 62 bits
        acc = fields_to_int(chunks_to_bits(chunks, o["width"])[:, :o["pe"] * o["acc_w"]], o["acc_w"])
    acc = acc.reshape(images, o["vectors"], o["mh"])
    if o["vectors"] == 1:
        return acc[:, 0]
    return acc.transpose(0, 2, 1)


def decode_tap(tap: dict, raw: np.ndarray, images: int) -> np.ndarray:
    """Dump words of a tapped stream -> the lowered tensor (B, *shape)."""
    w = tap["w"]
    if tap["kind"] == "acc":
        shape = tap["shape"]
        acc_w = tap["acc_w"]
        bits = chunks_to_bits(raw, tap["width"])
        vals = fields_to_int(bits, acc_w).reshape(images, -1, shape[0])
        return vals.reshape(images, *shape[1:], shape[0]).transpose(0, -1, *range(1, len(shape)))
    shape = tap["shape"]  # (N, C, H, W) or (N, C)
    n, c = shape[0], shape[1]
    pixels = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    bits = chunks_to_bits(raw, tap["width"]).reshape(images, pixels, c // w, n, w)
    t = bits.transpose(0, 3, 1, 2, 4).reshape(images, n, pixels, c)  # (B, N, P, C)
    if len(shape) > 2:
        t = t.reshape(images, n, *shape[2:], c)
        t = np.moveaxis(t, -1, 2)
    else:
        t = t[:, :, 0]
    return t


# -- io.json: the layout the compiler writes for the host ----------------------------------------

def stream_words_per_image(graph) -> tuple[int, int, int, int]:
    """(input words, input width, output words, output width) per image of a kernel graph."""
    ein, eout = graph.input_edge, graph.output_edge
    return ein.dst.in_words(), ein.width, eout.src.out_words(), eout.width


def tap_list(graph) -> list[dict]:
    """Per-layer dumps: every kernel whose output stream is a lowered tensor, in schedule order, but
    the one writing the design's output."""
    out = []
    for i, k in enumerate(graph.topo_order()):
        for port, tap in k.taps():
            if graph.out_edge(k, port).dst is not None:
                out.append(dict(tap, stage=i, width=k.out_width(port)) | ({"port": port} if port else {}))
    return out


def io_spec(net, graph) -> dict:
    """host/io.json: the graph's input/output tensors and shapes, the accelerator's input and output
    stream layouts, the per-layer dumps and the stage list (for the cycle-counter check)."""
    in_words, in_w, out_words, out_w = stream_words_per_image(graph)
    first, last = net.matrix_layers[0], net.final
    return {
        "graph_input": net.graph_input, "graph_output": net.graph_output,
        "input_shape": list(net.input_shape), "output_shape": list(net.output_shape),
        "accel_input": {"kind": net.input.kind, "shape": list(net.input.shape), "in_bits": net.input.in_bits,
                        "signed": net.input.signed, "lo": net.input.lo, "hi": net.input.hi,
                        "simd": first.simd, "conv": first.geom is not None,
                        "words": in_words, "width": in_w},
        "accel_output": {"mh": last.mh, "pe": last.pe, "acc_w": last.acc_w, "vectors": last.vectors,
                         "dtype": net.acc_dtype,
                         "words": out_words, "width": out_w},
        "taps": tap_list(graph),
        "stages": [{"id": k.ident, "kind": k.kind, "cycles": k.cycles(), "counter_calls": k.counter_calls}
                   for k in graph.topo_order()],
    }
