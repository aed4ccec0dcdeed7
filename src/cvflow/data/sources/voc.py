"""Pascal VOC2012 (book 13.9) at ``dest``: the hub tar, a local copy, or the twin.
"""

from __future__ import annotations

from pathlib import Path

from cvflow.console import info
from cvflow.data.readers.voc import find_voc_root, read_ids
from cvflow.errors import DataError


def check_layout(voc: Path) -> dict[str, int]:
    """Images per list (train, val); a DataError names a listed id without its JPEG or mask."""
    counts = {}
    for split in ("train", "val"):
        ids = read_ids(voc, split)
        missing = [i for i in ids if not (voc / "JPEGImages" / f"{i}.jpg").is_file()
                   or not (voc / "SegmentationClass" / f"{i}.png").is_file()]
        if missing:
            raise DataError(f"{voc}: {split}.txt lists {len(missing)} id(s) without JPEGImages/<id>.jpg and "
                            f"SegmentationClass/<id>.png: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        counts[split] = len(ids)
    return counts


def fetch_voc(dest: str | Path, source: str = "demo", *, path: str | Path | None = None, hub_url: str | None = None,
              downloads: str | Path | None = None, n_train: int = 40, n_val: int = 20, seed: int = 0,
              size: tuple[tuple[int, int], tuple[int, int]] = ((480, 500), (320, 500))) -> dict[str, int]:
    """Materialise VOC2012 at ``dest`` (it will hold ``VOCdevkit/VOC2012``; replaced atomically).

    ``source``: ``d2l`` (hub file ``VOCtrainval_11-May-2012.tar``, SHA-1 checked, safely
    extracted), ``local`` (``path``: that tar, or a folder holding the layout) or ``demo``
    (:func:`generate_voc`; ``size``: its ``((min width, max width), (min height, max height))``).
    Returns the image count of the train and val lists.
    """
    from cvflow.data.sources.materialize import fetch_dataset
    from cvflow.twins.voc import generate_voc

    dest = Path(dest)
    counts = fetch_dataset(
        dest, source, layout="a VOCdevkit/VOC2012 layout", hub_key="voc2012", locate=find_voc_root,
        check=check_layout, generate=lambda folder: generate_voc(folder, n_train, n_val, seed, size=size),
        path=path, hub_url=hub_url, downloads=downloads, nest="VOCdevkit/VOC2012",
    )
    info(f"VOC2012 segmentation ({source}) at {dest}: train {counts['train']}, val {counts['val']}")
    return counts
