"""Random parameters and testbench token encoding shared by the HLS kernel tests."""
from __future__ import annotations

import numpy as np

from . import reference as ref


def rand_coeffs(rng, shape, width):
    return rng.integers(-(2 ** (width - 1)), 2 ** (width - 1), size=shape)


def rand_thresholds(rng, acc: np.ndarray, nout: int, acc_max: int) -> np.ndarray:
    """Thresholds (MH, NOUT) picked around observed accumulator values (so that >=, <= and
    equality all matter), with a few clipped to +-(ACC_MAX+1)."""
    v, mh = acc.shape
    pick = acc[rng.integers(0, v, size=(mh, nout)), np.arange(mh)[:, None]]
    thr = pick + rng.integers(-1, 2, size=(mh, nout))
    extreme = rng.random((mh, nout)) < 0.1
    thr = np.where(extreme, rng.choice([-(acc_max + 1), acc_max + 1], size=(mh, nout)), thr)
    return np.clip(thr, -(acc_max + 1), acc_max + 1)


def rand_pos(rng, mh: int) -> np.ndarray:
    return (rng.random(mh) < 0.7).astype(np.int64)


def weight_tokens(wbits: np.ndarray, pe: int, simd: int) -> list[str]:
    return ref.words_to_hex(ref.fold_weights(wbits, pe, simd))


def coeff_tokens(a: np.ndarray, b: np.ndarray, pe: int) -> list[int]:
    """a (MH, M) -> a[pe][nf][m]; then b[n]."""
    return [int(t) for t in ref.fold_channels(a, pe).reshape(-1)] + [int(t) for t in b]


def threshold_tokens(a, b, thr, pos, pe) -> list[int]:
    return (coeff_tokens(a, b, pe) + [int(t) for t in ref.fold_channels(thr, pe).reshape(-1)]
            + [int(t) for t in ref.fold_channels(pos, pe).reshape(-1)])


def decode_bits(words: list[str], vectors: int, mh: int, pe: int, nout: int) -> np.ndarray:
    """Threshold-unit output words -> bits (V, NOUT, MH)."""
    bits = ref.hex_to_words(words, nout * pe).reshape(vectors, mh // pe, nout, pe)
    return np.transpose(bits, (0, 2, 1, 3)).reshape(vectors, nout, mh)


def decode_acc(words: list[str], vectors: int, mh: int, pe: int, acc_w: int) -> np.ndarray:
    """Logits words -> acc (V, MH)."""
    bits = ref.hex_to_words(words, pe * acc_w)
    return ref.int_fields(bits, acc_w, signed=True).reshape(vectors, mh)


def decode_dots(words: list[str], vectors: int, mh: int, pe: int, m: int, n: int, dw: int) -> np.ndarray:
    """DotPassThrough words -> dots (V, MH, M, N)."""
    bits = ref.hex_to_words(words, pe * m * n * dw)
    return ref.int_fields(bits, dw, signed=True).reshape(vectors, mh, m, n)
