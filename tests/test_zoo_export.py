"""The model zoo in export/: every entry's export is provably and measurably bit-exact, lowers
exactly, compiles and verifies bit-exact.

The zoo holds the QONNX exports, not the PyTorch checkpoints, so the PyTorch side is re-measured
by running each exported graph with PyTorch's own CPU kernels (oneDNN / MKL convolutions and
matrix products; the ABC layers' eval forward runs exactly these operations in this order) against
onnxruntime's (the qonnx executor), instead of trusting the ``export_bit_exact`` flag stored in
the entry's JSON.
"""
import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import numpy_helper

from abcn_hw.data import load_dataset

ZOO = Path(__file__).resolve().parents[1] / "export"
ENTRIES = sorted(p.stem for p in ZOO.glob("*.onnx"))
LFC_SLOW = [pytest.param(n, marks=pytest.mark.slow) if n.startswith("lfc") else n for n in ENTRIES]


def _attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _conv_pool_pads(pads) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    top, left, bottom, right = pads
    return (left, right, top, bottom), (top, left)


def _torch_run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """Execute the exported graph node by node with torch CPU operations (float32)."""
    env = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in model.graph.initializer}
    env[model.graph.input[0].name] = torch.from_numpy(x)
    for node in model.graph.node:
        a, ins = _attrs(node), [env[i] if i else None for i in node.input]
        op = node.op_type
        if op == "Quant":  # qonnx Quant: clip(round(x / s + z), lo, hi) - z, times s (round half to even)
            v, s, z, bits = ins[0], ins[1], ins[2], int(ins[3])
            lo = -(2 ** (bits - 1)) + a.get("narrow", 0) if a.get("signed", 1) else 0
            hi = 2 ** (bits - 1) - 1 if a.get("signed", 1) else 2 ** bits - 1 - a.get("narrow", 0)
            assert a.get("rounding_mode", b"ROUND") in (b"ROUND", "ROUND")
            y = (torch.clamp(torch.round(v / s + z), lo, hi) - z) * s
        elif op == "BipolarQuant":  # sign with 0 -> +1, times the scale
            y = torch.where(ins[0] >= 0, 1.0, -1.0) * ins[1]
        elif op == "Add":
            y = ins[0] + ins[1]
        elif op == "Mul":
            y = ins[0] * ins[1]
        elif op == "Conv":
            assert a.get("group", 1) == 1 and list(a.get("dilations", [1, 1])) == [1, 1]
            pad4, sym = _conv_pool_pads(a.get("pads", [0, 0, 0, 0]))
            v = ins[0] if pad4 == (sym[1], sym[1], sym[0], sym[0]) else F.pad(ins[0], pad4)
            y = F.conv2d(v, ins[1], ins[2] if len(ins) > 2 else None, stride=tuple(a.get("strides", [1, 1])),
                         padding=sym if v is ins[0] else 0)
        elif op == "MaxPool":
            assert not a.get("ceil_mode", 0) and list(a.get("pads", [0, 0, 0, 0])) == [0, 0, 0, 0]
            y = F.max_pool2d(ins[0], tuple(a["kernel_shape"]), tuple(a.get("strides", a["kernel_shape"])))
        elif op == "MatMul":
            y = torch.matmul(ins[0], ins[1])
        elif op == "Transpose":
            y = ins[0].permute(*a["perm"])
        elif op == "Flatten":
            y = torch.flatten(ins[0], a.get("axis", 1))
        else:
            raise AssertionError(f"{op} is not expected in a zoo export")
        env[node.output[0]] = y
    return env[model.graph.output[0].name].numpy()


