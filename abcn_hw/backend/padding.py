"""Zero padding of binary convolutions: the border correction table of abcn::ZeroPadCorrection.

The window generator pads a bit feature map with bit 0 (-1 in every base). A convolution that pads
with the value 0 (``XnorPopcountConv`` with ``zero_pad = 1``: PyTorch / Brevitas padding) is exact
after adding, per output channel o, weight base m and output pixel (y, x), the sum of the weights
(+-1) on the padded taps of the window. Which taps are padded depends on y only through the
(top, bottom) overlap of the kernel rows with the padding, and on x through the (left, right)
overlap: a row class per output row, a column class per output column, one table entry per
(m, o, row class, column class).
"""
from __future__ import annotations

import numpy as np

from .ir import ConvGeom, PadCorrection


def _classes(out: int, size: int, k: int, s: int, p0: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per output index its class, and per class the mask (k,) of kernel taps on the padding."""
    keys: dict[tuple[int, int], int] = {}
    cls = np.zeros(out, np.int64)
    masks: list[np.ndarray] = []
    for y in range(out):
        pos = y * s - p0 + np.arange(k)
        before, after = int((pos < 0).sum()), int((pos >= size).sum())
        if (before, after) not in keys:
            keys[(before, after)] = len(masks)
            masks.append((pos < 0) | (pos >= size))
        cls[y] = keys[(before, after)]
    return cls, masks


def border_classes(g: ConvGeom) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, list[np.ndarray]]:
    """(row class per output row, padded-kernel-row mask per row class, the same for columns)."""
    row, rmask = _classes(g.ofm_h, g.ifm_h, g.kh, g.sh, g.pt)
    col, cmask = _classes(g.ofm_w, g.ifm_w, g.kw, g.sw, g.pl)
    return row, rmask, col, cmask


def pad_correction(bits: np.ndarray, geom: ConvGeom, c: int) -> PadCorrection:
    """``bits`` (M, O, K) weight bits in the kernel's K order (ky, kx, c) -> the correction table."""
    m, o, _ = bits.shape
    g = geom
    row, rmask, col, cmask = border_classes(g)
    w = (2 * bits.astype(np.int64) - 1).reshape(m, o, g.kh, g.kw, c).sum(axis=4)  # (M, O, KH, KW)
    table = np.zeros((m, o, len(rmask), len(cmask)), np.int64)
    for i, rm in enumerate(rmask):
        for j, cm in enumerate(cmask):
            on_pad = rm[:, None] | cm[None, :]  # (KH, KW)
            table[:, :, i, j] = (w * on_pad).sum(axis=(2, 3))
    return PadCorrection(row, col, table)
