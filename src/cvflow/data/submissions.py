"""Kaggle submission files (book 13.13 CIFAR-10, 13.14 dog breeds), written atomically.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from cvflow.errors import DataError
from cvflow.fileio import atomic_open

from cvflow.data.readers.kaggle import one_line as _one_line

__all__ = ["check_dog_submission", "image_ids", "multiclass_log_loss", "score_submission", "write_cifar10_submission",
           "write_dog_submission"]


def image_ids(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Kaggle ids of image files: the file name without its extension (``test/17.png`` -> ``17``)."""
    return [os.path.splitext(os.path.basename(os.fspath(p)))[0] for p in paths]


def _check_text(values: Iterable[str], what: str) -> None:
    for value in values:
        if not isinstance(value, str) or not value or any(c in value for c in ",\n\r\""):
            raise DataError(f"invalid {what} {value!r} for a submission (need non-empty text without , \" or newlines)")


def _examples(values: Iterable[Any], n: int = 3) -> str:
    """``[5, 9, 12]`` or ``[5, 9, 12, ...]``: a few sorted examples for an error line."""
    values = sorted(values, key=lambda v: (not isinstance(v, int), v if isinstance(v, int) else str(v)))
    return "[" + ", ".join(map(repr, values[:n])) + (", ..." if len(values) > n else "") + "]"


def _numeric_ids(ids: Iterable[Any], where: str) -> list[int]:
    out = []
    for value in ids:
        text = str(value).strip()
        if not text.isdigit():
            raise DataError(f"{where}: id {value!r} is not a number (Kaggle cifar-10 ids are 1..300000)")
        out.append(int(text))
    return out


def _read_sample_submission(path: Path, target: Path) -> tuple[list[str], list[int]]:
    """The header and the ids of a cifar-10 ``sampleSubmission.csv`` (errors name ``target`` first)."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        raise DataError(f"{target}: cannot check it against {path}: no such sample submission") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{target}: cannot read the sample submission {path} ({_one_line(exc)})") from None
    rows = [r for r in rows if r]
    if not rows:
        raise DataError(f"{target}: the sample submission {path} is empty")
    return [c.strip() for c in rows[0]], _numeric_ids((r[0] for r in rows[1:]), f"{target} (sample {path.name})")


def write_cifar10_submission(ids: Sequence[int | str], labels: Sequence[str], path: str | os.PathLike, *,
                             classes: Sequence[str] | None = None, expected_ids: Iterable[int | str] | None = None,
                             sample_submission: str | os.PathLike | None = None) -> Path:
    """Kaggle cifar-10 submission: ``id,label`` with one row per image, sorted by numeric id.

    ``ids`` are the test images' ids (ints or digit strings, in any order, e.g. the
    string-sorted order of ``test/unknown``: take each from its own file name, never from a
    position); ``labels`` the predicted class names, in the same order.

    The file is checked before it is written, since Kaggle only says "error" after the upload:
    ``classes`` (every label one of them), ``expected_ids`` (the ids of the test files: each
    exactly once, no other) and ``sample_submission`` (the competition's ``sampleSubmission.csv``:
    header ``id,label``, the same row count and ids). A wrong file is refused with a one-line
    :class:`~cvflow.errors.DataError` naming the file and what is wrong; the write is atomic,
    so nothing half-written (and no earlier file replaced) is left behind.
    """
    path = Path(path)
    if len(ids) != len(labels):
        raise DataError(f"{path}: {len(ids)} ids but {len(labels)} labels")
    numeric = _numeric_ids(ids, str(path))
    seen: set[int] = set()
    duplicates = {i for i in numeric if i in seen or seen.add(i)}
    if duplicates:
        raise DataError(f"{path}: {len(duplicates)} duplicate id(s), e.g. {_examples(duplicates)}")
    labels = list(labels)
    if any(not isinstance(v, str) for v in labels):
        raise DataError(f"{path}: labels must be class names (map class indices through the class list first)")
    _check_text(labels, "label")
    if classes is not None:
        known = set(map(str, classes))
        unknown = {v for v in labels if v not in known}
        if unknown:
            count = sum(v in unknown for v in labels)
            raise DataError(f"{path}: {count} label(s) are not classes ({', '.join(sorted(known))}), "
                            f"e.g. {_examples(unknown)}")
    if expected_ids is not None:
        expected = set(_numeric_ids(expected_ids, f"{path} (expected ids)"))
        missing, extra = expected - seen, seen - expected
        if missing:
            raise DataError(f"{path}: {len(missing)} test id(s) have no prediction, e.g. {_examples(missing)}")
        if extra:
            raise DataError(f"{path}: {len(extra)} predicted id(s) are not test images, e.g. {_examples(extra)}")
    if sample_submission is not None:
        sample = Path(sample_submission)
        header, sample_ids = _read_sample_submission(sample, path)
        if header != ["id", "label"]:
            raise DataError(f"{path}: {sample.name} has the header {','.join(header)!r}, expected 'id,label'")
        if len(sample_ids) != len(numeric):
            raise DataError(f"{path}: {len(numeric)} rows but {sample.name} has {len(sample_ids)}")
        if set(sample_ids) != seen:
            absent = set(sample_ids) - seen
            raise DataError(f"{path}: the ids differ from {sample.name}'s: {len(absent)} of its ids have no "
                            f"prediction, e.g. {_examples(absent)}")
    order = np.argsort(np.asarray(numeric, dtype=np.int64), kind="stable")
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("id,label\n")
        handle.writelines(f"{numeric[i]},{labels[i]}\n" for i in order.tolist())
    return path


def _read_id_label(path: Path, what: str) -> pd.DataFrame:
    """An ``id,label`` CSV as strings (ids stripped), or a one-line DataError."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such {what}") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot read the {what} ({_one_line(exc)})") from None
    if [str(c).strip() for c in table.columns] != ["id", "label"]:
        raise DataError(f"{path}: expected the header 'id,label' in the {what}, found {','.join(map(str, table.columns))!r}")
    table.columns = ["id", "label"]
    table["id"] = table["id"].str.strip()
    table["label"] = table["label"].str.strip()
    duplicated = table["id"][table["id"].duplicated()]
    if len(duplicated):
        raise DataError(f"{path}: {len(duplicated)} duplicate id(s) in the {what}, e.g. {_examples(set(duplicated))}")
    return table


