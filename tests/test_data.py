"""Tests for the dataset layer (abcn_hw.data): IDX, CIFAR-10 batches, load_dataset."""
from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from abcn_hw.data import (
    DATASETS,
    Dataset,
    Split,
    bundled_mnist_dir,
    load_dataset,
    read_cifar_batch,
    read_idx,
    to_tensor_dataset,
    write_cifar_batch,
    write_idx,
)
from abcn_hw.data.cifar import CIFAR_TEST_BATCH, CIFAR_TRAIN_BATCHES
from abcn_hw.errors import DataError, UsageError

TEST_CLASS_COUNTS = [217, 245, 186, 204, 191, 184, 203, 188, 189, 193]


# --------------------------------------------------------------------------- fixtures / helpers

@pytest.fixture(scope="module")
def bundled() -> Dataset:
    return load_dataset("mnist")


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _write_mnist_dir(root: Path, n_train: int = 12, n_test: int = 7, gz: bool = True,
                     seed: int = 0) -> dict[str, np.ndarray]:
    """Write a tiny MNIST-style IDX folder; return the arrays written."""
    rng = _rng(seed)
    ext = ".gz" if gz else ""
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    root.mkdir(parents=True, exist_ok=True)
    for stem, arr in arrays.items():
        write_idx(root / f"{stem}{ext}", arr)
    return arrays


def _write_cifar_dir(root: Path, per_batch: int = 5, seed: int = 0) -> dict[str, tuple]:
    """Write all six tiny CIFAR-10 batches into ``root``; return {name: (images, labels)}."""
    rng = _rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in (*CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH):
        imgs = rng.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8)
        labs = rng.integers(0, 10, per_batch)
        write_cifar_batch(root / name, imgs, labs)
        out[name] = (imgs, labs)
    return out


# --------------------------------------------------------------------------- bundled subset

def test_bundled_files_present() -> None:
    d = bundled_mnist_dir()
    names = sorted(p.name for p in d.iterdir())
    assert names == ["PROVENANCE.md", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                     "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]


def test_bundled_subset_shapes_and_values(bundled: Dataset) -> None:
    assert bundled.name == "mnist"
    assert bundled.source.startswith("bundled MNIST subset (8,000 train / 2,000 test")
    assert bundled.num_classes == 10
    assert bundled.input_shape == (1, 28, 28)
    assert bundled.train.images.shape == (8000, 1, 28, 28)
    assert bundled.test.images.shape == (2000, 1, 28, 28)
    assert len(bundled.train) == 8000 and len(bundled.test) == 2000
    for split in (bundled.train, bundled.test):
        assert split.images.dtype == np.float32
        assert split.labels.dtype == np.int64
        assert split.labels.shape == (split.images.shape[0],)
        assert split.images.min() == 0.0 and split.images.max() == 1.0
        # values are exactly uint8 / 255
        np.testing.assert_array_equal(np.round(split.images * 255) / np.float32(255), split.images)
        assert set(np.unique(split.labels).tolist()) == set(range(10))
    # real digits: mostly background, some ink
    assert 0.05 < float(bundled.test.images.mean()) < 0.25


def test_bundled_test_class_counts(bundled: Dataset) -> None:
    assert np.bincount(bundled.test.labels, minlength=10).tolist() == TEST_CLASS_COUNTS


def test_bundled_matches_raw_idx(bundled: Dataset) -> None:
    raw = read_idx(bundled_mnist_dir() / "t10k-images-idx3-ubyte.gz", ndim=3)
    assert raw.dtype == np.uint8 and raw.shape == (2000, 28, 28)
    np.testing.assert_array_equal(bundled.test.images[:, 0], raw.astype(np.float32) / 255)


def test_limits() -> None:
    ds = load_dataset("MNIST", limit_train=100, limit_test=30)
    full = load_dataset("mnist")
    assert len(ds.train) == 100 and len(ds.test) == 30
    np.testing.assert_array_equal(ds.test.labels, full.test.labels[:30])
    big = load_dataset("mnist", limit_test=10**9)
    assert len(big.test) == 2000


@pytest.mark.parametrize("bad", [0, -3, 2.5, "10", True])
def test_bad_limit_is_usage_error(bad: object) -> None:
    with pytest.raises(UsageError, match="--limit-train"):
        load_dataset("mnist", limit_train=bad)  # type: ignore[arg-type]


def test_to_tensor_dataset(bundled: Dataset) -> None:
    import torch

    small = Split(bundled.test.images[:4], bundled.test.labels[:4])
    tds = to_tensor_dataset(small)
    x, y = tds[0]
    assert len(tds) == 4
    assert x.dtype == torch.float32 and tuple(x.shape) == (1, 28, 28)
    assert y.dtype == torch.int64 and int(y) == int(bundled.test.labels[0])


# --------------------------------------------------------------------------- IDX

@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("shape", [(7,), (3, 28, 28), (2, 3, 4, 5)])
def test_idx_round_trip(tmp_path: Path, suffix: str, shape: tuple[int, ...]) -> None:
    arr = _rng().integers(0, 256, shape, dtype=np.uint8)
    path = write_idx(tmp_path / f"x-idx{suffix}", arr)
    raw = path.read_bytes()
    assert raw.startswith(b"\x1f\x8b") == (suffix == ".gz")
    back = read_idx(path, ndim=len(shape))
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, arr)


