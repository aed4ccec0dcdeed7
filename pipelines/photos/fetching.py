"""``cvflow fetch photos``: the book's photos into ``data/photos/``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.console import info

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params


def data_dir(root: Path) -> Path:
    return root / "data" / "photos"


def fetch(params: Params, root: Path, source: str | None = None, path: Path | None = None) -> dict:
    from cvflow.data.sources.materialize import link_tree, materialize
    from cvflow.data.sources.photos import fetch_photos

    cfg = params.task("photos")
    source = source or cfg.data.source
    downloads = root / "data" / "downloads" / "photos"

    def build(work: Path) -> Path:
        if source == "d2l":  # verified downloads are cached; the data set links to them
            fetch_photos(downloads, "d2l")
            link_tree(downloads, work / "photos")
        else:
            fetch_photos(work / "photos", source, path=path or cfg.data.path, seed=cfg.seed)
        return work / "photos"

    files = materialize(data_dir(root), build, lambda folder: sorted(p.name for p in folder.glob("*.jpg")))
    info(f"photos ({source}) at {data_dir(root)}: {', '.join(files)}")
    return {"files": files}
