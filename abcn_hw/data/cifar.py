"""Reader and writer for the CIFAR-10 "python version" batches.

The standard distribution (``cifar-10-python.tar.gz``) unpacks to ``cifar-10-batches-py/`` with
``data_batch_1`` .. ``data_batch_5`` and ``test_batch``. Each is a pickled dict with
``b'data'`` (N x 3072 uint8, channel-major RGB 32 x 32), ``b'labels'`` (N ints),
``b'batch_label'`` and ``b'filenames'``.

Pickle files are untrusted input: they are loaded with :class:`RestrictedUnpickler`, which only
resolves the handful of globals a numpy array needs and refuses everything else (so a crafted
file cannot call ``os.system`` or import arbitrary code).
"""
from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from abcn_hw.errors import DataError

__all__ = [
    "CIFAR_TEST_BATCH",
    "CIFAR_TRAIN_BATCHES",
    "CIFAR_SUBDIR",
    "RestrictedUnpickler",
    "find_cifar_dir",
    "read_cifar_batch",
    "write_cifar_batch",
]

CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_BATCH = "test_batch"
CIFAR_SUBDIR = "cifar-10-batches-py"
_IMAGE_SHAPE = (3, 32, 32)
_ROW = 3 * 32 * 32


def _numpy_global(module: str, name: str) -> Any:
    """Resolve a numpy global without touching the deprecated ``numpy.core`` alias."""
    import importlib

    for candidate in (module.replace("numpy.core", "numpy._core"), module):
        try:
            return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"cannot resolve {module}.{name}")


# (module, name) pairs a pickled numpy array (and the bytes inside it) may reference.
_ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),   # numpy < 2 / Python 2 pickles (original files)
    ("numpy._core.multiarray", "_reconstruct"),  # numpy >= 2
    ("numpy.core.numeric", "_frombuffer"),       # pickle protocol 5, numpy < 2
    ("numpy._core.numeric", "_frombuffer"),      # pickle protocol 5, numpy >= 2
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),                       # bytes pickled by Python 3 with protocol < 3
})


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only allows the globals needed to rebuild numpy arrays and plain data.

    Any other global (``os.system``, ``builtins.eval``, ``subprocess.Popen`` ...) raises
    :class:`DataError` before it is looked up, so nothing in the file gets executed.
    """

    def __init__(self, file: io.BufferedIOBase, *, source: str, **kwargs: Any):
        super().__init__(file, **kwargs)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        """Return an allowed global; refuse everything else with DataError."""
        if (module, name) not in _ALLOWED_GLOBALS:
            raise DataError(f"refusing to load pickle: it references {module}.{name}, which a "
                            f"CIFAR-10 batch never contains", where=self._source,
                            fix="use the original CIFAR-10 python batches; do not load pickles "
                                "from untrusted sources")
        if module == "_codecs":
            import _codecs

            return _codecs.encode
        if module == "numpy":
            return getattr(np, name)
        return _numpy_global(module, name)


def _load_pickle(path: Path) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler`; DataError on any failure."""
    where = str(path)
    try:
        with path.open("rb") as f:
            return RestrictedUnpickler(f, source=where, encoding="bytes").load()
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError("CIFAR-10 batch file not found", where=where,
                        fix=f"pass --data-dir DIR containing {', '.join(CIFAR_TRAIN_BATCHES)} and "
                            f"{CIFAR_TEST_BATCH} (or a {CIFAR_SUBDIR}/ folder with them)") from None
    except IsADirectoryError:
        raise DataError("expected a CIFAR-10 batch file but found a directory", where=where,
                        fix="point at the batch file itself") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, OSError, MemoryError) as err:
        raise DataError(f"not a valid CIFAR-10 batch pickle ({type(err).__name__}: {err})",
                        where=where,
                        fix="re-download and unpack cifar-10-python.tar.gz") from None