def test_idx_header_layout(tmp_path: Path) -> None:
    write_idx(tmp_path / "l", np.array([1, 2, 3], np.uint8))
    write_idx(tmp_path / "i", np.zeros((2, 28, 28), np.uint8))
    assert (tmp_path / "l").read_bytes() == bytes.fromhex("00000801 00000003 010203")
    header = bytes.fromhex("00000803 00000002 0000001c 0000001c")
    assert (tmp_path / "i").read_bytes()[:16] == header


def test_idx_truncated_raw(tmp_path: Path) -> None:
    p = write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8))
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(DataError) as ei:
        read_idx(p)
    msg = str(ei.value)
    assert str(p) in msg and "truncated" in msg
    assert str(16 + 4 * 784) in msg and str(16 + 4 * 784 - 10) in msg


def test_idx_truncated_gzip_stream(tmp_path: Path) -> None:
    p = write_idx(tmp_path / "train-images-idx3-ubyte.gz",
                  _rng().integers(0, 256, (4, 28, 28), dtype=np.uint8))
    p.write_bytes(p.read_bytes()[:-20])
    with pytest.raises(DataError, match=str(p).replace("\\", "\\\\")):
        read_idx(p)


def test_idx_truncated_inside_gzip(tmp_path: Path) -> None:
    payload = (tmp_path / "full")
    write_idx(payload, np.zeros((5,), np.uint8))
    p = tmp_path / "labels.gz"
    p.write_bytes(gzip.compress(payload.read_bytes()[:-1]))
    with pytest.raises(DataError) as ei:
        read_idx(p, ndim=1)
    assert str(p) in str(ei.value) and "13" in str(ei.value) and "12" in str(ei.value)


def test_idx_oversized(tmp_path: Path) -> None:
    p = write_idx(tmp_path / "labels", np.zeros((5,), np.uint8))
    p.write_bytes(p.read_bytes() + b"\x00")
    with pytest.raises(DataError, match="oversized") as ei:
        read_idx(p)
    assert str(p) in str(ei.value)


@pytest.mark.parametrize("header", [
    bytes.fromhex("01000801"),  # non-zero leading bytes
    bytes.fromhex("00000901"),  # signed byte element type
    bytes.fromhex("00000d01"),  # float element type
])
def test_idx_bad_magic(tmp_path: Path, header: bytes) -> None:
    p = tmp_path / "bad-idx1-ubyte"
    p.write_bytes(header + bytes.fromhex("00000002 0102"))
    with pytest.raises(DataError) as ei:
        read_idx(p)
    assert str(p) in str(ei.value)


def test_idx_wrong_ndim(tmp_path: Path) -> None:
    p = write_idx(tmp_path / "labels", np.zeros((5,), np.uint8))
    with pytest.raises(DataError, match="expected 3") as ei:
        read_idx(p, ndim=3)
    assert "0x00000803" in str(ei.value) and str(p) in str(ei.value)


