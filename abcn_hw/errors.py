"""User-facing errors.

Every error a user can cause derives from :class:`AbcnError`. The CLI prints ``str(err)`` as one
line (``abcn-hw <stage>: error: <what> (<where>). <fix>``) and exits with ``err.exit_code``; no
traceback. Library code raises these instead of using ``assert`` for anything a user controls.
"""
from __future__ import annotations


class AbcnError(Exception):
    """Base class: a problem the user can fix. ``what`` / ``where`` / ``fix`` form one line."""

    exit_code = 1

    def __init__(self, what: str, where: str | None = None, fix: str | None = None):
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.message())

    def message(self) -> str:
        msg = self.what
        if self.where:
            msg += f" ({self.where})"
        if self.fix:
            msg += f". {self.fix}"
        return msg


class UsageError(AbcnError):
    """Bad command-line arguments or API parameters."""

    exit_code = 2


class DataError(AbcnError):
    """A dataset file is missing, truncated or not in the expected format."""


class CheckpointError(AbcnError):
    """A checkpoint is missing, corrupt, or not an abcn-hw checkpoint."""


class ExportError(AbcnError):
    """Export to QONNX failed or the export does not reproduce the PyTorch model."""


class UnsupportedModelError(AbcnError):
    """The graph contains nodes that cannot be lowered / mapped; lists all of them at once.
    ``details`` (optional) are printed below the one-line message, one per line."""

    exit_code = 2

    def __init__(self, what: str, where: str | None = None, fix: str | None = None,
                 details: list[str] | None = None):
        self.details = list(details or [])
        super().__init__(what, where, fix)

    def message(self) -> str:
        return "\n".join([super().message()] + ["  " + d for d in self.details])


def group_problems(problems: list[tuple[str, str]], max_lines: int = 8, examples: int = 3) -> list[str]:
    """``(reason, node description)`` pairs -> one line per distinct reason, most frequent first:
    ``reason [N nodes: A 'a', B 'b', C 'c', ...]``; at most ``max_lines`` lines (the last one
    then says how many further reasons were left out)."""
    groups: dict[str, list[str]] = {}
    for reason, name in problems:
        groups.setdefault(reason, []).append(name)
    order = sorted(groups, key=lambda r: -len(groups[r]))  # stable: first seen first among equals
    lines = []
    for reason in order:
        names = list(dict.fromkeys(groups[reason]))
        shown = ", ".join(n for n in names[:examples] if n) + (", ..." if len(names) > examples else "")
        count = f"{len(groups[reason])} nodes: " if len(groups[reason]) > 1 else ""
        lines.append(f"{reason} [{count}{shown}]" if shown else reason)
    if len(lines) > max_lines:
        rest = lines[max_lines - 1:]
        lines = lines[:max_lines - 1] + [f"... and {len(rest)} more reasons "
                                         f"({sum(len(groups[r]) for r in order[max_lines - 1:])} nodes)"]
    return lines


class OutputPathError(AbcnError):
    """An output path cannot be written (exists and is not empty, not writable, ...)."""


class ContractError(AbcnError):
    """The lowering cannot meet its agreement contract (a rounded layer, no grid good enough)."""

    exit_code = 2
