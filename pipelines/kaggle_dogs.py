"""Kaggle dog breeds (book 13.14). So far: ``cvflow fetch kaggle-dogs`` and
``cvflow prepare kaggle-dogs`` (the book's train / valid / train_valid / test split)."""

from __future__ import annotations

from pathlib import Path

from cvflow.console import info
from cvflow.params import Params

COMPETITION = "dog-breed-identification"
LABELS = "labels.csv"


def data_dir(root: Path) -> Path:
    return root / "data" / "kaggle-dogs"


def prepared_dir(root: Path) -> Path:
    return root / "data" / "kaggle-dogs-prepared"


def fetch(params: Params, root: Path, source: str | None = None, path: Path | None = None) -> dict:
    from cvflow.data.sources.kaggle import fetch_competition
    from cvflow.data.twins.dogs import DOG_BREEDS, generate_kaggle_dogs

    cfg = params.task("kaggle_dogs")
    source = source or cfg.data.source
    counts = fetch_competition(
        data_dir(root), source, competition=COMPETITION, hub_key="dog_tiny", labels_csv=LABELS,
        generate=lambda folder: generate_kaggle_dogs(folder, DOG_BREEDS[: cfg.demo.breeds], cfg.demo.train,
                                                     cfg.demo.test, cfg.demo.seed),
        path=path or cfg.data.path, hub_url=params.common.hub_url, downloads=root / "data" / "downloads",
    )
    info(f"Kaggle dog breeds ({source}) at {data_dir(root)}: {counts}")
    return counts


def prepare(params: Params, root: Path) -> dict:
    from cvflow.data.sources.kaggle_reorg import reorg_kaggle

    cfg = params.task("kaggle_dogs")
    source = data_dir(root)
    counts = reorg_kaggle(source / "train", source / LABELS, prepared_dir(root), cfg.valid_ratio,
                          params.common.seed, test_dir=source / "test", mode=cfg.reorg)
    info(f"Kaggle dog breeds reorganised ({cfg.reorg}) at {prepared_dir(root)}")
    return counts