def test_idx_short_header(tmp_path: Path) -> None:
    p = tmp_path / "tiny"
    p.write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="too short"):
        read_idx(p)
    p.write_bytes(bytes.fromhex("00000803 00000001"))
    with pytest.raises(DataError, match="truncated IDX header"):
        read_idx(p)


def test_idx_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "nope-idx3-ubyte.gz"
    with pytest.raises(DataError, match="not found") as ei:
        read_idx(p)
    assert str(p) in str(ei.value)


def test_idx_gz_name_but_not_gzip(tmp_path: Path) -> None:
    p = write_idx(tmp_path / "raw", np.zeros((3,), np.uint8))
    q = tmp_path / "labels.gz"
    q.write_bytes(p.read_bytes())
    with pytest.raises(DataError, match="not gzip"):
        read_idx(q)


def test_write_idx_rejects_non_uint8(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="uint8"):
        write_idx(tmp_path / "x", np.zeros(3, np.float32))


# --------------------------------------------------------------------------- MNIST-style folders

@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_folder_round_trip(tmp_path: Path, gz: bool, name: str) -> None:
    arrays = _write_mnist_dir(tmp_path, gz=gz)
    ds = load_dataset(name, data_dir=tmp_path)
    assert ds.name == name and ds.source == str(tmp_path.resolve())
    assert ds.input_shape == (1, 28, 28)
    np.testing.assert_array_equal(ds.train.images[:, 0] * 255,
                                  arrays["train-images-idx3-ubyte"].astype(np.float32))
    np.testing.assert_array_equal(ds.test.labels, arrays["t10k-labels-idx1-ubyte"])
    assert ds.train.images.dtype == np.float32 and ds.test.labels.dtype == np.int64


def test_idx_folder_mixed_compression(tmp_path: Path) -> None:
    _write_mnist_dir(tmp_path, gz=True)
    gz = tmp_path / "t10k-images-idx3-ubyte.gz"
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(gzip.decompress(gz.read_bytes()))
    gz.unlink()
    assert len(load_dataset("fashion_mnist", data_dir=tmp_path).test) == 7


def test_idx_folder_missing_file_lists_names(tmp_path: Path) -> None:
    _write_mnist_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as ei:
        load_dataset("mnist", data_dir=tmp_path)
    msg = str(ei.value)
    assert "t10k-labels-idx1-ubyte" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert str(tmp_path) in msg and "--data-dir" in msg


def test_idx_folder_count_mismatch(tmp_path: Path) -> None:
    _write_mnist_dir(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(11, np.uint8))
    with pytest.raises(DataError, match="count mismatch") as ei:
        load_dataset("mnist", data_dir=tmp_path)
    msg = str(ei.value)
    assert "train-labels-idx1-ubyte.gz" in msg and "train-images-idx3-ubyte.gz" in msg
    assert "12" in msg and "11" in msg


def test_idx_folder_label_out_of_range(tmp_path: Path) -> None:
    _write_mnist_dir(tmp_path)
    labels = np.zeros(7, np.uint8)
    labels[3] = 10
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    with pytest.raises(DataError, match="outside 0..9") as ei:
        load_dataset("mnist", data_dir=tmp_path)
    assert "t10k-labels-idx1-ubyte.gz" in str(ei.value)


def test_idx_folder_swapped_files(tmp_path: Path) -> None:
    _write_mnist_dir(tmp_path)
    img = tmp_path / "train-images-idx3-ubyte.gz"
    lab = tmp_path / "train-labels-idx1-ubyte.gz"
    data_img, data_lab = img.read_bytes(), lab.read_bytes()
    img.write_bytes(data_lab)
    lab.write_bytes(data_img)
    with pytest.raises(DataError, match="dimension") as ei:
        load_dataset("mnist", data_dir=tmp_path)
    assert str(img) in str(ei.value)


def test_idx_folder_wrong_image_size(tmp_path: Path) -> None:
    _write_mnist_dir(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((12, 32, 32), np.uint8))
    with pytest.raises(DataError, match="28x28"):
        load_dataset("mnist", data_dir=tmp_path)


