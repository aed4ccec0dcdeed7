"""Reading the Kaggle competitions' label files and a reorganisation's manifests.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from cvflow.errors import DataError

__all__ = ["SPLITS", "labels_series", "one_line", "read_csv_labels", "read_manifest"]

SPLITS = ("train", "valid", "train_valid", "test")


def one_line(text: Any) -> str:
    return " ".join(str(text).split())


# ========================================================================= reorganisation


def labels_series(labels: Mapping[str, str] | str | os.PathLike) -> pd.Series:
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
            raise DataError(f"{path}: cannot read it as CSV ({one_line(exc)})") from None
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
    series = labels_series(path)
    return dict(zip(series.index.tolist(), series.tolist()))


def read_manifest(path: str | os.PathLike) -> list[tuple[Path, str]]:
    """``(image path, label)`` pairs of a manifest written by ``reorg_kaggle(mode="manifest")``.

    Relative paths are resolved against the manifest's folder (``out_dir``)."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot read the manifest ({one_line(exc)})") from None
    if list(frame.columns[:2]) != ["path", "label"]:
        raise DataError(f"{path}: not a manifest (expected the header path,label)")
    base = path.parent
    return [(base / p, label) for p, label in zip(frame["path"], frame["label"])]
