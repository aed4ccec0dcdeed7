"""``cvflow fetch kaggle-dogs``: the competition's files into ``data/kaggle-dogs/``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.pipelines.kaggle_dogs.common import cfg as dogs_cfg, competition

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params


def fetch(params: Params, root: Path, source: str | None = None, path: Path | None = None) -> dict:
    from cvflow.twins.dogs import DOG_BREEDS, generate_kaggle_dogs

    from cvflow.competition import fetch as fetch_files

    cfg = dogs_cfg(params)
    return fetch_files(competition(), root, source or cfg.data.source, path or cfg.data.path, params.common.hub_url,
                       generate=lambda folder: generate_kaggle_dogs(
                           folder, DOG_BREEDS[: cfg.demo.breeds], cfg.demo.train, cfg.demo.test, cfg.demo.seed))
