"""Numpy references for the abcn HLS kernel library (hls/include/abcn).

Independent of the compiler's own references: plain, vectorised numpy on clear tensor shapes.
Conventions (see hls/README.md):

* activation bits: 1 = +1, 0 = -1; a layer input is a bit tensor of shape (..., N, C) per pixel;
* stream words are little-endian bit vectors: word bit i = ``bits[..., i]``;
* base-major words: a multi-base word of N*W bits has bit ``n*W + j`` = base n, element j.

Words travel to/from the C++ testbenches as hexadecimal strings (most significant digit first).
"""
from __future__ import annotations

import numpy as np

# --------------------------------------------------------------------------------------------
# widths (mirror the constexpr helpers of common.hpp / multibase_threshold.hpp)
# --------------------------------------------------------------------------------------------


def clog2(x: int) -> int:
    return 0 if x <= 1 else int(x - 1).bit_length()


def bits_signed_sym(mx: int) -> int:
    """Signed width holding -(mx+1)..mx+1."""
    return clog2(mx + 2) + 1


def mb_acc_max(m: int, n: int, dot_max: int, a_w: int, b_w: int) -> int:
    return m * n * dot_max * 2 ** (a_w - 1) * 2 ** (b_w - 1)


def mb_acc_bits(m: int, n: int, dot_max: int, a_w: int, b_w: int) -> int:
    return bits_signed_sym(mb_acc_max(m, n, dot_max, a_w, b_w))


def xnor_dot_bits(mw: int) -> int:
    return bits_signed_sym(mw)


def int_pixel_max(in_bits: int, signed: bool) -> int:
    return 2 ** (in_bits - 1) if signed else 2 ** in_bits - 1


def int_dot_bits(mw: int, in_bits: int, signed: bool) -> int:
    return bits_signed_sym(mw * int_pixel_max(in_bits, signed))


def conv_out_dim(ifm: int, k: int, s: int, p: int) -> int:
    return (ifm + 2 * p - k) // s + 1


# --------------------------------------------------------------------------------------------
# words <-> hex, bit packing
# --------------------------------------------------------------------------------------------


def words_to_hex(bits: np.ndarray) -> list[str]:
    """(..., W) array of 0/1 -> list of hex strings, one per word (row-major over ...)."""
    bits = np.asarray(bits, dtype=np.uint8)
    w = bits.shape[-1]
    flat = bits.reshape(-1, w)
    pad = (-w) % 4
    if pad:
        flat = np.concatenate([flat, np.zeros((flat.shape[0], pad), np.uint8)], axis=1)
    nib = flat.reshape(flat.shape[0], -1, 4)
    vals = nib[..., 0] + 2 * nib[..., 1] + 4 * nib[..., 2] + 8 * nib[..., 3]  # (count, digits)
    digits = np.array(list("0123456789abcdef"))[vals[:, ::-1]]
    return ["".join(row) for row in digits]


def hex_to_words(tokens: list[str], w: int) -> np.ndarray:
    """list of hex strings -> (count, W) uint8 bit array; fails if a word is wider than W."""
    nd = (w + 3) // 4
    if any(len(t) != nd for t in tokens):
        bad = next(t for t in tokens if len(t) != nd)
        raise ValueError(f"word {bad!r} does not have {nd} hex digits ({w} bits)")
    if not tokens:
        return np.zeros((0, w), np.uint8)
    chars = np.frombuffer("".join(tokens).encode("ascii"), np.uint8).reshape(len(tokens), nd)
    vals = np.where(chars >= ord("a"), chars - ord("a") + 10, chars - ord("0")).astype(np.uint8)
    bits = (vals[:, ::-1, None] >> np.arange(4, dtype=np.uint8)) & 1  # (count, digits, 4) LSB first
    bits = bits.reshape(len(tokens), nd * 4)
    if bits[:, w:].any():
        raise ValueError(f"word wider than {w} bits")
    return bits[:, :w].astype(np.uint8)


def int_fields(bits: np.ndarray, width: int, signed: bool) -> np.ndarray:
    """(..., K*width) bits -> (..., K) integers (two's complement if signed)."""
    b = np.asarray(bits, dtype=np.int64)
    b = b.reshape(*b.shape[:-1], -1, width)
    vals = (b * (1 << np.arange(width, dtype=np.int64))).sum(-1)
    if signed:
        vals = np.where(vals >= 2 ** (width - 1), vals - 2 ** width, vals)
    return vals


