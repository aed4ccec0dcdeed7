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
