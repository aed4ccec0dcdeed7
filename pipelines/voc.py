"""Semantic segmentation on Pascal VOC2012 (book 13.9-13.11). So far: ``cvflow fetch voc``."""

from __future__ import annotations

from pathlib import Path

from cvflow.data.sources.voc import fetch_voc
from cvflow.params import Params


def data_dir(root: Path) -> Path:
    """Holds ``VOCdevkit/VOC2012``."""
    return root / "data" / "voc"


def fetch(params: Params, root: Path, source: str | None = None, path: Path | None = None) -> dict:
    cfg = params.task("voc")
    return fetch_voc(data_dir(root), source or cfg.data.source, path=path or cfg.data.path,
                     hub_url=params.common.hub_url, downloads=root / "data" / "downloads",
                     n_train=cfg.demo.train, n_val=cfg.demo.test, seed=cfg.demo.seed)
