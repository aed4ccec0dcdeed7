"""Kaggle competitions (book 13.13 CIFAR-10, 13.14 dog breeds): download and fetch.

* :func:`kaggle_download` fetches a competition's files with the official ``kaggle``
  package (imported only when needed) into a staging folder, unpacks them with
  :func:`cvflow.data.sources.archive.extract` (including the ``train.7z`` / ``test.7z`` that
  the cifar-10 zip holds) and renames the result onto ``dest``. Credentials are looked up
  the way the ``kaggle`` package does (:func:`kaggle_credentials`) before anything else, so
  a missing ``kaggle.json`` is one line saying where to put it; HTTP 401 / 403 / 404
  become one-line :class:`~cvflow.errors.DataError` s (403: accept the competition's rules).
  No message ever holds a key or token. The client is injectable (``client_factory``).
* :func:`kaggle_submit` sends a submission file with the same credentials lookup, client
  and one-line errors (403 there means the rules are not accepted either).
* :func:`fetch_competition`: a competition's files at ``dest`` from any source (demo twin,
  the book's hub sample, the Kaggle API, a local folder or archive).

The reorganisation into train/valid folders is :mod:`cvflow.data.sources.kaggle_reorg`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator


from cvflow.console import info, is_interactive
from cvflow.errors import DataError, UserError
from cvflow.fileio import replace_dir, write_json

__all__ = ["DOWNLOAD_MARKER", "KaggleCredentials", "fetch_competition", "kaggle_config_dir", "kaggle_credentials",
           "kaggle_download", "kaggle_submit"]
DOWNLOAD_MARKER = ".cvflow-kaggle.json"
_ARCHIVE_RE = re.compile(r"\.(zip|7z|tar|tar\.gz|tgz|tar\.bz2|tbz2?|tar\.xz|txz)$", re.IGNORECASE)
_COMPETITION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


# ============================================================================ credentials


@dataclass(frozen=True)
class KaggleCredentials:
    """Where the Kaggle credentials were found. ``repr`` never shows the username or the secret."""

    source: str  # a file path or "environment (...)": safe to print
    kind: str = "api-key"  # "api-key" (username + key) or "access-token"
    username: str = field(default="", repr=False)
    secret: str = field(default="", repr=False)

    def scrub(self, text: str) -> str:
        """``text`` with the secret (and the username) replaced by ``***``."""
        for value in (self.secret, self.username):
            if value and len(value) >= 3:
                text = text.replace(value, "***")
        return text


def kaggle_config_dir() -> Path:
    """The folder the ``kaggle`` package reads ``kaggle.json`` from.

    ``KAGGLE_CONFIG_DIR`` if set; else ``~/.kaggle``; on Linux, when ``~/.kaggle`` does not
    exist, ``$XDG_CONFIG_HOME/kaggle`` (default ``~/.config/kaggle``), as kaggle >= 1.7 does.
    """
    env = os.environ.get("KAGGLE_CONFIG_DIR")
    if env:
        return Path(env).expanduser()
    home = Path(os.path.expanduser("~")) / ".kaggle"
    if sys.platform.startswith("linux") and not home.exists():
        xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
        return Path(xdg) / "kaggle"
    return home


def _missing_credentials_message() -> str:
    where = kaggle_config_dir() / "kaggle.json"
    return (
        f"no Kaggle credentials: create an API token at https://www.kaggle.com/settings (API, Create New Token) "
        f"and save the downloaded kaggle.json as {where} (chmod 600; KAGGLE_CONFIG_DIR names another folder), "
        "or set KAGGLE_USERNAME and KAGGLE_KEY (or KAGGLE_API_TOKEN) in the environment; "
        "without a Kaggle account, run the offline demo (profile: demo)"
    )


def _read_token_file(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text or None


def kaggle_credentials() -> KaggleCredentials:
    """Find Kaggle credentials the way the ``kaggle`` package does, without printing them.

    In order: ``KAGGLE_API_TOKEN`` (a token, or a file holding one); the token file
    ``access_token`` in the config folder; ``KAGGLE_USERNAME`` + ``KAGGLE_KEY``; ``kaggle.json``
    in :func:`kaggle_config_dir`. Raises a one-line DataError when there are none, or when
    ``kaggle.json`` is not valid.
    """
    token = os.environ.get("KAGGLE_API_TOKEN", "").strip()
    if token:
        if Path(token).expanduser().is_file():
            value = _read_token_file(Path(token).expanduser())
            if value:
                return KaggleCredentials(f"the file named by KAGGLE_API_TOKEN ({Path(token).expanduser()})",
                                         "access-token", secret=value)
        else:
            return KaggleCredentials("environment (KAGGLE_API_TOKEN)", "access-token", secret=token)
    folder = kaggle_config_dir()
    for name in ("access_token", "access_token.txt"):
        value = _read_token_file(folder / name)
        if value:
            return KaggleCredentials(str(folder / name), "access-token", secret=value)

    user, key = os.environ.get("KAGGLE_USERNAME", "").strip(), os.environ.get("KAGGLE_KEY", "").strip()
    config = folder / "kaggle.json"
    file_user = file_key = ""
    if config.is_file():
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError
            file_user, file_key = str(data.get("username") or "").strip(), str(data.get("key") or "").strip()
        except (OSError, ValueError, UnicodeDecodeError):
            raise DataError(f"{config} is not valid JSON; it should read {{\"username\": \"...\", \"key\": \"...\"}} "
                            "(download a new one from https://www.kaggle.com/settings, API, Create New Token)") from None
        if not (file_user and file_key):
            raise DataError(f"{config} lacks \"username\" or \"key\"; download a new one from "
                            "https://www.kaggle.com/settings (API, Create New Token)")
    # Like the kaggle package: environment variables override the file's values.
    if user and key:
        return KaggleCredentials("environment (KAGGLE_USERNAME, KAGGLE_KEY)", username=user, secret=key)
    if user or key:
        if file_user and file_key:
            return KaggleCredentials(f"{config} with {'KAGGLE_USERNAME' if user else 'KAGGLE_KEY'} from the environment",
                                     username=user or file_user, secret=key or file_key)
        missing = "KAGGLE_KEY" if user else "KAGGLE_USERNAME"
        raise DataError(f"{'KAGGLE_USERNAME' if user else 'KAGGLE_KEY'} is set but {missing} is not: set both "
                        f"(or neither, and use {config})")
    if file_user and file_key:
        if os.name != "nt":
            try:
                mode = config.stat().st_mode
                if mode & (stat.S_IRGRP | stat.S_IROTH):
                    info(f"warning: {config} is readable by other users; run: chmod 600 {config}")
            except OSError:
                pass
        return KaggleCredentials(str(config), username=file_user, secret=file_key)
    raise DataError(_missing_credentials_message())


# ============================================================================== download


def _default_client(credentials: KaggleCredentials) -> Any:
    """An authenticated ``kaggle.api.kaggle_api_extended.KaggleApi`` (it reads the same
    places as :func:`kaggle_credentials`, so it finds the credentials found there)."""
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi  # import runs the package's own authenticate()
    except ImportError:
        raise UserError("downloading from Kaggle needs the kaggle package: pip install kaggle") from None
    except (OSError, SystemExit) as exc:  # kaggle < 1.7 raises at import when it finds no credentials
        raise DataError(credentials.scrub(f"the kaggle package could not start: {_one_line(exc)}; "
                                          + _missing_credentials_message())) from None
    api = KaggleApi()
    try:
        api.authenticate()
    except SystemExit:
        raise DataError(_missing_credentials_message()) from None
    return api


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status of a client error: kaggle >= 1.7 (requests.HTTPError) or older (ApiException.status)."""
    for value in (getattr(exc, "status", None), getattr(getattr(exc, "response", None), "status_code", None),
                  getattr(exc, "code", None)):
        if isinstance(value, int) and 100 <= value <= 599:
            return value
    return None