def int_to_fields(vals: np.ndarray, width: int) -> np.ndarray:
    """(..., K) integers -> (..., K*width) bits, two's complement."""
    v = np.asarray(vals, dtype=np.int64) % (1 << width)
    bits = (v[..., None] >> np.arange(width, dtype=np.int64)) & 1
    return bits.reshape(*v.shape[:-1], -1).astype(np.uint8)


def bit_pixels_to_words(x: np.ndarray, simd: int) -> np.ndarray:
    """Bit tensor (..., N, C) -> words (..., C/SIMD, N*SIMD): word cf bit n*SIMD+s = x[..., n, cf*SIMD+s]."""
    *lead, n, c = x.shape
    assert c % simd == 0
    t = x.reshape(*lead, n, c // simd, simd)
    t = np.moveaxis(t, -3, -2)  # (..., CF, N, SIMD)
    return t.reshape(*lead, c // simd, n * simd).astype(np.uint8)


def words_to_bit_pixels(words: np.ndarray, n: int) -> np.ndarray:
    """Inverse of bit_pixels_to_words: (..., CF, N*W) -> (..., N, CF*W)."""
    *lead, cf, nw = words.shape
    w = nw // n
    t = words.reshape(*lead, cf, n, w)
    t = np.moveaxis(t, -2, -3)  # (..., N, CF, W)
    return t.reshape(*lead, n, cf * w)


def int_pixels_to_words(x: np.ndarray, simd: int, in_bits: int) -> np.ndarray:
    """Integer tensor (..., C) -> words (..., C/SIMD, SIMD*IN_BITS): channel s at bits [s*IN_BITS, ...)."""
    *lead, c = x.shape
    assert c % simd == 0
    t = x.reshape(*lead, c // simd, simd)
    return int_to_fields(t, in_bits)


def fold_weights(b: np.ndarray, pe: int, simd: int) -> np.ndarray:
    """Weight bits B (M, MH, MW) -> (M, PE, NF*SF, SIMD): w[m][pe][nf*SF+sf] bit s = B[m][nf*PE+pe][sf*SIMD+s]."""
    m, mh, mw = b.shape
    nf, sf = mh // pe, mw // simd
    t = b.reshape(m, nf, pe, sf, simd)
    t = np.transpose(t, (0, 2, 1, 3, 4))  # (M, PE, NF, SF, SIMD)
    return t.reshape(m, pe, nf * sf, simd).astype(np.uint8)


def fold_channels(v: np.ndarray, pe: int) -> np.ndarray:
    """Per-channel params (MH, ...) -> (PE, NF, ...) with channel o = nf*PE + pe."""
    mh = v.shape[0]
    t = v.reshape(mh // pe, pe, *v.shape[1:])
    return np.swapaxes(t, 0, 1)


# --------------------------------------------------------------------------------------------
# kernel semantics
# --------------------------------------------------------------------------------------------


def sliding_window(x: np.ndarray, k, s, p) -> np.ndarray:
    """x (B, H, W, *rest) -> (B, OH, OW, KH, KW, *rest); padding positions are all-zero.
    k = K or (KH, KW); s = S or (SH, SW); p = P or (PT, PL, PB, PR)."""
    kh, kw = (k, k) if np.isscalar(k) else k
    sh, sw = (s, s) if np.isscalar(s) else s
    pt, pl, pb, pr = (p, p, p, p) if np.isscalar(p) else p
    bsz, h, w = x.shape[:3]
    rest = x.shape[3:]
    xp = np.zeros((bsz, h + pt + pb, w + pl + pr, *rest), x.dtype)
    xp[:, pt:pt + h, pl:pl + w] = x
    oh, ow = (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1
    iy = (np.arange(oh) * sh)[:, None] + np.arange(kh)[None, :]  # (OH, KH)
    ix = (np.arange(ow) * sw)[:, None] + np.arange(kw)[None, :]  # (OW, KW)
    return xp[:, iy[:, None, :, None], ix[None, :, None, :]]


def bit_maxpool_general(x: np.ndarray, k, s, p) -> np.ndarray:
    """x (B, H, W, *rest) bits -> OR over windows (pad bit 0), (B, OH, OW, *rest)."""
    return sliding_window(x, k, s, p).max(axis=(3, 4))


def xnor_dots(xbits: np.ndarray, wbits: np.ndarray) -> np.ndarray:
    """xbits (V, N, MW), weight bits (M, MH, MW) -> dot_mn (V, MH, M, N) = 2*popcount(XNOR) - MW."""
    xs = 2 * xbits.astype(np.int64) - 1
    ws = 2 * wbits.astype(np.int64) - 1
    return np.einsum("vnk,mok->vomn", xs, ws)


def int_dots(x: np.ndarray, wbits: np.ndarray) -> np.ndarray:
    """Integer x (V, MW), weight bits (M, MH, MW) -> dot_m (V, MH, M, 1) = sum_k x[k] * (+-1)."""
    ws = 2 * wbits.astype(np.int64) - 1
    return np.einsum("vk,mok->vom", x.astype(np.int64), ws)[..., None]


def mb_accumulate(dots: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """dots (V, MH, M, N), a (MH, M), b (N) -> acc (V, MH) = sum_m sum_n a[o,m] b[n] dot_mn."""
    return np.einsum("vomn,om,n->vo", dots.astype(np.int64), a.astype(np.int64), b.astype(np.int64))


def mb_threshold(acc: np.ndarray, thr: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """acc (V, MH), thr (MH, NOUT), pos (MH) -> bits (V, NOUT, MH)."""
    ge = acc[:, :, None] >= thr[None]
    le = acc[:, :, None] <= thr[None]
    out = np.where(pos[None, :, None].astype(bool), ge, le)
    return np.swapaxes(out, 1, 2).astype(np.uint8)


def bit_maxpool(x: np.ndarray, pool: int) -> np.ndarray:
    """x (B, H, W, *rest) bits -> OR over POOLxPOOL windows, stride POOL, floor mode."""
    bsz, h, w = x.shape[:3]
    oh, ow = h // pool, w // pool
    t = x[:, :oh * pool, :ow * pool]
    t = t.reshape(bsz, oh, pool, ow, pool, *x.shape[3:])
    return t.max(axis=(2, 4))


def conv_bits(x: np.ndarray, wbits: np.ndarray, k: int, s: int, p: int) -> np.ndarray:
    """Direct (loop-free, window-free) binary convolution for cross-checking: x (B, H, W, N, C)
    bits, wbits (M, O, K, K, C) -> dots (B, OH, OW, O, M, N), padding value -1."""
    bsz, h, w, n, c = x.shape
    xs = 2 * x.astype(np.int64) - 1
    xp = -np.ones((bsz, h + 2 * p, w + 2 * p, n, c), np.int64)
    xp[:, p:p + h, p:p + w] = xs
    ws = 2 * wbits.astype(np.int64) - 1
    oh, ow = conv_out_dim(h, k, s, p), conv_out_dim(w, k, s, p)
    out = np.zeros((bsz, oh, ow, ws.shape[1], ws.shape[0], n), np.int64)
    for ky in range(k):
        for kx in range(k):
            patch = xp[:, ky:ky + s * (oh - 1) + 1:s, kx:kx + s * (ow - 1) + 1:s]  # (B,OH,OW,N,C)
            out += np.einsum("byxnc,moc->byxomn", patch, ws[:, :, ky, kx])
    return out


def conv_int(x: np.ndarray, wbits: np.ndarray, k: int, s: int, p: int) -> np.ndarray:
    """x (B, H, W, C) ints, zero padding, wbits (M, O, K, K, C) -> dots (B, OH, OW, O, M, 1)."""
    bsz, h, w, c = x.shape
    xp = np.zeros((bsz, h + 2 * p, w + 2 * p, c), np.int64)
    xp[:, p:p + h, p:p + w] = x
    ws = 2 * wbits.astype(np.int64) - 1
    oh, ow = conv_out_dim(h, k, s, p), conv_out_dim(w, k, s, p)
    out = np.zeros((bsz, oh, ow, ws.shape[1], ws.shape[0]), np.int64)
    for ky in range(k):
        for kx in range(k):
            patch = xp[:, ky:ky + s * (oh - 1) + 1:s, kx:kx + s * (ow - 1) + 1:s]
            out += np.einsum("byxc,moc->byxom", patch, ws[:, :, ky, kx])
    return out[..., None]


# --------------------------------------------------------------------------------------------
# expected loop iterations (cycles at II=1) per call, mirrors the kernels' schedules
# --------------------------------------------------------------------------------------------


def sliding_window_iters(h: int, w: int, cf: int, k, s, p, reps: int) -> int:
    kh, kw = (k, k) if np.isscalar(k) else k
    sh, sw = (s, s) if np.isscalar(s) else s
    pt, pl, pb, pr = (p, p, p, p) if np.isscalar(p) else p
    oh, ow = (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1
    pro = min(kh - pt, h) * w * cf
    return reps * (pro + oh * max(ow * kh * kw * cf, sh * w * cf))


def mvu_iters(mw: int, mh: int, simd: int, pe: int, vectors: int) -> int:
    return vectors * (mw // simd) * (mh // pe)


def maxpool_iters(h: int, w: int, cf: int, reps: int) -> int:
    return reps * h * w * cf


def width_converter_iters(in_w: int, out_w: int, in_words: int, reps: int) -> int:
    return reps * max(in_words, in_words * in_w // out_w)


# --------------------------------------------------------------------------------------------
# residual-network kernels on integer streams (residual.hpp, int_pool.hpp)
# --------------------------------------------------------------------------------------------


def residual_sum_bits(in0_w: int, in1_w: int, s_w: int, t_w: int) -> int:
    return max(s_w + in0_w, s_w + in1_w, t_w) + 2


def global_sum_pool_bits(in_w: int, pixels: int) -> int:
    return in_w + clog2(pixels)


def signed_bits(lo: int, hi: int) -> int:
    """Smallest two's-complement width holding every integer in [lo, hi]."""
    w = 1
    while not (-(2 ** (w - 1)) <= lo and hi <= 2 ** (w - 1) - 1):
        w += 1
    return w


def wrap_signed(v: np.ndarray, w: int) -> np.ndarray:
    """v modulo 2^w as a two's-complement w-bit value (w <= 63)."""
    v = np.asarray(v, dtype=np.int64)
    return ((v + 2 ** (w - 1)) % 2 ** w) - 2 ** (w - 1)


def residual_add(xs: list, s: np.ndarray, t: np.ndarray, shift: int = 0) -> np.ndarray:
    """xs: K arrays (..., C); s (K, C); t (C) -> y = sum_k s[k] * x_k + t (int64, exact), then
    round(y / 2**shift) with ties to even (float64 division and numpy's round: exact below 2**53)."""
    y = np.broadcast_to(t.astype(np.int64), xs[0].shape).copy()
    for k, x in enumerate(xs):
        y += s[k].astype(np.int64) * x.astype(np.int64)
    if shift:
        assert np.abs(y).max() < 2 ** 53
        y = np.round(y.astype(np.float64) / 2.0 ** shift).astype(np.int64)
    return y


def int_threshold(y: np.ndarray, thr: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """y (V, C), thr (C, NOUT), pos (C) -> bits (V, NOUT, C) (the MultiBaseThreshold rule)."""
    return mb_threshold(y, thr, pos)


def global_sum_pool(x: np.ndarray) -> np.ndarray:
    """x (B, PIXELS, C) -> (B, C) sums."""
    return x.astype(np.int64).sum(axis=1)


def int_maxpool(x: np.ndarray, k, s, p) -> np.ndarray:
    """x (B, H, W, C) ints -> max over windows with padding that never wins (ONNX MaxPool)."""
    shift = int(x.min()) - 1  # every real value becomes >= 1, the zero padding of sliding_window < all
    return sliding_window(x.astype(np.int64) - shift, k, s, p).max(axis=(3, 4)) + shift


def int_stream_words(x: np.ndarray, pe: int, w: int) -> list[str]:
    """Integer tensor (..., C) -> hex words of PE fields of w bits (field j = channel nf*PE + j)."""
    return words_to_hex(int_pixels_to_words(x, pe, w))


def int_stream_values(words: list[str], pe: int, w: int, shape) -> np.ndarray:
    """Hex words of PE signed fields of w bits -> integers reshaped to `shape` (..., C)."""
    return int_fields(hex_to_words(words, pe * w), w, signed=True).reshape(shape)


def int_window_max_iters(h: int, w: int, cf: int, k, s, p, reps: int) -> int:
    kh, kw = (k, k) if np.isscalar(k) else k
    sh, sw = (s, s) if np.isscalar(s) else s
    pt, pl, pb, pr = (p, p, p, p) if np.isscalar(p) else p
    oh, ow = (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1
    return reps * oh * ow * kh * kw * cf
