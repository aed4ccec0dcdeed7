"""``cvflow fetch bananas``: the banana detection set (13.6) into ``data/banana-detection/bananas_{train,val}/``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.pipelines.bananas.common import cfg as bananas_cfg, data_dir

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params


def fetch(params: Params, root: Path, source: str | None = None, path: Path | None = None) -> dict:
    from cvflow.data.sources.bananas import fetch_bananas

    cfg = bananas_cfg(params)
    return fetch_bananas(data_dir(root), source or cfg.data.source, path=path or cfg.data.path,
                         hub_url=params.common.hub_url, downloads=root / "data" / "downloads",
                         n_train=cfg.demo.train, n_val=cfg.demo.test, seed=cfg.demo.seed)
