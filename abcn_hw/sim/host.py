"""Host side of the generated accelerator: the stream layout and its packing are owned by
:mod:`abcn_hw.backend.io` (the compiler writes host/io.json with it); this module is its name on
the simulation side, kept for callers of ``abcn_hw.sim.host``."""
from __future__ import annotations

from ..backend.io import (MAGIC, bits_to_chunks, chunk_fields_to_int, chunks_to_bits, decode_tap,  # noqa: F401
                          fields_to_int, input_file, int_fields, int_fields_to_chunks, pack_input, pack_input_words,
                          read_chunks, run_post, run_pre, unpack_output_chunks)
