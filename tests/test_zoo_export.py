"""The model zoo in export/: every entry lowers exactly, compiles and verifies bit-exact."""
import json
from pathlib import Path

import numpy as np
import pytest

from abcn_hw.data import load_dataset

ZOO = Path(__file__).resolve().parents[1] / "export"
ENTRIES = sorted(p.stem for p in ZOO.glob("*.onnx"))


def zoo_inputs(meta: dict) -> np.ndarray:
    """Test images of the entry's dataset: the bundled MNIST subset, or the 32 stored Fashion-MNIST
    test images (export/fashion-mnist-test32.md: CI machines do not have the dataset)."""
    if meta["dataset"] == "fashion-mnist":
        with np.load(ZOO / "fashion-mnist-test32.npz") as f:
            return (f["images"].astype(np.float32) / np.float32(255.0))[:, None]
    return load_dataset("mnist", limit_train=1, limit_test=100).test.images


def test_zoo_is_complete():
    assert {"lenet-1x1", "lenet-3x3", "lfc-1x1", "lfc-3x3", "lenet-fashion-1x1", "lenet-fashion-3x3",
            "lenet-fashion-5x5"} <= set(ENTRIES)
    for name in ENTRIES:
        meta = json.loads((ZOO / f"{name}.json").read_text())
        for key in ("dataset", "split", "test_accuracy", "seed", "command", "export_bit_exact"):
            assert key in meta, (name, key)
        assert meta["export_bit_exact"] and meta["export_test_accuracy"] == meta["test_accuracy"]
        if meta["dataset"] == "fashion-mnist":
            assert meta["split"]["test"] == 10000 and "--data-dir" in meta["command"]


def test_stored_fashion_images_are_the_loader_input():
    """The stored images scaled as the IDX loader scales them (uint8 / 255 in float32)."""
    with np.load(ZOO / "fashion-mnist-test32.npz") as f:
        images, labels = f["images"], f["labels"]
    assert images.shape == (32, 28, 28) and images.dtype == np.uint8 and labels.shape == (32,)
    assert labels.max() <= 9 and len(set(labels.tolist())) == 10  # every class present
    x = zoo_inputs({"dataset": "fashion-mnist"})
    assert x.shape == (32, 1, 28, 28) and x.dtype == np.float32 and np.array_equal(np.round(x * 255), images[:, None])


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n.startswith("lfc") else n
                                  for n in ENTRIES])
def test_zoo_entry_compiles_and_verifies_bit_exact(name, tmp_path):
    from abcn_hw.backend import compile as compile_project
    from abcn_hw.sim import verify

    meta = json.loads((ZOO / f"{name}.json").read_text())
    x = zoo_inputs(meta)
    compile_project(ZOO / f"{name}.onnx", tmp_path / "build")
    res = verify(ZOO / f"{name}.onnx", tmp_path / "build", x)
    assert res.ok and res.bit_exact and res.mismatches == 0 and res.lowering_exact
