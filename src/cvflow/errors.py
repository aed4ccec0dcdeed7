"""Errors a user can fix.

Raise :class:`UserError` (or a subclass) for anything caused by the user's input, files,
network or environment. The ``cvflow`` command prints its message as one line and exits
with code 2, without a traceback. Anything else is a bug: exit code 1 with a traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix; the message says what is wrong and how to fix it."""

    exit_code = 2


class ParamsError(UserError):
    """params.yaml (or a command-line override) holds a bad key or value."""


class DataError(UserError):
    """A dataset is missing, corrupt, or could not be downloaded."""


class DownloadError(DataError):
    """A download failed: network, HTTP status, or checksum mismatch."""


class UnsafeArchiveError(DataError):
    """An archive member would land outside the extraction folder (or is a device file)."""


class TrainingError(UserError):
    """Training cannot go on (a NaN/inf loss, an incompatible checkpoint, ...)."""


# ----------------------------------------------------------------------------- Ctrl-C, reliably

#: what a `cvflow` command says when Ctrl-C stops it (exit code 130), wherever it was
INTERRUPTED = "cvflow: interrupted; rerun the same command to resume from the last checkpoint"
_interrupted = False


def _on_sigint(signum, frame) -> None:
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def catch_interrupts() -> None:
    """Ctrl-C raises KeyboardInterrupt, as Python's own handler does, and is remembered.

    Written by hand because CPython loses an exception raised while a garbage-collection callback
    runs (it prints "Exception ignored in ..." and goes on): a Ctrl-C landing there, e.g. in
    SQLAlchemy's weakref callbacks under MLflow, would vanish and the run would train on. Long
    loops call :func:`raise_if_interrupted` at every step, so the remembered Ctrl-C still stops them.
    """
    import signal
    import sys
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_sigint)
        report = sys.unraisablehook

        def quiet_about_ctrl_c(unraisable) -> None:  # the lost Ctrl-C is raised again: no traceback for it
            if not issubclass(unraisable.exc_type, KeyboardInterrupt):
                report(unraisable)

        sys.unraisablehook = quiet_about_ctrl_c


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if Ctrl-C came and was lost (see :func:`catch_interrupts`)."""
    if _interrupted:
        raise KeyboardInterrupt
