"""The run directory: what state ``--out`` is in, and how files get there safely.

A run directory is *finished* once it holds ``metrics.json``, which is written last (every file is
written to a temporary sibling and renamed). A directory with ``checkpoint.pt`` but no
``metrics.json`` is an *unfinished* run that ``--resume`` continues.
"""
from __future__ import annotations

import json
import os
import shutil
from enum import Enum
from pathlib import Path
from typing import Any

from ..errors import OutputPathError

METRICS_FILE = "metrics.json"
MODEL_FILE = "model.pt"
ONNX_FILE = "model.onnx"
CHECKPOINT_FILE = "checkpoint.pt"
#: files a run writes; on --force they are removed, metrics.json first
RUN_FILES = (METRICS_FILE, MODEL_FILE, ONNX_FILE, CHECKPOINT_FILE)


class OutState(Enum):
    MISSING = "missing"        # does not exist yet
    EMPTY = "empty"            # an empty directory
    FINISHED = "finished"      # holds metrics.json
    UNFINISHED = "unfinished"  # holds checkpoint.pt but no metrics.json
    FOREIGN = "foreign"        # a non-empty directory that is not an abcn-hw run


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_writable(path: Path, flag: str = "--out") -> None:
    """OutputPathError unless ``path`` is (or can be created as) a writable directory."""
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{flag} exists and is not a directory", str(path), f"choose a directory path for {flag}")
    anchor = _nearest_existing(path)
    if not anchor.is_dir():
        raise OutputPathError(f"{flag} cannot be created: {anchor} is not a directory", str(path),
                              f"choose another {flag} location")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise OutputPathError(f"{flag} is not writable (no write permission on {anchor})", str(path),
                              f"choose a writable {flag} location")


def inspect_out(path: Path) -> OutState:
    """Classify ``path`` without changing anything (checks writability first)."""
    check_writable(path)
    if not path.exists():
        return OutState.MISSING
    try:
        entries = [e.name for e in os.scandir(path)]
    except OSError as e:
        raise OutputPathError(f"cannot read --out: {e.strerror}", str(path)) from e
    if METRICS_FILE in entries:
        return OutState.FINISHED
    if CHECKPOINT_FILE in entries:
        return OutState.UNFINISHED
    return OutState.FOREIGN if entries else OutState.EMPTY


def create(path: Path, force: bool) -> bool:
    """Create ``path`` (and parents); with ``force`` remove a previous run's files (metrics.json
    first, so the directory stops counting as finished at once). Returns True if created."""
    existed = path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
        if force:
            for name in RUN_FILES:
                (path / name).unlink(missing_ok=True)
    except OSError as e:
        raise OutputPathError(f"cannot create the run directory: {e.strerror}", str(path),
                              "choose a writable --out location") from e
    return not existed


def remove_if_abandoned(path: Path) -> None:
    """Remove a run directory this process created if it holds nothing resumable (best effort)."""
    if (path / CHECKPOINT_FILE).exists():
        return
    try:
        leftovers = [e for e in os.scandir(path)]
        if all(e.name.startswith(".") and ".tmp" in e.name for e in leftovers):
            shutil.rmtree(path)
    except OSError:
        pass


def write_json_atomic(data: Any, path: Path) -> None:
    """Write ``data`` as indented JSON via a temporary sibling and a rename."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, allow_nan=True) + "\n")
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OutputPathError(f"cannot write {path.name}: {e.strerror}", str(path)) from e


def read_metrics(run_dir: Path) -> dict[str, Any] | None:
    """``metrics.json`` of a run directory, or None if absent or unreadable."""
    try:
        data = json.loads((run_dir / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
