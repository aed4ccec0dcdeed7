"""The hot dog data set (book 13.2): ``hotdog/{train,test}/{hotdog,not-hotdog}/*.jpg``.

Three sources give the same layout, so everything downstream is identical:

* ``d2l``: ``hotdog.zip`` from the book's data hub, SHA-1 checked, safely extracted;
* ``local``: a folder or archive the user already has (e.g. ``../shared/data/hotdog``);
* ``demo``: a twin generated offline by :mod:`cvflow.data.synth` (JPEGs of varied sizes
  and aspect ratios, hot dogs against other foods).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cvflow.console import info, progress
from cvflow.data.sources import fetch_dataset, find_root
from cvflow.errors import DataError

CLASSES = ("hotdog", "not-hotdog")
SPLITS = ("train", "test")


def is_root(folder: Path) -> bool:
    """True for the folder that holds ``train/`` and ``test/``."""
    return all((folder / split).is_dir() for split in SPLITS)


def check_layout(root: Path) -> dict[str, dict[str, int]]:
    """Count images per split and class; a DataError names whatever is missing."""
    from cvflow.data.images import list_images

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


def generate_demo(root: Path, cfg) -> None:
    """Write the demo twin into ``root`` (``cfg``: :class:`cvflow.params.HotdogDemo`)."""
    from cvflow.data.synth import FOOD_CLASSES, render_food

    others = [k for k in FOOD_CLASSES if k != "hotdog"]
    rng = np.random.default_rng(cfg.seed)
    jobs = []
    for split, per_class in (("train", cfg.train_per_class), ("test", cfg.test_per_class)):
        for name in CLASSES:
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                jobs.append((split, name, i))
    with progress("generating the hot dog demo twin", total=len(jobs), unit="images") as bar:
        for split, name, i in jobs:
            kind = "hotdog" if name == "hotdog" else others[int(rng.integers(len(others)))]
            long_side = int(rng.integers(cfg.min_side, cfg.max_side + 1))
            short_side = int(rng.integers(cfg.min_side, long_side + 1))
            size = (long_side, short_side) if rng.random() < 0.5 else (short_side, long_side)
            image = render_food(kind, rng, size)
            image.save(root / split / name / f"{i:05d}.jpg", quality=int(rng.integers(75, 96)))
            bar.advance()


def fetch_hotdog(dest: Path, source: str, *, path: Path | None = None, hub_url: str | None = None,
                 demo=None, downloads: Path | None = None) -> dict[str, dict[str, int]]:
    """Materialise the data set at ``dest`` (replaced atomically); return the image counts."""
    if source == "demo" and demo is None:
        raise DataError("source: demo needs the demo settings (hotdog.<profile>.demo)")
    counts = fetch_dataset(
        Path(dest), source, layout="train/ and test/ folders (the layout of hotdog.zip)", hub_key="hotdog",
        locate=lambda folder: find_root(folder, is_root), check=check_layout,
        generate=lambda folder: generate_demo(folder, demo), path=path, hub_url=hub_url, downloads=downloads,
    )
    total = sum(sum(c.values()) for c in counts.values())
    info(f"hot dog data ({source}) at {dest}: {total} images, " +
         ", ".join(f"{s} {counts[s]['hotdog']}+{counts[s]['not-hotdog']}" for s in SPLITS))
    return counts
