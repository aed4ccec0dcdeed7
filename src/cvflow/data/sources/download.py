"""Verified, resumable downloads.

:func:`download` streams a URL into ``DEST.part``, resumes an interrupted ``.part`` with an
HTTP ``Range`` request, retries dropped connections with exponential backoff, checks the
SHA-1 and only then renames the ``.part`` onto ``DEST`` (atomically). So ``DEST`` is either
absent or complete and verified; a verified ``DEST`` is never fetched again.

Every failure a user can act on (offline, HTTP error, checksum mismatch) is raised as a
one-line :class:`~cvflow.errors.DownloadError`.
"""

from __future__ import annotations

import http.client
import os
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path

import requests
import urllib3.exceptions

from cvflow.console import info, progress
from cvflow.errors import DownloadError
from cvflow.fileio import sha1sum  # noqa: F401 - re-exported: the download API names it

__all__ = ["WAYS_OUT", "download", "sha1sum"]

WAYS_OUT = (
    "Ways out: point CVFLOW_HUB_URL (or hub_url in params.yaml) at a mirror, "
    "use --source local --path FILE_OR_FOLDER, or run the offline demo (profile: demo)"
)

_USER_AGENT = "cvflow-download/0.1"
_MAX_SLEEP = 60.0

# A dropped connection or a body shorter than its Content-Length: worth another try.
_TRANSIENT = (
    requests.ConnectionError,  # includes ConnectTimeout; refused / reset / DNS failures
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.ReadTimeoutError,
    http.client.HTTPException,  # IncompleteRead and friends
    ConnectionError,  # builtin: ConnectionResetError, BrokenPipeError, ...
    TimeoutError,
)