def _kaggle_error(exc: BaseException, competition: str, credentials: KaggleCredentials,
                  action: str = "download") -> DataError | None:
    """A one-line DataError for a client failure the user can act on (None: not one of those).

    ``action`` is the verb of the messages ("download", "submit to"): the same statuses mean
    the same things for every call, so one mapping serves them all.
    """
    status = _http_status(exc)
    page = f"https://www.kaggle.com/c/{competition}"
    noun = "download of" if action == "download" else "submission to"
    if status == 401:
        text = (f"Kaggle rejected the credentials from {credentials.source} (HTTP 401 Unauthorized): they are wrong "
                "or expired; create a new API token at https://www.kaggle.com/settings and replace them")
    elif status == 403:
        text = (f"Kaggle refused to let you {action} the {competition!r} competition (HTTP 403 Forbidden): "
                f"accept its rules at {page}/rules (logged in as the account of {credentials.source}), then rerun")
    elif status == 404:
        text = (f"Kaggle has no competition {competition!r} or no such file in it (HTTP 404 Not Found): "
                f"check the name at {page}/data")
    elif status is not None:
        hint = "; Kaggle is busy, try again later" if status == 429 or status >= 500 else ""
        text = f"Kaggle answered HTTP {status} to the {noun} {competition!r}{hint}"
    else:
        import requests

        if not isinstance(exc, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)):
            return None
        reason = _one_line(exc)
        match = re.search(r"\[Errno -?\d+\] [^'\")\]]+", reason)
        reason = match.group(0).strip() if match else (reason[:200] or type(exc).__name__)
        text = (f"cannot reach Kaggle to {action} {competition!r}: {reason}. Check the network, or run the "
                "offline demo (profile: demo)")
    return DataError(credentials.scrub(text))


