"""pytest wiring for the HLS kernel tests: start all testbench builds after collection."""
from __future__ import annotations

import os

import pytest

from . import tbutil
from .tbutil import AP_TYPES, CXX


def pytest_collection_finish(session):
    if AP_TYPES is None or CXX is None:
        return
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return  # each xdist worker collects everything but runs a share: build lazily there
    # start every build the selected tests declare (params exposing .specs())
    for item in session.items:
        cs = getattr(item, "callspec", None)
        if cs is None:
            continue
        for v in cs.params.values():
            specs = getattr(v, "specs", None)
            if callable(specs):
                for s in specs():
                    tbutil.builder().submit(s)


def pytest_sessionfinish(session, exitstatus):
    tbutil.shutdown()


@pytest.fixture(scope="session")
def tb_builder():
    if AP_TYPES is None:
        pytest.skip("hls4ml ap_types headers not installed (pip install abcn-hw[hls])")
    if CXX is None:
        pytest.skip("g++ not found")
    return tbutil.builder()


