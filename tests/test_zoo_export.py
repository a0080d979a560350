"""The model zoo in export/: every entry lowers exactly, compiles and verifies bit-exact."""
import json
from pathlib import Path

import pytest

from abcn_hw.data import load_dataset

ZOO = Path(__file__).resolve().parents[1] / "export"
ENTRIES = sorted(p.stem for p in ZOO.glob("*.onnx"))


def test_zoo_is_complete():
    assert {"lenet-1x1", "lenet-3x3", "lfc-1x1", "lfc-3x3"} <= set(ENTRIES)
    for name in ENTRIES:
        meta = json.loads((ZOO / f"{name}.json").read_text())
        for key in ("dataset", "split", "test_accuracy", "seed", "command", "export_bit_exact"):
            assert key in meta, (name, key)
        assert meta["export_bit_exact"] and meta["export_test_accuracy"] == meta["test_accuracy"]


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n.startswith("lfc") else n
                                  for n in ENTRIES])
def test_zoo_entry_compiles_and_verifies_bit_exact(name, tmp_path):
    from abcn_hw.backend import compile as compile_project
    from abcn_hw.sim import verify

    x = load_dataset("mnist", limit_train=1, limit_test=100).test.images
    compile_project(ZOO / f"{name}.onnx", tmp_path / "build")
    res = verify(ZOO / f"{name}.onnx", tmp_path / "build", x)
    assert res.ok and res.bit_exact and res.mismatches == 0 and res.lowering_exact