def _check_competition_name(competition: str) -> None:
    if not isinstance(competition, str) or not _COMPETITION_RE.match(competition):
        raise DataError(f"invalid Kaggle competition name {competition!r} (the last part of its URL, "
                        "e.g. cifar-10 or dog-breed-identification)")


def _connect(client_factory: Callable[[KaggleCredentials], Any] | None) -> tuple[KaggleCredentials, Any]:
    """The credentials (found first, so their absence is one line before any import) and a client."""
    credentials = kaggle_credentials()
    return credentials, (client_factory or _default_client)(credentials)


@contextmanager
def _client_errors(competition: str, credentials: KaggleCredentials, action: str,
                   on_failure: Callable[[], None] | None = None) -> Iterator[None]:
    """Turn a client call's failures into the one-line errors of :func:`_kaggle_error`.

    ``on_failure`` runs first on any failure (e.g. tidy a staging folder). The ``kaggle``
    package exits (SystemExit) on some authentication failures: that is the credentials line.
    Failures that are not the user's to fix (bugs) propagate unchanged.
    """
    try:
        yield
    except BaseException as exc:
        if on_failure is not None:
            on_failure()
        if isinstance(exc, SystemExit):
            raise DataError(_missing_credentials_message()) from None
        error = _kaggle_error(exc, competition, credentials, action) if isinstance(exc, Exception) else None
        if error is None or isinstance(exc, UserError):
            raise
        raise error from None