class _Transient(Exception):
    """An attempt failed in a way worth retrying; ``reason`` is one line for the user."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _ways_out(hint: str | None) -> str:
    return _one_line(hint) if hint else WAYS_OUT


def _reason(exc: BaseException) -> str:
    """A short, one-line reason for a network exception (no object reprs, no pool internals)."""
    text = _one_line(str(exc))
    match = re.search(r"\[Errno -?\d+\] [^'\")\]]+", text)
    if match:
        return match.group(0).strip().rstrip(":").strip()
    lowered = text.lower()
    if isinstance(exc, requests.ConnectTimeout) or "connect timeout" in lowered:
        return "connection timed out"
    if isinstance(exc, (requests.ReadTimeout, urllib3.exceptions.ReadTimeoutError, TimeoutError)):
        return "the server stopped sending data (read timed out)"
    if isinstance(
        exc, (requests.exceptions.ChunkedEncodingError, urllib3.exceptions.ProtocolError, http.client.HTTPException)
    ):
        return "the connection dropped in the middle of the download"
    if len(text) > 200:
        text = text[:200] + "..."
    return text or type(exc).__name__


def _sleep(backoff: float, attempt: int) -> None:
    delay = min(backoff * (2**attempt), _MAX_SLEEP)
    if delay > 0:
        time.sleep(delay)


def _part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _finish(part: Path, dest: Path, url: str, sha1: str | None, chunk_size: int) -> Path:
    """Verify ``part`` and rename it onto ``dest``; on a mismatch delete it and raise."""
    if sha1 is not None:
        actual = sha1sum(part, chunk_size)
        if actual != sha1:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"checksum mismatch for {url}: expected SHA-1 {sha1}, got {actual}; the download was deleted. "
                "The file on the server is corrupt or has changed: rerun to try again, or use a mirror with the right file"
            )
    with open(part, "rb+") as handle:  # make the bytes durable before the rename makes them visible
        os.fsync(handle.fileno())
    os.replace(part, dest)
    return dest


def _scheme(url: str) -> str:
    try:
        scheme = urllib.parse.urlsplit(url).scheme.lower()
    except ValueError as exc:
        raise DownloadError(f"cannot download {url}: invalid URL ({_one_line(str(exc))})") from None
    if scheme not in ("http", "https", "file"):
        raise DownloadError(f"cannot download {url}: only http://, https:// and file:// URLs are supported")
    return scheme


def _file_url_path(url: str) -> Path:
    parts = urllib.parse.urlsplit(url)
    path = urllib.request.url2pathname(parts.path)
    if parts.netloc and parts.netloc.lower() != "localhost":
        path = f"//{parts.netloc}{path}"  # UNC share (file://server/share/...)
    return Path(path)


def _copy_file_url(url: str, dest: Path, sha1: str | None, chunk_size: int, hint: str | None) -> Path:
    source = _file_url_path(url)
    if not source.is_file():
        raise DownloadError(f"cannot download {url}: no such file {source}. {_ways_out(hint)}")
    part = _part_path(dest)
    try:
        size = source.stat().st_size
        with open(source, "rb") as src, open(part, "wb") as out, progress(
            f"copying {dest.name}", size, unit="bytes"
        ) as bar:
            while block := src.read(chunk_size):
                out.write(block)
                bar.advance(len(block))
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise DownloadError(f"cannot download {url}: {_reason(exc)}. {_ways_out(hint)}") from None
    return _finish(part, dest, url, sha1, chunk_size)


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``bytes START-END/TOTAL`` or ``bytes */TOTAL`` -> (START, TOTAL); None where unknown."""
    match = re.match(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", value or "")
    if not match:
        return None, None
    start = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return start, total


def _http_error(url: str, response: requests.Response) -> str:
    reason = _one_line(response.reason or "")
    return f"HTTP {response.status_code}" + (f" {reason}" if reason else "")


def _attempt(
    session: requests.Session,
    url: str,
    dest: Path,
    part: Path,
    sha1: str | None,
    timeout: float,
    chunk_size: int,
    hint: str | None,
) -> Path:
    """One HTTP request; returns ``dest`` when done, raises :class:`_Transient` to be retried."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity", "User-Agent": _USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = session.get(url, headers=headers, stream=True, timeout=timeout)
    except requests.exceptions.InvalidURL as exc:  # also MissingSchema, InvalidSchema
        raise DownloadError(f"cannot download {url}: invalid URL ({_reason(exc)})") from None
    except _TRANSIENT as exc:
        raise _Transient(_reason(exc)) from exc
    except requests.RequestException as exc:  # too many redirects, ...: retrying will not help
        raise DownloadError(f"cannot download {url}: {_reason(exc)}. {_ways_out(hint)}") from None

    with response:
        status = response.status_code
        if status == 416 and have:
            # Nothing left after byte `have`: the part may already be the whole file.
            _, total = _content_range(response.headers.get("Content-Range"))
            if sha1 is not None:
                if sha1sum(part, chunk_size) == sha1:
                    return _finish(part, dest, url, sha1, chunk_size)
            elif total is not None and total == have:
                return _finish(part, dest, url, sha1, chunk_size)
            part.unlink(missing_ok=True)  # not the file we want: start again from zero
            raise _Transient(f"the partial download did not match the server's file ({_http_error(url, response)})")
        if status == 429 or status >= 500:
            raise _Transient(_http_error(url, response))
        if status >= 400 or status not in (200, 206):
            raise DownloadError(f"cannot download {url}: {_http_error(url, response)}. {_ways_out(hint)}")

        if status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != have:  # not the range we asked for: do not glue mismatched bytes together
                part.unlink(missing_ok=True)
                raise _Transient(f"the server answered a range request with the wrong range ({start} != {have})")
            expected = None if total is None else total - have
            mode = "ab"
        else:  # 200: a fresh start (the server ignored Range, or nothing was there to resume)
            if have:
                info(f"{url}: the server does not support resuming; downloading from the start")
            have, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            total = expected

        # Keep every byte that arrives: with enforce_content_length urllib3 raises IncompleteRead
        # and drops the last partial chunk; we compare the count with Content-Length ourselves.
        if hasattr(response.raw, "enforce_content_length"):
            response.raw.enforce_content_length = False
        received = 0
        try:
            with open(part, mode) as out, progress(f"downloading {dest.name}", total, unit="bytes") as bar:
                if have:
                    bar.advance(have)
                for block in response.iter_content(chunk_size):
                    if block:
                        out.write(block)
                        received += len(block)
                        bar.advance(len(block))
        except _TRANSIENT as exc:
            raise _Transient(
                f"the connection dropped after {have + received} of {total if total is not None else '?'} bytes"
                f" ({_reason(exc)})"
            ) from exc
        except OSError as exc:  # the local side: disk full, permissions, ...
            raise DownloadError(f"cannot write {part}: {_reason(exc)}") from None
        if expected is not None and received < expected:
            raise _Transient(f"the connection dropped after {have + received} of {total} bytes")
    return _finish(part, dest, url, sha1, chunk_size)


def download(
    url: str,
    dest: str | os.PathLike,
    sha1: str | None = None,
    *,
    retries: int = 4,
    backoff: float = 0.5,
    timeout: float = 30.0,
    chunk_size: int = 1 << 20,
    hint: str | None = None,
) -> Path:
    """Download ``url`` to ``dest`` (verified with ``sha1`` when given) and return ``dest``.

    * ``dest`` already there and matching ``sha1`` (or ``sha1`` is None): returned at once,
      without touching the network.
    * Data goes to ``dest + '.part'``; an existing ``.part`` is resumed with ``Range``.
    * Dropped connections, truncated bodies, timeouts, HTTP 429 and 5xx are retried up to
      ``retries`` more times (``1 + retries`` attempts), sleeping ``backoff * 2**k`` seconds
      between them; each retry resumes from the current ``.part``. When they run out the
      ``.part`` is kept for a later run to resume, never renamed to ``dest``.
    * A SHA-1 mismatch deletes the ``.part`` and raises; a match renames it onto ``dest``.
    * ``file://`` URLs are copied from a local mirror, with the same checks.
    * ``hint`` replaces the "Ways out: ..." sentence of network error messages.

    Raises :class:`~cvflow.errors.DownloadError` (one line) on any failure.
    """
    dest = Path(dest)
    if sha1 is not None:
        sha1 = sha1.strip().lower()
    if dest.is_file():
        if sha1 is None or sha1sum(dest, chunk_size) == sha1:
            return dest
        info(f"{dest} does not match its SHA-1 {sha1}; downloading it again")
    scheme = _scheme(url)
    dest.parent.mkdir(parents=True, exist_ok=True)

    if scheme == "file":
        return _copy_file_url(url, dest, sha1, chunk_size, hint)

    part = _part_path(dest)
    attempts = 1 + max(0, int(retries))
    last: _Transient | None = None
    with requests.Session() as session:
        for attempt in range(attempts):
            if attempt:
                _sleep(backoff, attempt - 1)
            try:
                return _attempt(session, url, dest, part, sha1, timeout, chunk_size, hint)
            except _Transient as exc:
                last = exc
                if attempt + 1 < attempts:
                    info(f"{url}: {exc.reason}; retrying ({attempt + 1}/{attempts - 1})")
    assert last is not None
    kept = ""
    if part.exists() and part.stat().st_size:
        kept = f" (the partial download {part.name} was kept; rerun to resume)"
    tries = f"{attempts} attempt" + ("s" if attempts != 1 else "")
    raise DownloadError(f"cannot download {url}: {last.reason} ({tries}){kept}. {_ways_out(hint)}")