def read_cifar_batch(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 batch file; return ``(images uint8 N x 3 x 32 x 32, labels int64 N)``."""
    p = Path(path)
    where = str(p)
    fix = "re-download and unpack cifar-10-python.tar.gz"
    obj = _load_pickle(p)
    if not isinstance(obj, dict):
        raise DataError(f"CIFAR-10 batch must be a pickled dict, got {type(obj).__name__}",
                        where=where, fix=fix)
    if b"data" not in obj:
        raise DataError(f"CIFAR-10 batch has no b'data' key (keys: {sorted(map(repr, obj))})",
                        where=where, fix=fix)
    if b"labels" not in obj:
        hint = (" — this looks like CIFAR-100, which is not supported"
                if b"fine_labels" in obj else "")
        raise DataError(f"CIFAR-10 batch has no b'labels' key{hint}", where=where, fix=fix)
    data = obj[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        kind = f"array of {data.dtype}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"b'data' must be a uint8 array, got {kind}", where=where, fix=fix)
    if data.ndim != 2 or data.shape[1] != _ROW:
        raise DataError(f"b'data' must have shape (N, {_ROW}), got {data.shape}", where=where,
                        fix=fix)
    try:
        labels = np.asarray(obj[b"labels"])
    except (ValueError, TypeError) as err:
        raise DataError(f"b'labels' is not a list of integers ({err})", where=where,
                        fix=fix) from None
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"b'labels' must be a flat list of integers, got shape {labels.shape} "
                        f"dtype {labels.dtype}", where=where, fix=fix)
    if labels.shape[0] != data.shape[0]:
        raise DataError(f"image/label count mismatch: {data.shape[0]} images, "
                        f"{labels.shape[0]} labels", where=where, fix=fix)
    images = np.ascontiguousarray(data).reshape((-1, *_IMAGE_SHAPE))
    return images, labels.astype(np.int64)


def write_cifar_batch(path: str | os.PathLike[str], images: np.ndarray,
                      labels: np.ndarray | list[int], batch_label: str = "fixture batch") -> Path:
    """Write ``images`` (uint8 N x 3 x 32 x 32) and ``labels`` as a standard CIFAR-10 batch.

    The file is a protocol-2 pickle of the same dict layout as the official batches
    (``b'batch_label'``, ``b'labels'``, ``b'data'``, ``b'filenames'``). Returns the path written.
    """
    imgs = np.asarray(images)
    labs = [int(v) for v in np.asarray(labels).reshape(-1)]
    if imgs.dtype != np.uint8 or imgs.shape[1:] != _IMAGE_SHAPE:
        raise DataError(f"write_cifar_batch needs uint8 images of shape (N, 3, 32, 32), got "
                        f"{imgs.dtype} {imgs.shape}", where=str(path))
    if len(labs) != imgs.shape[0]:
        raise DataError(f"write_cifar_batch got {imgs.shape[0]} images but {len(labs)} labels",
                        where=str(path))
    record = {
        b"batch_label": batch_label.encode("ascii"),
        b"labels": labs,
        b"data": np.ascontiguousarray(imgs).reshape(imgs.shape[0], _ROW),
        b"filenames": [f"image_{i:05d}.png".encode("ascii") for i in range(imgs.shape[0])],
    }
    p = Path(path)
    with p.open("wb") as f:
        pickle.dump(record, f, protocol=2)
    return p


def find_cifar_dir(data_dir: str | os.PathLike[str]) -> Path:
    """Return the folder holding the CIFAR-10 batches (``data_dir`` or its ``cifar-10-batches-py``).

    Raises DataError listing what was looked for when neither holds the batch files.
    """
    root = Path(data_dir)
    names = (*CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH)
    for candidate in (root, root / CIFAR_SUBDIR):
        if any((candidate / n).is_file() for n in names):
            return candidate
    raise DataError(f"no CIFAR-10 batches found: looked for {', '.join(names)} in {root} and "
                    f"{root / CIFAR_SUBDIR}", where=str(root),
                    fix="pass --data-dir DIR containing the unpacked cifar-10-python.tar.gz "
                        f"(the {CIFAR_SUBDIR}/ folder or its contents)")
