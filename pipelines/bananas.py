"""Banana detection (book 13.6-13.7). This issue's part: the data (``cvflow fetch bananas``)."""

from __future__ import annotations

from pathlib import Path

from cvflow.data.bananas import fetch_bananas
from cvflow.params import Params


def data_dir(root: Path) -> Path:
    return root / "data" / "banana-detection"


def fetch(params: Params, root: Path, source: str | None = None, path: Path | None = None) -> dict:
    cfg = params.task("bananas")
    return fetch_bananas(data_dir(root), source or cfg.data.source, path=path or cfg.data.path,
                         hub_url=params.common.hub_url, downloads=root / "data" / "downloads",
                         n_train=cfg.demo.train, n_val=cfg.demo.test, seed=cfg.demo.seed)
