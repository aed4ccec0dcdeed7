"""The book's photos (catdog.jpg for the anchor figures, rainier.jpg and autumn-oak.jpg for style
transfer, cat1.jpg): ``cvflow fetch photos``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from cvflow.console import info
from cvflow.params import HubData, ParamsBase as Params, Strict
from cvflow.pipelines.task import Task, fetch_stage


class PhotosProfile(Strict):
    data: HubData
    seed: int = Field(0, ge=0, description="seed of the generated stand-ins (source: demo)")


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


TASK: Task[PhotosProfile] = Task(
    name="photos", profile=PhotosProfile, title="the book's photos",
    stages=(fetch_stage(fetch, "data/photos", "demo | d2l | local",
                        "The book's photos (catdog, rainier, autumn-oak, cat1; SHA-1 checked) into data/photos/.",
                        params=("",)),),
)
