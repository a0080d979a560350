"""Dataset layer: bundled MNIST subset, MNIST / Fashion-MNIST IDX files, CIFAR-10 batches."""
from __future__ import annotations

from abcn_hw.data.cifar import read_cifar_batch, write_cifar_batch
from abcn_hw.data.datasets import (
    DATASETS,
    Dataset,
    Split,
    bundled_mnist_dir,
    load_dataset,
    to_tensor_dataset,
)
from abcn_hw.data.idx import read_idx, write_idx

__all__ = [
    "DATASETS",
    "Dataset",
    "Split",
    "bundled_mnist_dir",
    "load_dataset",
    "read_cifar_batch",
    "read_idx",
    "to_tensor_dataset",
    "write_cifar_batch",
    "write_idx",
]
