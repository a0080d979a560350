"""Identifiers derived from untrusted model names.

A model file is untrusted input: node, tensor and graph names never reach generated C++, Tcl,
Makefiles or file paths as they are. Every generated identifier is ``<prefix><index>`` followed
by an optional sanitised hint (ASCII letters, digits and ``_`` only, at most 24 characters), so
identifiers are collision-free by construction (the index is unique) and cannot carry quotes,
newlines, path separators or comment delimiters. Comments get the same sanitised hint only.
"""
from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")
HINT_MAX = 16


def hint(name: str | None) -> str:
    """``name`` reduced to ``[A-Za-z0-9_]``, runs of other characters collapsed to ``_``, trimmed."""
    if not name:
        return ""
    s = _UNSAFE.sub("_", str(name)).strip("_")
    return s[:HINT_MAX].rstrip("_")


def layer_id(index: int, name: str | None) -> str:
    """Collision-free C++ identifier / file-name stem for layer ``index``: ``L<index>[_<hint>]``."""
    h = hint(name)
    return f"L{index}_{h}" if h else f"L{index}"


def is_safe_identifier(s: str) -> bool:
    return re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", s) is not None


def file_stems(names: list[str]) -> list[str]:
    """Safe, distinct file-name stems for ``names`` read back from a build dir (which is as untrusted
    as the model): ``[A-Za-z0-9_]`` only, at most 64 characters, never empty, and numbered on a
    collision, so no name can reach outside its folder or overwrite another's file."""
    out: list[str] = []
    used: set[str] = set()
    for i, name in enumerate(names):
        stem = _UNSAFE.sub("_", str(name or "")).strip("_")[:64] or f"tap{i}"
        base, k = stem[:56], i
        while stem.lower() in used:  # case-insensitive: distinct on every file system
            stem, k = f"{base}_{k}", k + 1
        used.add(stem.lower())
        out.append(stem)
    return out
