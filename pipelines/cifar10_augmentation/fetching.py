"""``cvflow fetch cifar10``: CIFAR-10 into ``data/cifar10/cifar-10-batches-py/``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.console import info
from cvflow.pipelines.cifar10_augmentation.common import cfg as cifar_cfg, data_dir

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params


def fetch(params: Params, root: Path, source: str | None = None, path: Path | None = None) -> dict:
    from cvflow.data.sources.cifar import fetch_cifar10

    cfg = cifar_cfg(params)
    source = source or cfg.data.source
    result = fetch_cifar10(data_dir(root), source, path=path or cfg.data.path, n_train=cfg.demo.train,
                           n_test=cfg.demo.test, seed=cfg.demo.seed)
    info(f"CIFAR-10 ({source}) at {data_dir(root) / 'cifar-10-batches-py'}")
    return result
