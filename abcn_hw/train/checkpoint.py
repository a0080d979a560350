"""Checkpoint files: the model file (``model.pt``) and the resumable training state
(``checkpoint.pt``), both plain dicts of tensors and JSON-like values readable with
``torch.load(path, weights_only=True)``.

``model.pt``::

    {"format": "abcn-hw-checkpoint", "version": 1,
     "config": model.config,          # JSON-serialisable; rebuilds the model (model_from_config)
     "state_dict": model.state_dict()}

``checkpoint.pt`` (written after every finished epoch) has the same four keys with
``"format": "abcn-hw-train-state"`` plus ``epoch`` (finished epochs), ``optimizer``,
``scheduler``, ``rng``, ``history``, ``train_config`` and ``world_size``.
"""
from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, OutputPathError, UsageError

MODEL_FORMAT = "abcn-hw-checkpoint"
TRAIN_STATE_FORMAT = "abcn-hw-train-state"
FORMAT_VERSION = 1
MODEL_FILE = "model.pt"
_FORMATS = (MODEL_FORMAT, TRAIN_STATE_FORMAT)
_MAX_LISTED = 4


def _cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def model_payload(model: nn.Module) -> dict[str, Any]:
    """The ``model.pt`` dict for ``model`` (which must carry a ``config``)."""
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        raise CheckpointError(f"{type(model).__name__} has no config dict; cannot checkpoint it")
    return {"format": MODEL_FORMAT, "version": FORMAT_VERSION, "config": config,
            "state_dict": _cpu_state_dict(model)}


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary sibling, then rename: ``path`` is never half-written."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except OSError as e:
        _unlink_quietly(tmp)
        raise OutputPathError(f"cannot write {path.name}: {e.strerror}", str(path),
                              "check free space and permissions of the output directory") from e
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return path


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def save_model(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model.pt`` (atomically)."""
    return atomic_save(model_payload(model), path)


def read_checkpoint(path: str | os.PathLike, formats: tuple[str, ...] = _FORMATS) -> dict[str, Any]:
    """Load and validate the outer structure of an abcn-hw checkpoint (``weights_only=True``).

    A directory means ``DIR/model.pt``. Raises CheckpointError for a missing file, a file that
    is not a PyTorch checkpoint (corrupt / truncated / another file type), or a foreign payload
    (a bare state_dict, another tool's checkpoint, an unknown format or version).
    """
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.exists():
        if path.name == MODEL_FILE and (path.parent / "checkpoint.pt").exists():
            raise CheckpointError("the run is unfinished: no model.pt yet", str(path.parent),
                                  f"finish it with 'abcn-hw train --resume --out {path.parent}'")
        raise CheckpointError("checkpoint not found", str(path),
                              "pass the model.pt of a finished run (abcn-hw train --out RUN_DIR)")
    if not path.is_file():
        raise CheckpointError("checkpoint is not a regular file", str(path))
    obj = _torch_load(path)
    _check_payload(obj, path, formats)
    return obj


_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = b"\x80"


def _torch_load(path: Path) -> Any:
    corrupt = CheckpointError("not a readable PyTorch checkpoint (corrupt, truncated or another file type)",
                              str(path), "pass a model.pt written by abcn-hw train")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint: {e.strerror}", str(path)) from None
    if not (head.startswith(_ZIP_MAGIC) or head.startswith(_PICKLE_PROTO)):
        raise corrupt
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):
            raise CheckpointError("not an abcn-hw checkpoint: it pickles Python objects, not just tensors",
                                  str(path), "pass a model.pt written by abcn-hw train or abcn-hw export") from None
        raise corrupt from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, UnicodeDecodeError, AttributeError,
            ImportError, IndexError, KeyError, TypeError, MemoryError):
        raise corrupt from None
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint: {e.strerror}", str(path)) from None


def _check_payload(obj: Any, path: Path, formats: tuple[str, ...]) -> None:
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError("a bare state_dict, not an abcn-hw checkpoint (no model config)", str(path),
                              "abcn-hw checkpoints are written by abcn-hw train (RUN_DIR/model.pt)")
    fmt = obj.get("format") if isinstance(obj, dict) else None
    if fmt not in _FORMATS:
        raise CheckpointError("not an abcn-hw checkpoint (foreign or unknown format)", str(path),
                              "abcn-hw checkpoints are written by abcn-hw train (RUN_DIR/model.pt)")
    if fmt not in formats:
        raise CheckpointError(f"wrong checkpoint kind {fmt!r} (expected {' or '.join(formats)})", str(path))
    version = obj.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"unsupported checkpoint version {version!r} (this abcn-hw reads version "
                              f"{FORMAT_VERSION})", str(path), "upgrade abcn-hw")
    if not isinstance(obj.get("config"), dict):
        raise CheckpointError("checkpoint lacks the model config", str(path))
    state = obj.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError("checkpoint lacks a valid state_dict", str(path))


def build_from_config(config: dict[str, Any], where: str) -> nn.Module:
    """``abcn_hw.models.model_from_config`` with every failure reported as CheckpointError."""
    from ..models import model_from_config

    try:
        return model_from_config(config)
    except CheckpointError as e:
        raise CheckpointError(e.what, where, e.fix) from None
    except UsageError as e:
        raise CheckpointError(f"checkpoint config does not describe a buildable model: {e.what}", where) from None
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint config is invalid ({type(e).__name__}: {e})", where) from None


def materialise(model: nn.Module, input_shape: tuple[int, ...] | None) -> None:
    """Run one eval-mode forward on zeros so lazily-sized parameters (learned alpha) get their
    shapes; touches no batch-norm statistics and no RNG."""
    if input_shape is None:
        return
    was_training = model.training
    model.eval()
    try:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
        with torch.no_grad():
            model(torch.zeros((1,) + tuple(input_shape), device=device))
    finally:
        model.train(was_training)


def load_state(model: nn.Module, state_dict: dict[str, torch.Tensor], where: str) -> None:
    """``load_state_dict(strict=True)`` with a one-line CheckpointError naming the mismatches."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state_dict and state_dict[k].shape != own[k].shape and own[k].numel() != 0]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if items:
            shown = ", ".join(items[:_MAX_LISTED]) + (f", ... ({len(items)} in all)" if len(items) > _MAX_LISTED else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise CheckpointError("state_dict does not match the model its config describes (" + "; ".join(problems) + ")",
                              where, "the checkpoint is corrupt or was edited; retrain or re-export it")
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1].strip()
        raise CheckpointError(f"state_dict does not match the model: {first}", where) from None


def input_shape_of(model: nn.Module) -> tuple[int, ...] | None:
    """The model's (C, H, W) input shape from its config or attribute, if it records one."""
    shape = getattr(model, "input_shape", None)
    if shape is None and isinstance(getattr(model, "config", None), dict):
        shape = model.config.get("input_shape")
    return tuple(int(d) for d in shape) if shape else None


def load_checkpoint(path: str | os.PathLike) -> nn.Module:
    """Rebuild the model stored in an abcn-hw checkpoint (``model.pt``, ``checkpoint.pt`` or a run
    directory); returned in eval mode on the CPU. CheckpointError for anything unusable."""
    obj = read_checkpoint(path)
    where = str(path)
    model = build_from_config(obj["config"], where)
    materialise(model, input_shape_of(model))
    load_state(model, obj["state_dict"], where)
    model.eval()
    return model
