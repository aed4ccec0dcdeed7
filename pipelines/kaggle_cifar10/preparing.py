"""``cvflow prepare kaggle-cifar10``: the book's train / valid / train_valid / test folders."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.pipelines.kaggle_cifar10.common import cfg as kaggle_cfg, competition

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params


def prepare(params: Params, root: Path) -> dict:
    from cvflow.competition import prepare as reorganise

    cfg = kaggle_cfg(params)
    return reorganise(competition(), root, cfg.valid_ratio, params.common.seed, cfg.reorg)
