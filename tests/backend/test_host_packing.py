"""The host side of the C simulation packs and unpacks stream words without expanding to bits;
each fast path is checked against the bit-level reference (two's complement fields, bit j of a
word = element j)."""
from __future__ import annotations

import numpy as np
import pytest

from abcn_hw.sim import host


def _field_bits(vals: np.ndarray, width: int) -> np.ndarray:
    """(count, K) integers -> (count, K*width) bits, by Python integers (any width)."""
    rows = []
    for row in vals:
        bits = []
        for v in row:
            u = int(v) % (1 << width)
            bits += [(u >> i) & 1 for i in range(width)]
        rows.append(bits)
    return np.array(rows, np.uint8)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("width", [1, 2, 4, 8, 16, 32])
@pytest.mark.parametrize("k", [1, 3, 8, 25, 130])
def test_int_fields_to_chunks(dtype, width, k):
    rng = np.random.default_rng(width * 1000 + k)
    hi = min(1 << (width - 1), 1 << 30)
    vals = rng.integers(-hi, hi, size=(7, k)).astype(dtype)
    got = host.int_fields_to_chunks(vals, width)
    assert np.array_equal(got, host.bits_to_chunks(_field_bits(vals, width)))


def test_int_fields_to_chunks_declines_straddling_fields():
    assert host.int_fields_to_chunks(np.zeros((2, 3), np.int64), 3) is None


@pytest.mark.parametrize("width,fields", [(1, 5), (10, 1), (13, 5), (20, 3), (33, 2), (62, 3)])
def test_chunk_fields_to_int(width, fields):
    rng = np.random.default_rng(width)
    lim = 1 << (width - 1)
    vals = rng.integers(-lim, lim, size=(9, fields))
    vals[0] = -lim  # extremes of the range
    vals[1] = lim - 1
    assert np.array_equal(host.chunk_fields_to_int(host.bits_to_chunks(_field_bits(vals, width)), width, fields),
                          vals)


@pytest.mark.parametrize("acc_w,pe,nf,vectors", [(10, 1, 10, 1), (20, 3, 4, 1), (13, 5, 2, 3),
                                                 (63, 2, 3, 4), (80, 1, 3, 2)])  # > 62 bits: bit-level path
def test_unpack_output_chunks(acc_w, pe, nf, vectors):
    rng = np.random.default_rng(acc_w)
    images, mh = 3, pe * nf
    io = {"accel_output": {"acc_w": acc_w, "pe": pe, "mh": mh, "vectors": vectors, "width": pe * acc_w}}
    lim = 1 << (min(acc_w, 60) - 1)
    vals = rng.integers(-lim, lim, size=(images * vectors * nf, pe))  # rows (image, vector, nf)
    got = host.unpack_output_chunks(io, host.bits_to_chunks(_field_bits(vals, acc_w)), images)
    ref = vals.reshape(images, vectors, mh)  # channel nf*PE + pe
    assert np.array_equal(got, ref[:, 0] if vectors == 1 else ref.transpose(0, 2, 1))


def test_pack_input_is_header_plus_words():
    io = {"accel_input": {"kind": "int", "conv": False, "simd": 4, "in_bits": 8, "lo": 0, "hi": 255,
                          "width": 32, "words": 2}}
    t = np.arange(16, dtype=np.int32).reshape(2, 8)
    words = host.pack_input_words(io, t)
    assert words.shape == (4, 1) and int(words[0, 0]) == 0x03020100
    payload = np.frombuffer(host.pack_input(io, t), "<u8")
    assert list(payload[:4]) == [host.MAGIC, 2, 2, 1] and np.array_equal(payload[4:], words[:, 0])
    with pytest.raises(ValueError, match="outside"):
        host.pack_input_words(io, t + 250)