def zoo_data(meta: dict) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of the entry's dataset: 300 digits of the bundled MNIST subset, or the 32
    stored Fashion-MNIST test images (export/fashion-mnist-test32.md: CI machines do not have the
    dataset)."""
    if meta["dataset"] == "fashion-mnist":
        with np.load(ZOO / "fashion-mnist-test32.npz") as f:
            return (f["images"].astype(np.float32) / np.float32(255.0))[:, None], f["labels"].astype(np.int64)
    test = load_dataset("mnist", limit_train=1, limit_test=300).test
    return test.images, test.labels


def zoo_inputs(meta: dict) -> np.ndarray:
    return zoo_data(meta)[0]


def test_zoo_is_complete():
    assert {"lenet-1x1", "lenet-3x3", "lfc-1x1", "lfc-3x3", "lenet-fashion-1x1", "lenet-fashion-3x3",
            "lenet-fashion-5x5"} <= set(ENTRIES)
    for name in ENTRIES:
        meta = json.loads((ZOO / f"{name}.json").read_text())
        for key in ("dataset", "split", "test_accuracy", "seed", "command", "export_bit_exact"):
            assert key in meta, (name, key)
        assert meta["export_test_accuracy"] == meta["test_accuracy"]
        if meta["dataset"] == "fashion-mnist":  # trained on all of Fashion-MNIST, with the budget stated
            assert meta["split"] == {"train": 60000, "test": 10000} and "--data-dir" in meta["command"]
            assert "--limit-train" not in meta["command"] and f"{meta['epochs']} epochs" in meta["budget"]
        # the command pins batch-norm re-estimation, so it reproduces the entry whatever the default
        pinned = re.findall(r"--bn-reestimate (\d+)", meta["command"])
        assert len(pinned) == 1, (name, meta["command"])
        assert int(pinned[0]) == (meta.get("recipe") or {}).get("bn_reestimate_batches", 0), name


def test_stored_fashion_images_are_the_loader_input():
    """The stored images scaled as the IDX loader scales them (uint8 / 255 in float32)."""
    with np.load(ZOO / "fashion-mnist-test32.npz") as f:
        images, labels = f["images"], f["labels"]
    assert images.shape == (32, 28, 28) and images.dtype == np.uint8 and labels.shape == (32,)
    assert labels.max() <= 9 and len(set(labels.tolist())) == 10  # every class present
    x = zoo_inputs({"dataset": "fashion-mnist"})
    assert x.shape == (32, 1, 28, 28) and x.dtype == np.float32 and np.array_equal(np.round(x * 255), images[:, None])


@pytest.mark.parametrize("name", LFC_SLOW)
def test_zoo_export_is_bit_exact_in_pytorch_and_onnxruntime(name):
    """Re-measured, not read from the JSON: PyTorch's kernels and onnxruntime's give bit-equal
    logits on 300 test digits (every layer of these 4-bit fixed-scale models keeps its partial sums
    below 2^24, which the compile test below checks from the exported scales)."""
    from abcn_hw.qonnx_export import execute_qonnx

    model = onnx.load(str(ZOO / f"{name}.onnx"))
    meta = json.loads((ZOO / f"{name}.json").read_text())
    x, labels = zoo_data(meta)
    with torch.no_grad():
        ref = _torch_run(model, x)
    got = execute_qonnx(model, x)
    assert ref.dtype == got.dtype == np.float32 and ref.shape == got.shape == (len(x), 10)
    assert np.array_equal(ref, got), f"{int((ref != got).sum())} of {ref.size} logits differ"
    assert meta["export_bit_exact"] is True  # the stored flag agrees with the measurement
    # a loose sanity bound on few images (32 Fashion-MNIST images: one image is 3 points)
    assert abs(float((got.argmax(-1) == labels).mean()) - meta["export_test_accuracy"]) < (0.05 if len(x) >= 300 else 0.2)


@pytest.mark.parametrize("name", LFC_SLOW)
def test_zoo_entry_compiles_and_verifies_bit_exact(name, tmp_path):
    from abcn_hw.backend import compile as compile_project
    from abcn_hw.sim import verify

    meta = json.loads((ZOO / f"{name}.json").read_text())
    x = zoo_inputs(meta)
    compile_project(ZOO / f"{name}.onnx", tmp_path / "build")
    res = verify(ZOO / f"{name}.onnx", tmp_path / "build", x)
    assert res.ok and res.bit_exact and res.mismatches == 0 and res.lowering_exact
