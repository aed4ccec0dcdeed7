"""Image augmentation on CIFAR-10 (book 13.1). So far: ``cvflow fetch cifar10``."""

from __future__ import annotations

from pathlib import Path

from cvflow.console import info
from cvflow.data.sources.cifar import fetch_cifar10
from cvflow.params import Params


def data_dir(root: Path) -> Path:
    """Holds ``cifar-10-batches-py`` (read with :func:`cvflow.data.readers.cifar.cifar10_dataset`)."""
    return root / "data" / "cifar10"


def fetch(params: Params, root: Path, source: str | None = None, path: Path | None = None) -> dict:
    cfg = params.task("cifar10")
    source = source or cfg.data.source
    result = fetch_cifar10(data_dir(root), source, path=path or cfg.data.path, n_train=cfg.demo.train,
                           n_test=cfg.demo.test, seed=cfg.demo.seed)
    info(f"CIFAR-10 ({source}) at {data_dir(root) / 'cifar-10-batches-py'}")
    return result