def test_data_dir_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as ei:
        load_dataset("mnist", data_dir=tmp_path / "absent")
    assert str(tmp_path / "absent") in str(ei.value)


# --------------------------------------------------------------------------- CIFAR-10

@pytest.mark.parametrize("subdir", ["", "cifar-10-batches-py"])
def test_cifar_round_trip(tmp_path: Path, subdir: str) -> None:
    written = _write_cifar_dir(tmp_path / subdir if subdir else tmp_path)
    ds = load_dataset("cifar10", data_dir=tmp_path)
    assert ds.name == "cifar10" and ds.input_shape == (3, 32, 32) and ds.num_classes == 10
    assert ds.train.images.shape == (25, 3, 32, 32) and ds.test.images.shape == (5, 3, 32, 32)
    assert ds.source.endswith(subdir)
    train_imgs = np.concatenate([written[n][0] for n in CIFAR_TRAIN_BATCHES])
    train_labs = np.concatenate([written[n][1] for n in CIFAR_TRAIN_BATCHES])
    np.testing.assert_array_equal(ds.train.images * 255, train_imgs.astype(np.float32))
    np.testing.assert_array_equal(ds.train.labels, train_labs)
    np.testing.assert_array_equal(ds.test.images * 255,
                                  written[CIFAR_TEST_BATCH][0].astype(np.float32))
    assert ds.train.images.dtype == np.float32 and ds.train.labels.dtype == np.int64


def test_cifar_standard_layout(tmp_path: Path) -> None:
    """The writer produces the official dict layout with channel-major rows of 3072 bytes."""
    imgs = np.zeros((2, 3, 32, 32), np.uint8)
    imgs[1, 0, 0, 0], imgs[1, 1, 0, 0], imgs[1, 2, 31, 31] = 11, 22, 33
    p = write_cifar_batch(tmp_path / "data_batch_1", imgs, [3, 7])
    with p.open("rb") as f:
        obj = pickle.load(f, encoding="bytes")
    assert set(obj) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert obj[b"labels"] == [3, 7]
    assert obj[b"data"].shape == (2, 3072) and obj[b"data"].dtype == np.uint8
    assert obj[b"data"][1, 0] == 11 and obj[b"data"][1, 1024] == 22 and obj[b"data"][1, 3071] == 33


def test_cifar_legacy_numpy_core_pickle(tmp_path: Path) -> None:
    """Original CIFAR files name numpy.core.multiarray._reconstruct; they must load."""
    imgs = _rng().integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    p = write_cifar_batch(tmp_path / "test_batch", imgs, [0, 1, 2])
    data = p.read_bytes()
    assert b"numpy._core.multiarray\n_reconstruct" in data
    p.write_bytes(data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))
    back, labels = read_cifar_batch(p)
    np.testing.assert_array_equal(back, imgs)
    assert labels.tolist() == [0, 1, 2]


def test_cifar_protocol5_pickle(tmp_path: Path) -> None:
    p = tmp_path / "test_batch"
    data = _rng().integers(0, 256, (2, 3072), dtype=np.uint8)
    p.write_bytes(pickle.dumps({b"data": data, b"labels": [4, 5]}, protocol=5))
    back, labels = read_cifar_batch(p)
    np.testing.assert_array_equal(back.reshape(2, -1), data)
    assert labels.tolist() == [4, 5]


def test_cifar_limits(tmp_path: Path) -> None:
    _write_cifar_dir(tmp_path)
    ds = load_dataset("cifar-10", data_dir=tmp_path, limit_train=7, limit_test=2)
    assert len(ds.train) == 7 and len(ds.test) == 2


