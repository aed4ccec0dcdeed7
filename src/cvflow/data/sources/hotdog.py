"""The hot dog data set (book 13.2): ``hotdog/{train,test}/{hotdog,not-hotdog}/*.jpg``.

Three sources give the same layout, so everything downstream is identical:

* ``d2l``: ``hotdog.zip`` from the book's data hub, SHA-1 checked, safely extracted;
* ``local``: a folder or archive the user already has (e.g. ``../shared/data/hotdog``);
* ``demo``: a twin generated offline by :mod:`cvflow.twins.hotdog` (JPEGs of varied sizes
  and aspect ratios, hot dogs against other foods).
"""

from __future__ import annotations

from pathlib import Path

from cvflow.console import info
from cvflow.data.readers.hotdog import CLASSES, SPLITS
from cvflow.data.sources.materialize import fetch_dataset, find_root
from cvflow.errors import DataError

__all__ = ["CLASSES", "SPLITS", "check_layout", "fetch_hotdog", "is_root"]


def is_root(folder: Path) -> bool:
    """True for the folder that holds ``train/`` and ``test/``."""
    return all((folder / split).is_dir() for split in SPLITS)


def check_layout(root: Path) -> dict[str, dict[str, int]]:
    """Count images per split and class; a DataError names whatever is missing."""
    from cvflow.data.readers.images import list_images

    counts: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        counts[split] = {}
        for name in CLASSES:
            folder = root / split / name
            if not folder.is_dir():
                raise DataError(f"{folder}: missing; the hot dog layout is {{train,test}}/{{hotdog,not-hotdog}}/*.jpg")
            counts[split][name] = len(list_images(folder))
            if counts[split][name] == 0:
                raise DataError(f"{folder}: no images")
    return counts


def fetch_hotdog(dest: Path, source: str, *, path: Path | None = None, hub_url: str | None = None,
                 demo=None, downloads: Path | None = None) -> dict[str, dict[str, int]]:
    """Materialise the data set at ``dest`` (replaced atomically); return the image counts."""
    from cvflow.twins.hotdog import generate_hotdog

    if source == "demo" and demo is None:
        raise DataError("source: demo needs the demo settings (hotdog.<profile>.demo)")
    counts = fetch_dataset(
        Path(dest), source, layout="train/ and test/ folders (the layout of hotdog.zip)", hub_key="hotdog",
        locate=lambda folder: find_root(folder, is_root), check=check_layout,
        generate=lambda folder: generate_hotdog(folder, demo), path=path, hub_url=hub_url, downloads=downloads,
    )
    total = sum(sum(c.values()) for c in counts.values())
    info(f"hot dog data ({source}) at {dest}: {total} images, " +
         ", ".join(f"{s} {counts[s]['hotdog']}+{counts[s]['not-hotdog']}" for s in SPLITS))
    return counts
