"""Suite-wide settings.

Under pytest-xdist (``make test``: ``-n 2``) every worker process runs on its share of the cores,
yet PyTorch (OpenMP, MKL) starts one thread per core in each of them: on 2 cores, two workers
then run four compute threads whose OpenMP spin-waits burn CPU the other worker needs
(tests/test_models.py, -n 0 next to other work: 94 CPU-s with torch's default 2 threads, 25 CPU-s
with 1). So each worker, and the processes it starts (CLI runs, the notebook kernel), computes on
one thread unless OMP_NUM_THREADS / MKL_NUM_THREADS are set. Results do not depend on it: the
tests assert only what holds for any thread count (users run with every core)."""
from __future__ import annotations

import os
import sys

if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")
    if "torch" in sys.modules:  # imported before this file (a plugin): too late for the variables
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
