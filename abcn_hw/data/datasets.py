"""Dataset loading: bundled MNIST subset, MNIST / Fashion-MNIST IDX folders, CIFAR-10 batches.

All loaders return a :class:`Dataset` whose splits hold float32 images ``N x C x H x W`` in
``[0, 1]`` (``uint8 / 255``) and int64 labels in ``0..9``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from abcn_hw.data.cifar import (
    CIFAR_SUBDIR,
    CIFAR_TEST_BATCH,
    CIFAR_TRAIN_BATCHES,
    find_cifar_dir,
    read_cifar_batch,
)
from abcn_hw.data.idx import read_idx
from abcn_hw.errors import DataError, UsageError

if TYPE_CHECKING:
    from torch.utils.data import TensorDataset

__all__ = [
    "DATASETS",
    "IDX_FILES",
    "Dataset",
    "Split",
    "bundled_mnist_dir",
    "load_dataset",
    "to_tensor_dataset",
]

DATASETS = ("mnist", "fashion-mnist", "cifar10")
NUM_CLASSES = 10

#: Standard IDX file stems per split: (images, labels). Each may carry a ``.gz`` suffix.
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_IMAGE_HW = (28, 28)
_BUNDLED_SOURCE = "bundled MNIST subset (8,000 train / 2,000 test, abcn_hw/data/mnist_subset)"
_DOWNLOAD_HINT = {
    "mnist": "the MNIST IDX files",
    "fashion-mnist": "the Fashion-MNIST IDX files (github.com/zalandoresearch/fashion-mnist)",
}


@dataclass
class Split:
    """One split: ``images`` float32 ``N x C x H x W`` in [0, 1], ``labels`` int64 ``N``."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class Dataset:
    """A loaded dataset: train and test splits plus where they came from."""

    name: str
    train: Split
    test: Split
    source: str
    num_classes: int = NUM_CLASSES
    input_shape: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.input_shape:
            self.input_shape = tuple(int(d) for d in self.train.images.shape[1:])


def bundled_mnist_dir() -> Path:
    """Folder of the MNIST subset shipped inside the package (IDX, gzip)."""
    return Path(__file__).resolve().parent / "mnist_subset"


def to_tensor_dataset(split: Split) -> TensorDataset:
    """Wrap a split as ``torch.utils.data.TensorDataset(images float32, labels int64)``."""
    import torch
    from torch.utils.data import TensorDataset

    return TensorDataset(torch.from_numpy(np.ascontiguousarray(split.images, dtype=np.float32)),
                         torch.from_numpy(np.ascontiguousarray(split.labels, dtype=np.int64)))


