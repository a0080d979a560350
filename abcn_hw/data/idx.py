"""Strict reader and writer for the IDX format used by MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number ``0x00 0x00 <dtype> <ndim>``, then ``ndim`` big-endian
uint32 dimension sizes, then exactly ``prod(dims)`` elements. Only the unsigned-byte element type
(``0x08``) is supported, which is all MNIST-style datasets use. Files may be gzip-compressed
(detected from the gzip signature, whatever the file name) or raw.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from abcn_hw.errors import DataError

__all__ = ["IDX_UBYTE", "read_idx", "write_idx"]

IDX_UBYTE = 0x08
_GZIP_SIGNATURE = b"\x1f\x8b"
_IDX_FIX = "re-download the file; it must be an uncorrupted IDX file (optionally gzip-compressed)"


def _read_bytes(path: Path) -> bytes:
    """Return the (decompressed) content of ``path``; DataError if unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError("IDX file not found", where=str(path),
                        fix="check the path or pass --data-dir DIR containing the dataset"
                        ) from None
    except IsADirectoryError:
        raise DataError("expected an IDX file but found a directory", where=str(path),
                        fix="point at the IDX file itself") from None
    except OSError as err:
        raise DataError(f"cannot read IDX file: {err.strerror or err}", where=str(path),
                        fix="check the file permissions") from None
    if not raw.startswith(_GZIP_SIGNATURE):
        if path.suffix == ".gz":
            raise DataError("file is named .gz but is not gzip-compressed", where=str(path),
                            fix=_IDX_FIX)
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:
        raise DataError(f"corrupt or truncated gzip stream ({err})", where=str(path),
                        fix=_IDX_FIX) from None


def read_idx(path: str | os.PathLike[str], ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a uint8 array of the shape its header declares.

    ``ndim``, when given, is the number of dimensions the file must have (3 for an image file,
    magic ``0x00000803``; 1 for a label file, magic ``0x00000801``). Any deviation from the
    format — bad magic, unsupported element type, wrong dimension count, a payload shorter or
    longer than the header declares — raises :class:`DataError` naming the file.
    """
    p = Path(path)
    data = _read_bytes(p)
    where = str(p)
    if len(data) < 4:
        raise DataError(f"file too short for an IDX header: {len(data)} bytes, need at least 4",
                        where=where, fix=_IDX_FIX)
    zero, dtype_code, nd = struct.unpack(">HBB", data[:4])
    if zero != 0:
        raise DataError(f"bad IDX magic number 0x{data[:4].hex()} (must start with 0x0000)",
                        where=where, fix=_IDX_FIX)
    if dtype_code != IDX_UBYTE:
        raise DataError(f"unsupported IDX element type 0x{dtype_code:02x} (only 0x08 unsigned "
                        f"byte is supported)", where=where, fix=_IDX_FIX)
    if ndim is not None and nd != ndim:
        expected_magic = (IDX_UBYTE << 8) | ndim
        raise DataError(f"IDX file has {nd} dimension(s), expected {ndim} (magic "
                        f"0x{data[:4].hex()}, expected 0x{expected_magic:08x})",
                        where=where, fix="check that image and label files are not swapped")
    if nd == 0:
        raise DataError("IDX file declares 0 dimensions", where=where, fix=_IDX_FIX)
    header_len = 4 + 4 * nd
    if len(data) < header_len:
        raise DataError(f"truncated IDX header: {len(data)} bytes, expected {header_len}",
                        where=where, fix=_IDX_FIX)
    dims = struct.unpack(f">{nd}I", data[4:header_len])
    expected = header_len + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "oversized"
        raise DataError(f"{kind} IDX file: header declares shape {tuple(dims)} = {expected} bytes, "
                        f"file has {len(data)} bytes", where=where, fix=_IDX_FIX)
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims).copy()


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write a uint8 ``array`` as an IDX file; gzip-compressed when ``path`` ends in ``.gz``.

    Returns the path written. Intended for fixtures and for converting small datasets.
    """
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        raise DataError(f"write_idx needs a uint8 array, got {arr.dtype}", where=str(path),
                        fix="convert with array.astype(np.uint8) after checking the value range")
    if not 1 <= arr.ndim <= 255:
        raise DataError(f"write_idx needs 1..255 dimensions, got {arr.ndim}", where=str(path))
    header = struct.pack(">HBB", 0, IDX_UBYTE, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    payload = header + np.ascontiguousarray(arr).tobytes()
    p = Path(path)
    if p.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    p.write_bytes(payload)
    return p
