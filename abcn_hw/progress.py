"""Progress bars for long work, shown only where a person watches.

A bar (tqdm, on stderr, with rate and time left) appears when stderr is a terminal and the caller
did not ask for quiet output; otherwise (CI logs, ``--json``, a Jupyter kernel, a pipe) nothing is
drawn and the caller's one line per stage is all the output.

Stages do not take a bar as a parameter: the caller opens one with :func:`task` and the stage's
batch loop calls :func:`advance`, which is a no-op when no bar is open in this context::

    with progress.task("measure thresholds", total=2 * len(x), unit="img", enabled=show):
        compare(exported, lowered, x)        # export_runtime.run() advances per batch

:func:`waiting` shows elapsed time for one blocking step of unknown length (the g++ build).
"""
from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

_current: ContextVar[object | None] = ContextVar("abcn_hw_progress", default=None)


def wanted(quiet: bool = False) -> bool:
    """Whether a bar should be drawn: not quiet and stderr is a terminal."""
    if quiet:
        return False
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def _bar(desc: str, total: int | None, unit: str, bar_format: str | None = None):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True,
                unit_scale=total is not None and total >= 10_000, bar_format=bar_format)


@contextmanager
def task(desc: str, total: int, unit: str = "img", enabled: bool | None = None) -> Iterator[object | None]:
    """Open a bar of ``total`` units for the work inside the ``with`` block (``enabled`` None:
    :func:`wanted`). Yields the tqdm bar, or None when no bar is drawn."""
    if enabled is None:
        enabled = wanted()
    if not enabled:
        token = _current.set(None)  # an outer bar does not count an inner quiet step
        try:
            yield None
        finally:
            _current.reset(token)
        return
    bar = _bar(desc, total, unit)
    token = _current.set(bar)
    try:
        yield bar
    finally:
        _current.reset(token)
        bar.close()


def advance(n: int = 1) -> None:
    """Count ``n`` units of work on the bar open in this context (no-op without one)."""
    bar = _current.get()
    if bar is not None:
        bar.update(n)


def active() -> bool:
    """Whether a bar is open in this context (a loop may then split its work to report it)."""
    return _current.get() is not None


@contextmanager
def waiting(desc: str, enabled: bool | None = None, interval: float = 0.5) -> Iterator[None]:
    """Elapsed time on a bar while the ``with`` block runs one blocking step (no total known)."""
    if enabled is None:
        enabled = wanted()
    if not enabled:
        yield
        return
    bar = _bar(desc, None, "s", bar_format="{desc}: {elapsed}")
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(interval):
            bar.refresh()

    t = threading.Thread(target=tick, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()
        bar.close()


__all__ = ["active", "advance", "task", "waiting", "wanted"]
