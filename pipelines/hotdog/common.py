"""What the hot dog stages share: where the data and the runs' files are, and the image sets they read."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.engine.paths import RunPaths

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params
    from cvflow.pipelines.hotdog.schema import Hotdog

EXPERIMENT = "hotdog"  # the MLflow experiment, the params section, and the runs' folders
DATA = "data/hotdog"
SOURCE = "source"  # the run (and model file) the pretrained variants start from


def cfg(params: Params) -> Hotdog:
    """The active profile's ``hotdog`` section."""
    return params.task(EXPERIMENT)


def run_paths(root: Path, name: str) -> RunPaths:
    """Files of the run ``name`` (source, or a variant): the layout of :class:`cvflow.engine.paths.RunPaths`."""
    return RunPaths(root, EXPERIMENT, name)


def metrics_file(root: Path) -> Path:
    return root / "metrics" / "hotdog.json"


def predictions_file(root: Path, variant: str) -> Path:
    """Every test image's label and the prediction ``evaluate`` gives it (``file,label,prediction``)."""
    return root / "metrics" / "hotdog" / f"{variant}_test_predictions.csv"


def images(params: Params, folder: Path, transform):
    """One split as an image folder, cached as ``common.image_cache`` says (no effect on results)."""
    from cvflow.data.readers.hotdog import CLASSES
    from cvflow.data.readers.images import DecodedImageFolder

    common = params.common
    return DecodedImageFolder(folder, CLASSES, transform, cfg(params).data.on_corrupt,
                              cache=common.image_cache, cache_max_bytes=common.image_cache_mb * 2**20)
