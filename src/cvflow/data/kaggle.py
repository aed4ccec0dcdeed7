"""Kaggle competitions (book 13.13 CIFAR-10, 13.14 dog breeds): download, reorganise, submit.

* :func:`kaggle_download` fetches a competition's files with the official ``kaggle``
  package (imported only when needed) into a staging folder, unpacks them with
  :func:`cvflow.data.archive.extract` (including the ``train.7z`` / ``test.7z`` that the
  cifar-10 zip holds) and renames the result onto ``dest``. Credentials are looked up
  the way the ``kaggle`` package does (:func:`kaggle_credentials`) before anything else, so
  a missing ``kaggle.json`` is one line saying where to put it; HTTP 401 / 403 / 404
  become one-line :class:`~cvflow.errors.DataError` s (403: accept the competition's rules).
  No message ever holds a key or token. The client is injectable (``client_factory``).
* :func:`reorg_kaggle` is the book's ``reorg_train_valid`` + ``reorg_test``: the same
  folders (``train``, ``valid``, ``train_valid``, ``test/unknown``) and the same number of
  validation images per class, ``max(floor(n_min * valid_ratio), 1)`` with ``n_min`` the
  smallest class, but hard links instead of copies (a copy only where linking fails), a
  seeded choice of the validation images, an atomic build and a no-op rerun. ``mode=
  "manifest"`` writes four CSV files instead of any per-image file.
* :func:`write_cifar10_submission` and :func:`write_dog_submission` write the files Kaggle
  expects, atomically.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import math
import os
import re
import shutil
import stat
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from cvflow.console import info, is_interactive, progress
from cvflow.errors import DataError, UserError
from cvflow.fileio import atomic_open, replace_dir, write_json

__all__ = [
    "KaggleCredentials",
    "REORG_MARKER",
    "SPLITS",
    "image_ids",
    "kaggle_config_dir",
    "kaggle_credentials",
    "kaggle_download",
    "read_csv_labels",
    "read_manifest",
    "reorg_kaggle",
    "write_cifar10_submission",
    "write_dog_submission",
]

SPLITS = ("train", "valid", "train_valid", "test")
REORG_MARKER = ".cvflow-reorg.json"
DOWNLOAD_MARKER = ".cvflow-kaggle.json"
_REORG_VERSION = 1
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


def _kaggle_error(exc: BaseException, competition: str, credentials: KaggleCredentials) -> DataError | None:
    """A one-line DataError for a client failure the user can act on (None: not one of those)."""
    status = _http_status(exc)
    page = f"https://www.kaggle.com/c/{competition}"
    if status == 401:
        text = (f"Kaggle rejected the credentials from {credentials.source} (HTTP 401 Unauthorized): they are wrong "
                "or expired; create a new API token at https://www.kaggle.com/settings and replace them")
    elif status == 403:
        text = (f"Kaggle refused to let you download the {competition!r} competition (HTTP 403 Forbidden): "
                f"accept its rules at {page}/rules (logged in as the account of {credentials.source}), then rerun")
    elif status == 404:
        text = (f"Kaggle has no competition {competition!r} or no such file in it (HTTP 404 Not Found): "
                f"check the name at {page}/data")
    elif status is not None:
        hint = "; Kaggle is busy, try again later" if status == 429 or status >= 500 else ""
        text = f"Kaggle answered HTTP {status} to the download of {competition!r}{hint}"
    else:
        import requests

        if not isinstance(exc, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)):
            return None
        reason = _one_line(exc)
        match = re.search(r"\[Errno -?\d+\] [^'\")\]]+", reason)
        reason = match.group(0).strip() if match else (reason[:200] or type(exc).__name__)
        text = (f"cannot reach Kaggle to download {competition!r}: {reason}. Check the network, or run the "
                "offline demo (profile: demo)")
    return DataError(credentials.scrub(text))


def _download_marker_matches(dest: Path, competition: str, files: list[str] | None) -> bool:
    try:
        marker = json.loads((dest / DOWNLOAD_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("competition") == competition and marker.get("files") == files


def _move_contents(src: Path, dst: Path) -> None:
    """Move every entry of ``src`` into ``dst`` (same file system), replacing same-named ones."""
    from cvflow.data.archive import MARKER

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
    """Extract ``archive`` (safely, via cvflow.data.archive) and move its members into ``build``."""
    from cvflow.data.archive import extract

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
    if not isinstance(competition, str) or not _COMPETITION_RE.match(competition):
        raise DataError(f"invalid Kaggle competition name {competition!r} (the last part of its URL, "
                        "e.g. cifar-10 or dog-breed-identification)")
    dest = Path(dest)
    wanted = sorted(set(files)) if files else None
    if not force and dest.is_dir() and _download_marker_matches(dest, competition, wanted):
        info(f"Kaggle {competition}: already downloaded to {dest}")
        return dest
    if dest.exists() and not (dest / DOWNLOAD_MARKER).is_file() and (not dest.is_dir() or any(dest.iterdir())):
        raise DataError(f"{dest} exists and was not made by a Kaggle download; move it away or pick another folder")

    credentials = kaggle_credentials()
    client = (client_factory or _default_client)(credentials)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".{dest.name}.kaggle-download"
    staging.mkdir(exist_ok=True)
    quiet = not is_interactive()
    info(f"Kaggle {competition}: downloading {', '.join(wanted) if wanted else 'all files'} "
         f"(credentials from {credentials.source})")
    try:
        if wanted:
            for name in wanted:
                client.competition_download_file(competition, name, path=str(staging), force=force, quiet=quiet)
        else:
            client.competition_download_files(competition, path=str(staging), force=force, quiet=quiet)
    except BaseException as exc:
        if not any(staging.iterdir()):  # keep a partial download (resumed next time), drop an empty folder
            shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, SystemExit):  # the kaggle package exits on some authentication failures
            raise DataError(_missing_credentials_message()) from None
        error = _kaggle_error(exc, competition, credentials) if isinstance(exc, Exception) else None
        if error is None or isinstance(exc, UserError):
            raise
        raise error from None

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


# ========================================================================= reorganisation


def _labels_series(labels: Mapping[str, str] | str | os.PathLike) -> pd.Series:
    """Labels as a Series indexed by image id (a CSV's first two columns, e.g. id,label or id,breed)."""
    if isinstance(labels, Mapping):
        series = pd.Series({str(k): str(v) for k, v in labels.items()}, dtype=object)
        where = "the labels"
    else:
        path = Path(labels)
        where = str(path)
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        except FileNotFoundError:
            raise DataError(f"{path}: no such labels file") from None
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise DataError(f"{path}: cannot read it as CSV ({_one_line(exc)})") from None
        if frame.shape[1] < 2:
            raise DataError(f"{path}: expected two columns (id,label), found {list(frame.columns)}")
        series = pd.Series(frame.iloc[:, 1].str.strip().to_numpy(), index=frame.iloc[:, 0].str.strip(), dtype=object)
    if series.index.has_duplicates:
        dup = series.index[series.index.duplicated()].unique()[:5].tolist()
        raise DataError(f"{where}: duplicate ids {dup}")
    if (series == "").any():
        raise DataError(f"{where}: empty label for ids {series.index[series == ''][:5].tolist()}")
    bad = [v for v in series.unique() if v in (".", "..") or "/" in v or "\\" in v or v.startswith(".")]
    if bad:
        raise DataError(f"{where}: labels that cannot be folder names: {bad[:5]}")
    return series


def read_csv_labels(path: str | os.PathLike) -> dict[str, str]:
    """The book's ``read_csv_labels``: ``{id: label}`` from a CSV with a header (``id,label``)."""
    series = _labels_series(path)
    return dict(zip(series.index.tolist(), series.tolist()))


def _list_files(folder: Path, what: str) -> list[str]:
    """Names of the (non-hidden) files in ``folder``, sorted: one scandir, no per-file stat."""
    try:
        with os.scandir(folder) as entries:
            names = [e.name for e in entries if not e.name.startswith(".") and e.is_file()]
    except FileNotFoundError:
        raise DataError(f"{folder}: no such folder ({what})") from None
    except NotADirectoryError:
        raise DataError(f"{folder}: not a folder ({what})") from None
    if not names:
        raise DataError(f"{folder}: no files ({what})")
    names.sort()
    return names


def _fingerprint(parts: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogateescape"))
        digest.update(b"\n")
    return digest.hexdigest()


_LINK_FALLBACK = {errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}


def _link_all(jobs: list[tuple[str, str]], workers: int, what: str) -> tuple[int, int]:
    """Hard-link each ``(src, dst)``; copy where the file system refuses. Returns (linked, copied)."""
    copy_only = [False]  # set once linking fails across file systems: skip the doomed os.link calls

    def run(chunk: list[tuple[str, str]]) -> tuple[int, int]:
        linked = copied = 0
        for src, dst in chunk:
            if not copy_only[0]:
                try:
                    os.link(src, dst)
                    linked += 1
                    continue
                except OSError as exc:
                    if exc.errno not in _LINK_FALLBACK:
                        raise
                    if exc.errno == errno.EXDEV:
                        copy_only[0] = True
            shutil.copyfile(src, dst)
            copied += 1
        return linked, copied

    size = 4096
    chunks = [jobs[i:i + size] for i in range(0, len(jobs), size)]
    linked = copied = 0
    with progress(what, total=len(jobs), unit="files") as bar:
        if workers <= 1 or len(chunks) <= 1:
            results: Iterable[tuple[int, int]] = map(run, chunks)
            for (a, b), chunk in zip(results, chunks):
                linked, copied = linked + a, copied + b
                bar.advance(len(chunk))
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for (a, b), chunk in zip(pool.map(run, chunks), chunks):
                    linked, copied = linked + a, copied + b
                    bar.advance(len(chunk))
    return linked, copied


def _write_manifest(path: Path, rel_paths: Sequence[str], labels: Sequence[str]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")  # quotes a name holding a comma
        writer.writerow(("path", "label"))
        writer.writerows(zip(rel_paths, labels))


def read_manifest(path: str | os.PathLike) -> list[tuple[Path, str]]:
    """``(image path, label)`` pairs of a manifest written by ``reorg_kaggle(mode="manifest")``.

    Relative paths are resolved against the manifest's folder (``out_dir``)."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot read the manifest ({_one_line(exc)})") from None
    if list(frame.columns[:2]) != ["path", "label"]:
        raise DataError(f"{path}: not a manifest (expected the header path,label)")
    base = path.parent
    return [(base / p, label) for p, label in zip(frame["path"], frame["label"])]


def _counts(frame: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in sorted(frame["label"].value_counts().items())}


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def reorg_kaggle(train_dir: str | os.PathLike, labels: Mapping[str, str] | str | os.PathLike,
                 out_dir: str | os.PathLike, valid_ratio: float = 0.1, seed: int = 0,
                 test_dir: str | os.PathLike | None = None, mode: str = "link", *,
                 workers: int | None = None) -> dict[str, Any]:
    """The book's reorganisation (13.13 ``reorg_train_valid`` + ``reorg_test``) into ``out_dir``.

    ``mode="link"`` gives ``out_dir/{train,valid,train_valid}/<label>/<file>`` and
    ``out_dir/test/unknown/<file>``, every file a hard link to the original (a copy only
    where the file system refuses links, e.g. across file systems). ``mode="manifest"``
    writes ``out_dir/{train,valid,train_valid,test}.csv`` (``path,label``; paths relative to
    ``out_dir``; test label ``unknown``) and no per-image files; see :func:`read_manifest`.

    ``labels`` maps an image id (the file name without extension) to its class: a dict, or
    a CSV such as Kaggle's ``trainLabels.csv`` (``id,label``) or ``labels.csv`` (``id,breed``).
    Each class puts ``n_valid = max(floor(n_min * valid_ratio), 1)`` images in ``valid``,
    ``n_min`` being the size of the smallest class among the training images (the book's
    rule: identical whenever the CSV lists exactly the files in ``train_dir``, as Kaggle's
    do); which ones: the files sorted by name, shuffled with ``seed``, the first ``n_valid``
    of each class. ``train_valid`` holds them all.

    Built in a hidden folder beside ``out_dir`` and renamed onto it. A rerun with the same
    inputs (folders, file names, labels, ratio, seed, mode) finds ``out_dir/.cvflow-reorg.json``
    and returns at once; other inputs rebuild it. An existing ``out_dir`` not made by this
    function is refused. Returns ``{"n_valid_per_label": n, "train": {label: count}, "valid":
    {...}, "train_valid": {...}, "test": {"unknown": count}, "mode": mode, "linked": k,
    "copied": m}`` (``test`` only with ``test_dir``).

    ``workers``: threads issuing the ``os.link`` calls (default ``min(4, CPUs)``). On a local
    ext4 disk the kernel serialises links into one folder and one thread is as fast
    (benchmarks/bench_kaggle_reorg.py: 400,000 links in about 6 s either way); threads
    only help where each call waits on something else (a busy CPU, a network file system).
    """
    if mode not in ("link", "manifest"):
        raise DataError(f"unknown reorganisation mode {mode!r}: use link or manifest")
    if not isinstance(valid_ratio, (int, float)) or not 0.0 < float(valid_ratio) < 1.0:
        raise DataError(f"valid_ratio must be between 0 and 1 (exclusive), got {valid_ratio!r}")
    train_dir = Path(train_dir).resolve()
    test_path = Path(test_dir).resolve() if test_dir is not None else None
    out_dir = Path(out_dir).absolute()
    out_real = out_dir.resolve()
    for source in (train_dir, test_path):
        if source is not None and (_inside(out_real, source) or _inside(source, out_real)):
            raise DataError(f"out_dir {out_dir} and the source folder {source} overlap; pick an out_dir outside it")

    names = _list_files(train_dir, "the training images")
    ids = [os.path.splitext(n)[0] for n in names]
    series = _labels_series(labels)
    frame = pd.DataFrame({"name": names, "label": series.reindex(ids).to_numpy()})
    unlabelled = frame["label"].isna()
    if unlabelled.any():
        missing = frame.loc[unlabelled, "name"]
        raise DataError(f"{train_dir}: {len(missing)} image(s) have no label, e.g. {missing.iloc[:5].tolist()}; "
                        "the labels file does not belong to these images")
    test_names = _list_files(test_path, "the test images") if test_path is not None else []

    key = _fingerprint([str(_REORG_VERSION), mode, repr(float(valid_ratio)), str(int(seed)), str(train_dir),
                        str(test_path), str(out_real), *names, *frame["label"].tolist(), "--test--", *test_names])
    marker = out_dir / REORG_MARKER
    if out_dir.exists():
        try:
            previous = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            previous = None
        if isinstance(previous, dict) and previous.get("fingerprint") == key:
            info(f"{out_dir}: already reorganised with these inputs (nothing to do)")
            return previous["counts"]
        if previous is None and (not out_dir.is_dir() or any(out_dir.iterdir())):
            raise DataError(f"{out_dir} exists and was not made by reorg_kaggle; move it away or pick another out_dir")

    # the book's rule, on the labelled training images
    class_counts = frame["label"].value_counts()
    n_min = int(class_counts.min())
    n_valid = max(1, math.floor(n_min * valid_ratio))
    order = np.random.default_rng(int(seed)).permutation(len(frame))
    shuffled = frame.iloc[order]
    rank = shuffled.groupby("label", sort=False).cumcount().to_numpy()
    is_valid = np.zeros(len(frame), dtype=bool)
    is_valid[order] = rank < n_valid
    splits = {"train": frame[~is_valid], "valid": frame[is_valid], "train_valid": frame}
    test_frame = pd.DataFrame({"name": test_names, "label": "unknown"}) if test_path is not None else None
    if test_frame is not None:
        splits["test"] = test_frame
    counts: dict[str, Any] = {"n_valid_per_label": n_valid}
    counts.update({split: _counts(part) for split, part in splits.items()})

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-", dir=out_dir.parent))
    try:
        linked = copied = 0
        if mode == "link":
            jobs: list[tuple[str, str]] = []
            for split, part in splits.items():
                source = str(test_path if split == "test" else train_dir)
                for label in part["label"].unique():
                    os.makedirs(os.path.join(build, split, label))
                src = (source + os.sep + part["name"]).tolist()
                dst = (str(build) + os.sep + split + os.sep + part["label"] + os.sep + part["name"]).tolist()
                jobs.extend(zip(src, dst))
            n_workers = workers if workers is not None else min(4, os.cpu_count() or 1)
            linked, copied = _link_all(jobs, n_workers, f"linking {len(jobs)} files into {out_dir.name}")
            if copied:
                info(f"{out_dir}: {copied} file(s) copied (hard links are not possible there), {linked} linked")
        else:
            for split, part in splits.items():
                source = test_path if split == "test" else train_dir
                try:
                    prefix = Path(os.path.relpath(source, out_real)).as_posix()
                except ValueError:  # another drive (Windows): absolute paths
                    prefix = source.as_posix()
                _write_manifest(build / f"{split}.csv", (prefix + "/" + part["name"]).tolist(),
                                part["label"].tolist())
        counts.update(mode=mode, linked=linked, copied=copied)
        write_json(build / REORG_MARKER, {"fingerprint": key, "counts": counts, "train_dir": str(train_dir),
                                          "test_dir": str(test_path) if test_path else None,
                                          "valid_ratio": float(valid_ratio), "seed": int(seed)})
        replace_dir(build, out_dir)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    info(f"{out_dir}: {len(frame)} training images, {n_valid} per class to valid"
         + (f", {len(test_names)} test images" if test_path is not None else "") + f" ({mode})")
    return counts


# ============================================================================ submissions


def image_ids(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Kaggle ids of image files: the file name without its extension (``test/17.png`` -> ``17``)."""
    return [os.path.splitext(os.path.basename(os.fspath(p)))[0] for p in paths]


def _check_text(values: Iterable[str], what: str) -> None:
    for value in values:
        if not isinstance(value, str) or not value or any(c in value for c in ",\n\r\""):
            raise DataError(f"invalid {what} {value!r} for a submission (need non-empty text without , \" or newlines)")


def write_cifar10_submission(ids: Sequence[int | str], labels: Sequence[str], path: str | os.PathLike) -> Path:
    """Kaggle cifar-10 submission: ``id,label`` with one row per image, sorted by numeric id.

    ``ids`` are the test images' ids (ints or digit strings, in any order, e.g. the
    string-sorted order of ``test/unknown``); ``labels`` the predicted class names, in the
    same order. Written atomically.
    """
    if len(ids) != len(labels):
        raise DataError(f"submission: {len(ids)} ids but {len(labels)} labels")
    try:
        numeric = [int(str(i).strip()) for i in ids]
    except ValueError:
        bad = next(i for i in ids if not str(i).strip().lstrip("-").isdigit())
        raise DataError(f"submission: id {bad!r} is not a number (Kaggle cifar-10 ids are 1..300000)") from None
    if len(set(numeric)) != len(numeric):
        raise DataError("submission: duplicate ids")
    labels = list(labels)
    if any(not isinstance(v, str) for v in labels):
        raise DataError("submission: labels must be class names (map class indices through the class list first)")
    _check_text(labels, "label")
    order = np.argsort(np.asarray(numeric, dtype=np.int64), kind="stable")
    path = Path(path)
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("id,label\n")
        handle.writelines(f"{numeric[i]},{labels[i]}\n" for i in order.tolist())
    return path


def write_dog_submission(ids: Sequence[str], probs: Any, classes: Sequence[str],
                         sample_submission_path: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Kaggle dog-breed submission, shaped exactly like ``sample_submission.csv``.

    ``probs[i, j]`` is the probability that image ``ids[i]`` shows ``classes[j]`` (the
    model's class order, e.g. ImageFolder's). The columns are those of the sample (``id``,
    then the breeds in the sample's order; the probabilities are reordered to match); the
    rows follow the sample's id order when it lists ids (then ``ids`` must be exactly those),
    else the order of ``ids``. Written atomically.
    """
    sample_path = Path(sample_submission_path)
    try:
        sample = pd.read_csv(sample_path, dtype=str, keep_default_na=False, usecols=[0])
        header = pd.read_csv(sample_path, nrows=0).columns.tolist()
    except FileNotFoundError:
        raise DataError(f"{sample_path}: no such sample submission") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{sample_path}: cannot read the sample submission ({_one_line(exc)})") from None
    if not header or header[0] != "id" or len(header) < 2:
        raise DataError(f"{sample_path}: expected the header id,<breed>,<breed>,..., found {header[:3]}")
    breeds = header[1:]
    classes = [str(c) for c in classes]
    if len(set(classes)) != len(classes):
        raise DataError("submission: duplicate class names")
    missing = [b for b in breeds if b not in classes]
    extra = [c for c in classes if c not in set(breeds)]
    if missing or extra:
        raise DataError(f"submission: the classes do not match {sample_path.name}'s columns: "
                        f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                        f"not in the sample {extra[:5]}{'...' if len(extra) > 5 else ''}")
    table = np.asarray(probs, dtype=np.float64)
    ids = [str(i) for i in ids]
    if table.shape != (len(ids), len(classes)):
        raise DataError(f"submission: probs has shape {table.shape}, expected ({len(ids)}, {len(classes)})")
    if not np.all(np.isfinite(table)) or (table < 0).any():
        raise DataError("submission: probabilities must be finite and >= 0")
    _check_text(ids, "id")
    if len(set(ids)) != len(ids):
        raise DataError("submission: duplicate ids")
    index = {c: j for j, c in enumerate(classes)}
    table = table[:, [index[b] for b in breeds]]
    row_of = {image_id: i for i, image_id in enumerate(ids)}
    sample_ids = sample.iloc[:, 0].str.strip().tolist()
    if sample_ids:
        absent = [i for i in sample_ids if i not in row_of]
        unknown = len(ids) - (len(sample_ids) - len(absent))
        if absent or unknown:
            raise DataError(f"submission: the ids do not match {sample_path.name}: {len(absent)} of its ids have "
                            f"no prediction (e.g. {absent[:3]}), {unknown} predicted id(s) are not in it")
        rows = [row_of[i] for i in sample_ids]
    else:
        rows = list(range(len(ids)))
    path = Path(path)
    values = table.tolist()
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(",".join(header) + "\n")
        handle.writelines(ids[r] + "," + ",".join(map(repr, values[r])) + "\n" for r in rows)
    return path


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
    from cvflow.data.sources import fetch_dataset, find_root, link_tree, materialize

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
