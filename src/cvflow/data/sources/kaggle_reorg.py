"""The book's Kaggle reorganisation (13.13 ``reorg_train_valid`` + ``reorg_test``), with hard links.

:func:`reorg_kaggle` gives the same folders (``train``, ``valid``, ``train_valid``,
``test/unknown``) and the same number of validation images per class,
``max(floor(n_min * valid_ratio), 1)`` with ``n_min`` the smallest class, but hard links
instead of copies (a copy only where linking fails), a seeded choice of the validation
images, an atomic build and a no-op rerun. ``mode="manifest"`` writes four CSV files
instead of any per-image file (read them with
:func:`cvflow.data.readers.kaggle.read_manifest`).

The output is a DVC output, so it is location-independent: its marker
(``.cvflow-reorg.json``) holds the source folders relative to the output's parent and a
fingerprint over relative paths, file names, labels, ratio, seed and mode; the same data
reorganised in two checkouts gives byte-identical folders.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import math
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from cvflow.console import info, progress
from cvflow.errors import DataError
from cvflow.fileio import replace_dir, write_json

from cvflow.data.readers.kaggle import labels_series

__all__ = ["REORG_MARKER", "reorg_kaggle"]
REORG_MARKER = ".cvflow-reorg.json"
_REORG_VERSION = 1


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


def _counts(frame: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in sorted(frame["label"].value_counts().items())}


def _relative(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` in POSIX form (absolute only where no relative path exists: another drive)."""
    try:
        return Path(os.path.relpath(path, base)).as_posix()
    except ValueError:  # another drive (Windows)
        return path.as_posix()


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
    inputs (folders relative to ``out_dir``'s parent, file names, labels, ratio, seed, mode)
    finds ``out_dir/.cvflow-reorg.json``
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
    series = labels_series(labels)
    frame = pd.DataFrame({"name": names, "label": series.reindex(ids).to_numpy()})
    unlabelled = frame["label"].isna()
    if unlabelled.any():
        missing = frame.loc[unlabelled, "name"]
        raise DataError(f"{train_dir}: {len(missing)} image(s) have no label, e.g. {missing.iloc[:5].tolist()}; "
                        "the labels file does not belong to these images")
    test_names = _list_files(test_path, "the test images") if test_path is not None else []

    # Location-independent (the output is a DVC output): the sources relative to out_dir's parent.
    train_rel = _relative(train_dir, out_real.parent)
    test_rel = _relative(test_path, out_real.parent) if test_path is not None else None
    key = _fingerprint([str(_REORG_VERSION), mode, repr(float(valid_ratio)), str(int(seed)), train_rel,
                        str(test_rel), *names, *frame["label"].tolist(), "--test--", *test_names])
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
        write_json(build / REORG_MARKER, {"fingerprint": key, "counts": counts, "train_dir": train_rel,
                                          "test_dir": test_rel,
                                          "valid_ratio": float(valid_ratio), "seed": int(seed)})
        replace_dir(build, out_dir)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    info(f"{out_dir}: {len(frame)} training images, {n_valid} per class to valid"
         + (f", {len(test_names)} test images" if test_path is not None else "") + f" ({mode})")
    return counts
