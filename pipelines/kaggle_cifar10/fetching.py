"""``cvflow fetch kaggle-cifar10``: the competition's files into ``data/kaggle-cifar10/``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.pipelines.kaggle_cifar10.common import cfg as kaggle_cfg, competition

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params


def fetch(params: Params, root: Path, source: str | None = None, path: Path | None = None) -> dict:
    from cvflow.twins.cifar import generate_kaggle_cifar10

    from cvflow.competition import fetch as fetch_files

    cfg = kaggle_cfg(params)
    return fetch_files(competition(), root, source or cfg.data.source, path or cfg.data.path, params.common.hub_url,
                       generate=lambda folder: generate_kaggle_cifar10(folder, cfg.demo.train, cfg.demo.test,
                                                                       cfg.demo.seed))
