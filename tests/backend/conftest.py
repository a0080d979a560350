"""Shared fixtures of the backend tests: exported models and compiled build dirs (session scope,
so each g++ build happens once)."""
from __future__ import annotations

import os
import sys
import warnings

import pytest

sys.path.insert(0, os.path.dirname(__file__))
warnings.filterwarnings("ignore")


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("backend")


@pytest.fixture(scope="session")
def tfc(workdir):
    """(exported path, inputs, build dir) of BNN-PYNQ TFC 1W1A."""
    from _models import bnn_pynq

    from abcn_hw.backend import compile

    path, x = bnn_pynq("tfc_1w1a", str(workdir / "tfc_1w1a.onnx"))
    build = workdir / "build_tfc"
    compile(path, build)
    return path, x, build


@pytest.fixture(scope="session")
def lenet33(workdir):
    from _models import zoo

    from abcn_hw.backend import compile

    path, x = zoo("lenet", 3, 3, str(workdir / "lenet33.onnx"))
    build = workdir / "build_lenet33"
    compile(path, build)
    return path, x, build
