"""``cvflow fetch voc``: Pascal VOC2012 segmentation (13.9) into ``data/voc/VOCdevkit/VOC2012/``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.pipelines.voc.common import cfg as voc_cfg, data_dir

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params


def fetch(params: Params, root: Path, source: str | None = None, path: Path | None = None) -> dict:
    from cvflow.data.sources.voc import fetch_voc

    cfg = voc_cfg(params)
    return fetch_voc(data_dir(root), source or cfg.data.source, path=path or cfg.data.path,
                     hub_url=params.common.hub_url, downloads=root / "data" / "downloads",
                     n_train=cfg.demo.train, n_val=cfg.demo.test, seed=cfg.demo.seed,
                     size=(tuple(cfg.demo.width), tuple(cfg.demo.height)))