class _Evil:
    """Unpickling this would run a shell command that creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):  # noqa: D105
        return (os.system, (f"touch '{self.marker}'",))


class _EvilEval:
    def __reduce__(self):  # noqa: D105
        return (eval, ("__import__('os').getcwd()",))


def test_cifar_malicious_pickle_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    p = tmp_path / "test_batch"
    p.write_bytes(pickle.dumps({b"data": _Evil(marker), b"labels": [0]}, protocol=2))
    assert b"system" in p.read_bytes()
    with pytest.raises(DataError, match="refusing") as ei:
        read_cifar_batch(p)
    assert "system" in str(ei.value) and str(p) in str(ei.value)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_cifar_malicious_eval_refused(tmp_path: Path, protocol: int) -> None:
    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps(_EvilEval(), protocol=protocol))
    # protocols < 3 spell the module __builtin__ (Python 2 name)
    refused = r"refusing to load pickle: it references (__builtin__|builtins)\.eval"
    with pytest.raises(DataError, match=refused):
        read_cifar_batch(p)


def test_cifar_malicious_batch_in_folder(tmp_path: Path) -> None:
    _write_cifar_dir(tmp_path)
    marker = tmp_path / "pwned"
    (tmp_path / "data_batch_3").write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(DataError) as ei:
        load_dataset("cifar10", data_dir=tmp_path)
    assert "data_batch_3" in str(ei.value)
    assert not marker.exists()


def test_cifar_missing_batch(tmp_path: Path) -> None:
    _write_cifar_dir(tmp_path)
    (tmp_path / "data_batch_4").unlink()
    with pytest.raises(DataError, match="data_batch_4") as ei:
        load_dataset("cifar10", data_dir=tmp_path)
    assert str(tmp_path) in str(ei.value)


def test_cifar_no_batches(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cifar-10-batches-py") as ei:
        load_dataset("cifar10", data_dir=tmp_path)
    assert "test_batch" in str(ei.value)


@pytest.mark.parametrize("record, match", [
    ({b"labels": [0]}, "b'data'"),
    ({b"data": np.zeros((1, 3072), np.uint8)}, "b'labels'"),
    ({b"data": np.zeros((1, 3072), np.uint8), b"fine_labels": [0]}, "CIFAR-100"),
    ({b"data": np.zeros((1, 1024), np.uint8), b"labels": [0]}, "3072"),
    ({b"data": np.zeros((1, 3072), np.float32), b"labels": [0]}, "uint8"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "count mismatch"),
    ([1, 2, 3], "dict"),
])
def test_cifar_bad_content(tmp_path: Path, record: object, match: str) -> None:
    p = tmp_path / "test_batch"
    p.write_bytes(pickle.dumps(record, protocol=2))
    with pytest.raises(DataError, match=match) as ei:
        read_cifar_batch(p)
    assert str(p) in str(ei.value)


def test_cifar_truncated_and_garbage(tmp_path: Path) -> None:
    p = write_cifar_batch(tmp_path / "test_batch", np.zeros((2, 3, 32, 32), np.uint8), [1, 2])
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(DataError, match="not a valid") as ei:
        read_cifar_batch(p)
    assert str(p) in str(ei.value)
    p.write_bytes(b"this is not a pickle")
    with pytest.raises(DataError, match="not a valid"):
        read_cifar_batch(p)


def test_cifar_label_out_of_range(tmp_path: Path) -> None:
    _write_cifar_dir(tmp_path)
    write_cifar_batch(tmp_path / "data_batch_2", np.zeros((1, 3, 32, 32), np.uint8), [12])
    with pytest.raises(DataError, match="outside 0..9") as ei:
        load_dataset("cifar10", data_dir=tmp_path)
    assert "data_batch_2" in str(ei.value)


# --------------------------------------------------------------------------- names / usage

def test_dataset_names() -> None:
    assert DATASETS == ("mnist", "fashion-mnist", "cifar10")


def test_unknown_dataset_is_usage_error() -> None:
    with pytest.raises(UsageError) as ei:
        load_dataset("imagenet")
    msg = str(ei.value)
    assert "imagenet" in msg and all(n in msg for n in DATASETS)
    assert ei.value.exit_code == 2


@pytest.mark.parametrize("name, hint", [("fashion-mnist", "Fashion-MNIST"),
                                        ("cifar10", "cifar-10-batches-py")])
def test_unbundled_dataset_needs_data_dir(name: str, hint: str) -> None:
    with pytest.raises(DataError) as ei:
        load_dataset(name)
    msg = str(ei.value)
    assert "--data-dir" in msg and hint in msg and name in msg