def score_submission(submission_csv: str | os.PathLike, labels_csv: str | os.PathLike,
                     classes: Sequence[str] | None = None) -> dict[str, Any]:
    """Score an ``id,label`` submission against an ``id,label`` labels file: what Kaggle would say.

    Only the submission's ids are scored, so a labels file covering more images (all of a
    test set, while the submission covers a slice) is fine; a submission id without a label
    is refused with one line, since a score that silently skipped it would look better than
    it is. ``classes``: every submitted label must be one of them. Returns
    ``{"accuracy": float, "scored": n, "per_class": {true label: accuracy}}`` (per-class keys
    in ``classes`` order when given, else sorted).
    """
    submission_csv, labels_csv = Path(submission_csv), Path(labels_csv)
    sub = _read_id_label(submission_csv, "submission")
    truth = _read_id_label(labels_csv, "labels file")
    if sub.empty:
        raise DataError(f"{submission_csv}: the submission has no rows")
    if classes is not None:
        known = set(map(str, classes))
        unknown = set(sub["label"]) - known
        if unknown:
            raise DataError(f"{submission_csv}: {int(sub['label'].isin(unknown).sum())} label(s) are not classes, "
                            f"e.g. {_examples(unknown)}")
    merged = sub.merge(truth, on="id", how="left", suffixes=("_pred", "_true"), indicator=True)
    unlabelled = merged.loc[merged["_merge"] == "left_only", "id"]
    if len(unlabelled):
        raise DataError(f"{submission_csv}: {len(unlabelled)} submission id(s) have no label in {labels_csv}, "
                        f"e.g. {_examples(set(unlabelled))}")
    correct = merged["label_pred"] == merged["label_true"]
    by_class = correct.groupby(merged["label_true"]).mean()
    order = [c for c in map(str, classes) if c in by_class.index] if classes is not None else sorted(by_class.index)
    return {"accuracy": float(correct.mean()), "scored": int(len(merged)),
            "per_class": {label: float(by_class[label]) for label in order}}


#: How far a row of a dog-breed submission may sum from 1 (softmax in float64, written with repr).
SUM_TOLERANCE = 1e-6