def _normalise_name(name: str) -> str:
    """Map user spellings (``MNIST``, ``fashion_mnist``, ``cifar-10``) to a name in DATASETS."""
    key = str(name).strip().lower().replace("_", "-")
    aliases = {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10"}
    key = aliases.get(key, key)
    if key not in DATASETS:
        raise UsageError(f"unknown dataset {name!r}", where="dataset name",
                         fix=f"use one of: {', '.join(DATASETS)}")
    return key


def _check_limit(value: int | None, flag: str) -> int | None:
    """Validate a ``limit_*`` argument (None or a positive integer)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UsageError(f"{flag} must be a positive integer, got {value!r}", where=flag,
                         fix=f"pass {flag} N with N >= 1, or omit it to use the whole split")
    return int(value)


def _check_labels(labels: np.ndarray, where: str) -> np.ndarray:
    """Return ``labels`` as int64; DataError naming ``where`` if any is outside 0..9."""
    labels = labels.astype(np.int64)
    bad = (labels < 0) | (labels >= NUM_CLASSES)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"label {int(labels[i])} at record {i} is outside 0..{NUM_CLASSES - 1} "
                        f"({int(bad.sum())} bad label(s))", where=where,
                        fix="use a 10-class dataset file; labels must be 0..9")
    return labels


def _to_split(images: np.ndarray, labels: np.ndarray, limit: int | None,
              where: str) -> Split:
    """Apply ``limit``, check labels are in 0..9 and convert uint8 images to float32 in [0, 1]."""
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    labels = _check_labels(labels, where)
    out = images.astype(np.float32)
    out /= np.float32(255.0)
    return Split(images=out, labels=labels)


def _find_idx(directory: Path, stem: str) -> Path:
    """Return ``directory/stem`` or ``directory/stem.gz``; DataError listing both if neither."""
    candidates = (directory / stem, directory / f"{stem}.gz")
    for c in candidates:
        if c.is_file():
            return c
    raise DataError(f"missing IDX file: looked for {candidates[0].name} and {candidates[1].name}",
                    where=str(directory),
                    fix="pass --data-dir DIR containing train-images-idx3-ubyte[.gz], "
                        "train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz] and "
                        "t10k-labels-idx1-ubyte[.gz]")


def _load_idx_split(directory: Path, split: str, limit: int | None) -> Split:
    """Load one MNIST-style split (images + labels) from IDX files in ``directory``."""
    img_stem, lab_stem = IDX_FILES[split]
    img_path = _find_idx(directory, img_stem)
    lab_path = _find_idx(directory, lab_stem)
    images = read_idx(img_path, ndim=3)
    labels = read_idx(lab_path, ndim=1)
    if images.shape[1:] != _IDX_IMAGE_HW:
        raise DataError(f"images are {images.shape[1]}x{images.shape[2]}, expected 28x28",
                        where=str(img_path), fix="use MNIST or Fashion-MNIST IDX files")
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"image/label count mismatch: {img_path.name} has {images.shape[0]} "
                        f"images but {lab_path.name} has {labels.shape[0]} labels",
                        where=f"{img_path}, {lab_path}",
                        fix="use image and label files from the same download")
    return _to_split(images[:, None, :, :], labels, limit, where=str(lab_path))


def _load_idx_dataset(name: str, directory: Path, source: str, limit_train: int | None,
                      limit_test: int | None) -> Dataset:
    return Dataset(name=name,
                   train=_load_idx_split(directory, "train", limit_train),
                   test=_load_idx_split(directory, "test", limit_test),
                   source=source)


def _load_cifar_split(directory: Path, names: tuple[str, ...], limit: int | None) -> Split:
    """Concatenate CIFAR-10 batches ``names`` (reading only as many as ``limit`` needs)."""
    missing = [n for n in names if not (directory / n).is_file()]
    if missing:
        raise DataError(f"missing CIFAR-10 batch file(s): {', '.join(missing)}",
                        where=str(directory),
                        fix=f"pass --data-dir DIR containing {', '.join(CIFAR_TRAIN_BATCHES)} and "
                            f"{CIFAR_TEST_BATCH} (or a {CIFAR_SUBDIR}/ folder with them)")
    imgs: list[np.ndarray] = []
    labs: list[np.ndarray] = []
    count = 0
    for n in names:
        images, labels = read_cifar_batch(directory / n)
        _check_labels(labels, where=str(directory / n))  # so an error names the file
        imgs.append(images)
        labs.append(labels)
        count += labels.shape[0]
        if limit is not None and count >= limit:
            break
    return _to_split(np.concatenate(imgs), np.concatenate(labs), limit, where=str(directory))


def load_dataset(name: str, data_dir: str | os.PathLike[str] | None = None,
                 limit_train: int | None = None, limit_test: int | None = None) -> Dataset:
    """Load ``name`` (one of :data:`DATASETS`) and return a :class:`Dataset`.

    ``mnist`` without ``data_dir`` uses the bundled 8,000 / 2,000 subset. With ``data_dir``,
    MNIST and Fashion-MNIST read the standard IDX files (``.gz`` or raw) and CIFAR-10 reads the
    python batches from ``data_dir`` or ``data_dir/cifar-10-batches-py``. ``limit_train`` /
    ``limit_test`` keep only the first N records of each split.
    """
    key = _normalise_name(name)
    limit_train = _check_limit(limit_train, "--limit-train")
    limit_test = _check_limit(limit_test, "--limit-test")

    if data_dir is None:
        if key == "mnist":
            directory = bundled_mnist_dir()
            if not directory.is_dir():
                raise DataError("the bundled MNIST subset is missing from the installation",
                                where=str(directory),
                                fix="reinstall abcn-hw, or pass --data-dir DIR with MNIST files")
            return _load_idx_dataset(key, directory, _BUNDLED_SOURCE, limit_train, limit_test)
        wanted = (_DOWNLOAD_HINT[key] if key in _DOWNLOAD_HINT else
                  f"the CIFAR-10 python batches ({CIFAR_SUBDIR}/ from cifar-10-python.tar.gz)")
        raise DataError(f"dataset {key!r} is not bundled", where="no --data-dir given",
                        fix=f"pass --data-dir DIR containing {wanted}")

    directory = Path(data_dir)
    if not directory.is_dir():
        what = "does not exist" if not directory.exists() else "is not a directory"
        raise DataError(f"data directory {what}", where=str(directory),
                        fix="pass --data-dir with an existing folder holding the dataset files")
    source = str(directory.resolve())
    if key in ("mnist", "fashion-mnist"):
        return _load_idx_dataset(key, directory, source, limit_train, limit_test)

    cifar_dir = find_cifar_dir(directory)
    return Dataset(name=key,
                   train=_load_cifar_split(cifar_dir, CIFAR_TRAIN_BATCHES, limit_train),
                   test=_load_cifar_split(cifar_dir, (CIFAR_TEST_BATCH,), limit_test),
                   source=str(cifar_dir.resolve()))
