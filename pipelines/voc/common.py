"""What the VOC stages share: where the data and the run's files are."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params
    from cvflow.pipelines.voc.schema import VocProfile

EXPERIMENT = "voc"  # the MLflow experiment, the params section, and the run's folders
RUN = "fcn"
DATA = "data/voc"


def cfg(params: Params) -> VocProfile:
    """The active profile's ``voc`` section."""
    return params.task(EXPERIMENT)


def data_dir(root: Path) -> Path:
    """Holds ``VOCdevkit/VOC2012``."""
    return root / "data" / "voc"


def run_paths(root: Path):
    """The training run's files (see :class:`cvflow.engine.run.RunPaths`)."""
    from cvflow.engine.paths import RunPaths

    return RunPaths(root, EXPERIMENT, RUN)