def _sample_columns(sample_path: Path, where: str) -> tuple[list[str], list[str]]:
    """The header and the ids of a dog-breed ``sample_submission.csv`` (ids may be absent)."""
    try:
        header = pd.read_csv(sample_path, nrows=0).columns.tolist()
        sample = pd.read_csv(sample_path, dtype=str, keep_default_na=False, usecols=[0])
    except FileNotFoundError:
        raise DataError(f"{sample_path}: no such sample submission") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{sample_path}: cannot read the sample submission ({_one_line(exc)})") from None
    if not header or header[0] != "id" or len(header) < 2:
        raise DataError(f"{where}: {sample_path.name} should have the header id,<breed>,<breed>,..., found {header[:3]}")
    return [str(c) for c in header], sample.iloc[:, 0].str.strip().tolist()


def _check_dog_rows(where: str, ids: list[str], table: np.ndarray, breeds: Sequence[str],
                    expected_ids: Iterable[str] | None, sample: tuple[Path, list[str]] | None) -> None:
    """What every dog-breed submission must be, before it is written or sent: one row per id, each id
    once (and exactly the expected ones, and the sample's), probabilities finite, >= 0, summing to 1."""
    if table.shape != (len(ids), len(breeds)):
        raise DataError(f"{where}: probs has shape {table.shape}, expected ({len(ids)}, {len(breeds)})")
    if not len(ids):
        raise DataError(f"{where}: no rows")
    _check_text(ids, "id")
    seen: set[str] = set()
    duplicates = {i for i in ids if i in seen or seen.add(i)}
    if duplicates:
        raise DataError(f"{where}: {len(duplicates)} duplicate id(s), e.g. {_examples(duplicates)}")
    bad = ~np.isfinite(table).all(axis=1) | (table < 0).any(axis=1)
    if bad.any():
        raise DataError(f"{where}: {int(bad.sum())} row(s) hold probabilities that are not finite and >= 0 "
                        f"(NaN, inf or negative), e.g. id {ids[int(np.argmax(bad))]!r}")
    off = np.abs(table.sum(axis=1) - 1.0) > SUM_TOLERANCE
    if off.any():
        first = int(np.argmax(off))
        raise DataError(f"{where}: {int(off.sum())} row(s) do not sum to 1 (within {SUM_TOLERANCE:g}), e.g. id "
                        f"{ids[first]!r} sums to {table[first].sum():.9g}: write softmax probabilities")
    if expected_ids is not None:
        expected = {str(i) for i in expected_ids}
        missing, extra = expected - seen, seen - expected
        if missing:
            raise DataError(f"{where}: {len(missing)} test id(s) have no prediction, e.g. {_examples(missing)}")
        if extra:
            raise DataError(f"{where}: {len(extra)} predicted id(s) are not test images, e.g. {_examples(extra)}")
    if sample is not None and sample[1]:
        sample_path, sample_ids = sample
        absent = [i for i in sample_ids if i not in seen]
        unknown = len(ids) - (len(sample_ids) - len(absent))
        if absent or unknown:
            raise DataError(f"{where}: the ids do not match {sample_path.name}: {len(absent)} of its ids have "
                            f"no prediction (e.g. {absent[:3]}), {unknown} predicted id(s) are not in it")


