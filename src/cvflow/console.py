"""Console output: rich progress bars on a terminal, plain log lines elsewhere (CI logs)."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

console = Console(stderr=True, highlight=False)


def is_interactive() -> bool:
    """True when stderr is a terminal; progress bars are drawn only then."""
    return console.is_terminal and sys.stderr.isatty()


def info(message: str) -> None:
    """One plain status line (stderr, so stdout stays machine-readable)."""
    console.print(message, markup=False, soft_wrap=True)


class _Tracker:
    """Handle yielded by :func:`progress`: call ``advance(n)`` as work gets done."""

    def __init__(self, description: str, total: float | None, unit: str, progress: Progress | None):
        self.description = description
        self.total = total
        self.unit = unit
        self.done = 0.0
        self._progress = progress
        self._task = progress.add_task(description, total=total) if progress else None
        self._last_line = time.monotonic()

    def advance(self, amount: float = 1.0) -> None:
        self.done += amount
        if self._progress is not None:
            self._progress.advance(self._task, amount)
        elif time.monotonic() - self._last_line >= 10.0:  # plain mode: a line every 10 s at most
            self._last_line = time.monotonic()
            info(f"{self.description}: {self._fmt(self.done)}" + (f" / {self._fmt(self.total)}" if self.total else ""))

    def _fmt(self, value: float | None) -> str:
        if value is None:
            return "?"
        if self.unit == "bytes":
            return f"{value / 2**20:.1f} MiB"
        return f"{int(value)} {self.unit}"


@contextmanager
def progress(description: str, total: float | None = None, unit: str = "items") -> Iterator[_Tracker]:
    """A progress bar (``unit='bytes'`` shows sizes and speed); plain lines when not on a terminal."""
    if not is_interactive():
        tracker = _Tracker(description, total, unit, None)
        yield tracker
        return
    columns = [TextColumn("{task.description}"), BarColumn()]
    if unit == "bytes":
        columns += [DownloadColumn(), TransferSpeedColumn()]
    else:
        columns += [MofNCompleteColumn()]
    columns.append(TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        yield _Tracker(description, total, unit, bar)
