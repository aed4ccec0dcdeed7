"""Kaggle submission files (book 13.13 CIFAR-10, 13.14 dog breeds), written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from cvflow.errors import DataError
from cvflow.fileio import atomic_open

from cvflow.data.readers.kaggle import one_line as _one_line

__all__ = ["image_ids", "write_cifar10_submission", "write_dog_submission"]


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
