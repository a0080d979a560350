"""Size limits checked before anything is generated (a model file is untrusted input).

A lowered graph could ask for gigabytes of weights or an enormous feature map; the backend
refuses such a model with :class:`abcn_hw.errors.UnsupportedModelError` before reading weights
into generated sources or writing any file. The limits are far above every zoo / BNN-PYNQ model
(CNV 1W1A: 1.5 Mbit of weights, 3 kB of thresholds) and keep the generated headers, the g++ build
and the C simulation's memory bounded.
"""
from __future__ import annotations

#: weight bits of one layer (M * O * K), 64 Mibit = 8 MiB
MAX_LAYER_WEIGHT_BITS = 1 << 26
#: weight bits of the whole network, 256 Mibit = 32 MiB
MAX_TOTAL_WEIGHT_BITS = 1 << 28
#: threshold entries (N' * O) of one layer
MAX_LAYER_THRESHOLDS = 1 << 20
#: threshold entries of the whole network
MAX_TOTAL_THRESHOLDS = 1 << 22
#: elements of one tensor per image (input, feature maps, accumulators), 16 Mi
MAX_TENSOR_ELEMENTS = 1 << 24
#: hardware layers
MAX_LAYERS = 256
#: per-layer weight / activation bases
MAX_BASES = 16
#: kernel size, stride, padding
MAX_KERNEL = 32
#: PE / SIMD of one layer
MAX_FOLD = 4096
#: widest stream word / weight word in bits (AP_INT_MAX_W of the generated code; Vitis HLS allows 4096)
MAX_WORD_BITS = 4096