def _download_marker_matches(dest: Path, competition: str, files: list[str] | None) -> bool:
    try:
        marker = json.loads((dest / DOWNLOAD_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("competition") == competition and marker.get("files") == files


def _move_contents(src: Path, dst: Path) -> None:
    """Move every entry of ``src`` into ``dst`` (same file system), replacing same-named ones."""
    from cvflow.data.sources.archive import MARKER

    for entry in src.iterdir():
        if entry.name == MARKER:
            continue
        target = dst / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        os.replace(entry, target)


def _unpack_into(archive: Path, build: Path) -> None:
    """Extract ``archive`` (safely, via cvflow.data.sources.archive) and move its members into ``build``."""
    from cvflow.data.sources.archive import extract

    scratch = Path(tempfile.mkdtemp(prefix=f".{archive.name}.unpacking-", dir=build.parent))
    try:
        _move_contents(extract(archive, scratch / "x"), build)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def kaggle_download(competition: str, dest: str | os.PathLike, files: list[str] | None = None, *,
                    client_factory: Callable[[KaggleCredentials], Any] | None = None, force: bool = False) -> Path:
    """Download Kaggle ``competition`` (all files, or only ``files``) unpacked into ``dest``; return ``dest``.

    ``dest`` then holds the competition's files with every archive unpacked: for
    ``cifar-10``, ``train/`` and ``test/`` (from ``train.7z`` / ``test.7z``),
    ``trainLabels.csv`` and ``sampleSubmission.csv``; for ``dog-breed-identification``,
    ``train/``, ``test/``, ``labels.csv`` and ``sample_submission.csv``. A ``dest`` made by an
    earlier call for the same competition and files is returned at once (``force`` fetches
    again). The archives land in ``.<dest>.kaggle-download/`` beside ``dest`` (an interrupted
    download resumes from there), are unpacked into a hidden folder, and only the complete
    result is renamed onto ``dest``.

    ``client_factory(credentials)`` returns the API client (default: the ``kaggle``
    package's ``KaggleApi``); it needs ``competition_download_files(competition, path=...,
    force=..., quiet=...)`` and ``competition_download_file(competition, file_name, path=...,
    force=..., quiet=...)``.
    """
    _check_competition_name(competition)
    dest = Path(dest)
    wanted = sorted(set(files)) if files else None
    if not force and dest.is_dir() and _download_marker_matches(dest, competition, wanted):
        info(f"Kaggle {competition}: already downloaded to {dest}")
        return dest
    if dest.exists() and not (dest / DOWNLOAD_MARKER).is_file() and (not dest.is_dir() or any(dest.iterdir())):
        raise DataError(f"{dest} exists and was not made by a Kaggle download; move it away or pick another folder")

    credentials, client = _connect(client_factory)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".{dest.name}.kaggle-download"
    staging.mkdir(exist_ok=True)
    quiet = not is_interactive()
    info(f"Kaggle {competition}: downloading {', '.join(wanted) if wanted else 'all files'} "
         f"(credentials from {credentials.source})")

    def drop_if_empty() -> None:  # keep a partial download (resumed next time), drop an empty folder
        if not any(staging.iterdir()):
            shutil.rmtree(staging, ignore_errors=True)

    with _client_errors(competition, credentials, "download", on_failure=drop_if_empty):
        if wanted:
            for name in wanted:
                client.competition_download_file(competition, name, path=str(staging), force=force, quiet=quiet)
        else:
            client.competition_download_files(competition, path=str(staging), force=force, quiet=quiet)

    downloaded = sorted(p for p in staging.iterdir() if p.is_file() and not p.name.startswith(".")
                        and not p.name.endswith((".kaggle-partial", ".part", ".tmp")))
    if not downloaded:
        raise DataError(f"Kaggle {competition}: the download left no files in {staging}")
    build = Path(tempfile.mkdtemp(prefix=f".{dest.name}.unpacking-", dir=dest.parent))
    try:
        for item in downloaded:
            if _ARCHIVE_RE.search(item.name):
                _unpack_into(item, build)
            else:
                os.replace(item, build / item.name)
        # cifar-10's zip holds train.7z and test.7z; unpack archives found at the top level once more
        for item in sorted(build.iterdir()):
            if item.is_file() and _ARCHIVE_RE.search(item.name):
                _unpack_into(item, build)
                item.unlink()
        write_json(build / DOWNLOAD_MARKER, {"competition": competition, "files": wanted})
        replace_dir(build, dest)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    info(f"Kaggle {competition}: {dest} ready")
    return dest


# ================================================================================ submit


def check_submission_file(file: str | os.PathLike) -> Path:
    """``file`` as a Path when it is a non-empty file; else the one-line DataError a user acts on."""
    path = Path(file)
    if not path.is_file():
        raise DataError(f"{path}: no such submission file; write it first (cvflow predict ...) or pass --file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the submission file is empty")
    return path


def kaggle_submit(competition: str, file: str | os.PathLike, message: str, *,
                  client_factory: Callable[[KaggleCredentials], Any] | None = None) -> dict[str, str]:
    """Send ``file`` as a submission to Kaggle ``competition`` with ``message``; return what Kaggle said.

    The checks that cost nothing come first (the name, a missing or empty file), so a wrong
    call never reaches the network; then the credentials are looked up and the errors mapped
    exactly as :func:`kaggle_download` does (403: accept the competition's rules). The client
    (``client_factory(credentials)``, default the ``kaggle`` package's ``KaggleApi``) needs
    ``competition_submit(file_name, message, competition, quiet=...)``. Returns
    ``{"competition", "file", "message", "response"}`` (``response``: Kaggle's own text, may be
    empty). Kaggle scores the file later; its leaderboard page shows the result.
    """
    _check_competition_name(competition)
    path = check_submission_file(file)
    if not isinstance(message, str) or not message.strip():
        raise DataError("a Kaggle submission needs a message (e.g. the git commit and MLflow run id)")
    message = _one_line(message)
    credentials, client = _connect(client_factory)
    info(f"Kaggle {competition}: submitting {path} ({path.stat().st_size} bytes) with message {message!r} "
         f"(credentials from {credentials.source})")
    with _client_errors(competition, credentials, "submit to"):
        response = client.competition_submit(str(path), message, competition, quiet=not is_interactive())
    said = credentials.scrub(_one_line(getattr(response, "message", None) or ""))
    failed = getattr(client, "COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE", "Could not submit to competition")
    if said and said == failed:  # kaggle reports a failed upload in the response, not as an exception
        raise DataError(f"Kaggle did not take the submission to {competition!r}: {said}")
    info(f"Kaggle {competition}: submitted{': ' + said if said else ''}; the score appears at "
         f"https://www.kaggle.com/c/{competition}/submissions")
    return {"competition": competition, "file": str(path), "message": message, "response": said}


# --------------------------------------------------------------------------- fetch, any source


def is_competition_root(labels_csv: str) -> Callable[[Path], bool]:
    """A predicate for the folder holding ``train/``, ``test/`` and the labels CSV."""
    return lambda folder: (folder / "train").is_dir() and (folder / "test").is_dir() and (folder / labels_csv).is_file()


def check_competition(root: Path, labels_csv: str) -> dict[str, int]:
    """Image counts of a competition folder; a DataError names what is missing."""
    for needed in ("train", "test", labels_csv):
        if not (root / needed).exists():
            raise DataError(f"{root / needed}: missing; expected train/, test/ and {labels_csv}")
    counts = {split: sum(1 for entry in os.scandir(root / split) if entry.is_file()) for split in ("train", "test")}
    from cvflow.data.readers.kaggle import read_csv_labels

    labels = read_csv_labels(root / labels_csv)
    if len(labels) == 0 or counts["train"] == 0:
        raise DataError(f"{root}: no training images or labels")
    return {**counts, "labels": len(labels)}


def fetch_competition(dest: Path, source: str, *, competition: str, hub_key: str, labels_csv: str,
                      generate: Callable[[Path], object], path: Path | None = None, hub_url: str | None = None,
                      downloads: Path | None = None, client_factory: Callable | None = None) -> dict[str, int]:
    """A Kaggle competition's files at ``dest``: ``demo`` (generated twin), ``d2l`` (the book's
    tiny sample from the data hub), ``kaggle`` (the full competition through the Kaggle API,
    unpacked once into ``downloads`` and hard-linked) or ``local`` (a folder or archive)."""
    from cvflow.data.sources.materialize import fetch_dataset, find_root, link_tree, materialize

    dest = Path(dest)
    downloads = Path(downloads or dest.parent / "downloads")
    is_root = is_competition_root(labels_csv)
    locate = lambda folder: find_root(folder, is_root)  # noqa: E731
    check = lambda root: check_competition(root, labels_csv)  # noqa: E731
    if source == "kaggle":
        cached = kaggle_download(competition, downloads / f"kaggle-{competition}", client_factory=client_factory)
        root = locate(cached)
        if root is None:
            raise DataError(f"{cached}: the download holds no train/, test/ and {labels_csv}")

        def build(work: Path) -> Path:
            link_tree(root, work / "linked")
            return work / "linked"

        return materialize(dest, build, check)
    layout = f"train/, test/ and {labels_csv}"
    return fetch_dataset(dest, source, layout=layout, hub_key=hub_key, locate=locate, check=check,
                         generate=generate, path=path, hub_url=hub_url, downloads=downloads)
