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
    """The graph contains nodes that cannot be lowered / mapped; lists all of them at once."""

    exit_code = 2


class OutputPathError(AbcnError):
    """An output path cannot be written (exists and is not empty, not writable, ...)."""


class ContractError(AbcnError):
    """The lowering cannot meet its agreement contract (a rounded layer, no grid good enough)."""

    exit_code = 2
