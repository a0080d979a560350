"""User-written Brevitas nets (tests/compiler/_user_nets.py) compiled to HLS: convolutions and
linears with biases (hidden layers: folded into the thresholds; the last layer: its output affine)
and an MLP whose first QuantLinear reads the flattened 8-bit image (the integer-input MVU). Both
exporters; the C simulation equals the lowered graph, which equals the export, on every element."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "compiler"))
from _user_nets import user_net  # noqa: E402

from abcn_hw.backend import compile  # noqa: E402
from abcn_hw.sim import verify  # noqa: E402


def _compile_verify(tmp_path, kind: str, dynamo: bool, n: int = 64):
    path = str(tmp_path / f"{kind}.onnx")
    _, x = user_net(kind, dynamo, path=path)
    compile(path, tmp_path / "build")
    res = verify(path, tmp_path / "build", x[:n])
    assert res.images == n
    assert res.bit_exact and res.mismatches == 0, res.summary()
    assert res.lowering_exact and res.contract_ok, res.summary()
    assert res.lowered_vs_exported["output_equal"] == 1.0 and res.prediction_agreement == 1.0
    assert res.cycles_match, res.cycles


@pytest.mark.parametrize("kind, dynamo", [("bias_conv", True), ("mlp", False)], ids=str)
def test_user_net_compiles_bit_exact(tmp_path, kind, dynamo):
    _compile_verify(tmp_path, kind, dynamo)


@pytest.mark.slow
@pytest.mark.parametrize("kind, dynamo", [("bias_conv", False), ("mlp", True), ("bias_conv_final", True),
                                          ("bias_conv_dyadic", False)], ids=str)
def test_user_net_compiles_bit_exact_more(tmp_path, kind, dynamo):
    _compile_verify(tmp_path, kind, dynamo, 200)
