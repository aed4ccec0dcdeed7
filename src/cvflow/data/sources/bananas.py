"""The banana detection set (book 13.6) at ``dest``: the hub zip, a local copy, or the twin.
"""

from __future__ import annotations

from pathlib import Path

from cvflow.console import info
from cvflow.data.readers.bananas import FOLDERS, SPLITS, find_bananas_root, read_label_csv
from cvflow.errors import DataError


def check_layout(root: Path) -> dict[str, int]:
    """Images per split (rows of label.csv whose PNG exists); a DataError names what is missing."""
    counts = {}
    for split in SPLITS:
        folder = root / FOLDERS[split]
        if not (folder / "images").is_dir():
            raise DataError(f"{folder / 'images'}: missing; the banana layout is "
                            "bananas_{train,val}/{images,label.csv}")
        rows = read_label_csv(folder / "label.csv")
        missing = [n for n in rows if not (folder / "images" / n).is_file()]
        if missing:
            raise DataError(f"{folder}: label.csv names {len(missing)} image(s) not in images/: "
                            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        counts[split] = len(rows)
    return counts


def fetch_bananas(dest: str | Path, source: str = "demo", *, path: str | Path | None = None,
                  hub_url: str | None = None, downloads: str | Path | None = None, n_train: int = 1000,
                  n_val: int = 100, seed: int = 0, size: int = 256) -> dict[str, int]:
    """Materialise the banana set at ``dest`` (the ``banana-detection`` folder, replaced atomically).

    ``source``: ``d2l`` (hub file ``banana-detection.zip``, SHA-1 checked, safely extracted),
    ``local`` (``path``: that zip, or a folder holding the layout) or ``demo``
    (:func:`generate_bananas`). Returns the image count per split.
    """
    from cvflow.data.sources.materialize import fetch_dataset
    from cvflow.twins.bananas import generate_bananas

    dest = Path(dest)
    counts = fetch_dataset(
        dest, source, layout="bananas_train/ and bananas_val/ folders", hub_key="banana-detection",
        locate=find_bananas_root, check=check_layout,
        generate=lambda folder: generate_bananas(folder, n_train, n_val, seed, size),
        path=path, hub_url=hub_url, downloads=downloads,
    )
    info(f"banana data ({source}) at {dest}: train {counts['train']}, val {counts['val']}")
    return counts