def write_dog_submission(ids: Sequence[str], probs: Any, classes: Sequence[str],
                         sample_submission_path: str | os.PathLike | None, path: str | os.PathLike, *,
                         expected_ids: Iterable[str] | None = None) -> Path:
    """Kaggle dog-breed submission: ``id`` then one probability column per breed, one row per image.

    ``probs[i, j]`` is the probability that image ``ids[i]`` shows ``classes[j]`` (the
    model's class order, e.g. ImageFolder's; each row sums to 1). With the competition's
    ``sample_submission_path``, the columns are the sample's (``id``, then the breeds in its
    order; the probabilities are reordered to match) and the rows follow the sample's id order
    when it lists ids (then ``ids`` must be exactly those); without one (None), the breeds are
    sorted and the rows keep the order of ``ids``.

    Checked before anything is written, since Kaggle only says "error" after the upload: the
    classes are the sample's breeds, every id once (``expected_ids``: exactly the test files'
    ids, taken from their names), every probability finite and >= 0, every row summing to 1
    within :data:`SUM_TOLERANCE`. A wrong file is refused with a one-line
    :class:`~cvflow.errors.DataError`; the write is atomic.
    """
    path = Path(path)
    classes = [str(c) for c in classes]
    if len(set(classes)) != len(classes):
        raise DataError(f"{path}: duplicate class names")
    sample = None
    if sample_submission_path is not None:
        sample_path = Path(sample_submission_path)
        header, sample_ids = _sample_columns(sample_path, str(path))
        sample = (sample_path, sample_ids)
        breeds = header[1:]
        missing = [b for b in breeds if b not in classes]
        extra = [c for c in classes if c not in set(breeds)]
        if missing or extra:
            raise DataError(f"{path}: the classes do not match {sample_path.name}'s columns: "
                            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                            f"not in the sample {extra[:5]}{'...' if len(extra) > 5 else ''}")
    else:
        breeds = sorted(classes)
        _check_text(breeds, "breed")
        header = ["id", *breeds]
    table = np.asarray(probs, dtype=np.float64)
    ids = [str(i) for i in ids]
    if table.shape != (len(ids), len(classes)):
        raise DataError(f"{path}: probs has shape {table.shape}, expected ({len(ids)}, {len(classes)})")
    index = {c: j for j, c in enumerate(classes)}
    table = table[:, [index[b] for b in breeds]]
    _check_dog_rows(str(path), ids, table, breeds, expected_ids, sample)
    row_of = {image_id: i for i, image_id in enumerate(ids)}
    rows = [row_of[i] for i in sample[1]] if sample is not None and sample[1] else list(range(len(ids)))
    values = table.tolist()
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(",".join(header) + "\n")
        handle.writelines(ids[r] + "," + ",".join(map(repr, values[r])) + "\n" for r in rows)
    return path


def check_dog_submission(path: str | os.PathLike, *, sample_submission: str | os.PathLike | None = None,
                         expected_ids: Iterable[str] | None = None) -> dict[str, int]:
    """Check a dog-breed submission FILE as :func:`write_dog_submission` checks what it writes (before
    ``cvflow submit``): header ``id,<breed>,...`` (the sample's, when given), every id once (the
    sample's ids, ``expected_ids``), probabilities finite, >= 0, each row summing to 1. Returns
    ``{"rows", "breeds"}``; a wrong file is a one-line :class:`~cvflow.errors.DataError`."""
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype={"id": str}, keep_default_na=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such submission file; write it first (cvflow predict ...) or pass --file") from None
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: cannot read the submission ({_one_line(exc)})") from None
    header = [str(c) for c in table.columns]
    if not header or header[0] != "id" or len(header) < 2:
        raise DataError(f"{path}: expected the header id,<breed>,<breed>,..., found {header[:3]}")
    breeds = header[1:]
    if len(set(breeds)) != len(breeds):
        raise DataError(f"{path}: duplicate breed columns")
    sample = None
    if sample_submission is not None:
        sample_path = Path(sample_submission)
        sample_header, sample_ids = _sample_columns(sample_path, str(path))
        if header != sample_header:
            raise DataError(f"{path}: the columns differ from {sample_path.name}'s (same breeds, same order needed)")
        sample = (sample_path, sample_ids)
    try:
        values = table[breeds].apply(pd.to_numeric, errors="raise").to_numpy(dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: a probability is not a number ({_one_line(exc)})") from None
    _check_dog_rows(str(path), table["id"].astype(str).str.strip().tolist(), values, breeds, expected_ids, sample)
    return {"rows": len(table), "breeds": len(breeds)}


def multiclass_log_loss(probs: Any, labels: Any, eps: float = 1e-15) -> float:
    """Kaggle's multi-class log loss (dog-breed-identification's metric): each row divided by its sum,
    clipped to ``[eps, 1 - eps]``, then minus the mean log probability of the true class.

    Written here because torchmetrics has no log loss and torch's ``cross_entropy`` takes logits
    and never clips (a confident wrong answer costs at most ``-log(1e-15) = 34.5`` on Kaggle).
    """
    table = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if table.ndim != 2 or len(table) != len(labels) or not len(labels):
        raise ValueError(f"probs must be (N, classes) with N = {len(labels)} > 0 labels, got {table.shape}")
    table = np.clip(table / table.sum(axis=1, keepdims=True), eps, 1 - eps)
    return float(-np.log(table[np.arange(len(labels)), labels]).mean())
