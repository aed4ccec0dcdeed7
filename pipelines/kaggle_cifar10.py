"""Kaggle CIFAR-10 (book 13.13). So far: ``cvflow fetch kaggle-cifar10`` and
``cvflow prepare kaggle-cifar10`` (the book's train / valid / train_valid / test split)."""

from __future__ import annotations

from pathlib import Path

from cvflow.console import info
from cvflow.params import Params

COMPETITION = "cifar-10"
LABELS = "trainLabels.csv"


def data_dir(root: Path) -> Path:
    return root / "data" / "kaggle-cifar10"


def prepared_dir(root: Path) -> Path:
    return root / "data" / "kaggle-cifar10-prepared"


def fetch(params: Params, root: Path, source: str | None = None, path: Path | None = None) -> dict:
    from cvflow.data.sources.kaggle import fetch_competition
    from cvflow.data.twins.cifar import generate_kaggle_cifar10

    cfg = params.task("kaggle_cifar10")
    source = source or cfg.data.source
    counts = fetch_competition(
        data_dir(root), source, competition=COMPETITION, hub_key="kaggle_cifar10_tiny", labels_csv=LABELS,
        generate=lambda folder: generate_kaggle_cifar10(folder, cfg.demo.train, cfg.demo.test, cfg.demo.seed),
        path=path or cfg.data.path, hub_url=params.common.hub_url, downloads=root / "data" / "downloads",
    )
    info(f"Kaggle CIFAR-10 ({source}) at {data_dir(root)}: {counts}")
    return counts


def prepare(params: Params, root: Path) -> dict:
    from cvflow.data.sources.kaggle_reorg import reorg_kaggle

    cfg = params.task("kaggle_cifar10")
    source = data_dir(root)
    counts = reorg_kaggle(source / "train", source / LABELS, prepared_dir(root), cfg.valid_ratio,
                          params.common.seed, test_dir=source / "test", mode=cfg.reorg)
    info(f"Kaggle CIFAR-10 reorganised ({cfg.reorg}) at {prepared_dir(root)}")
    return counts
