"""What the banana detection stages share: where the data and the run's files are, the validation images as the
network sees them, and the trained network."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params
    from cvflow.pipelines.bananas.schema import BananasProfile

EXPERIMENT = "bananas"  # the MLflow experiment, the params section, and the run's folders
RUN = "tinyssd"
DATA = "data/banana-detection"


def cfg(params: Params) -> BananasProfile:
    """The active profile's ``bananas`` section."""
    return params.task(EXPERIMENT)


def data_dir(root: Path) -> Path:
    return root / "data" / "banana-detection"


def run_paths(root: Path):
    """The training run's files: ``data/models/bananas/tinyssd.pt``, ``metrics/bananas/tinyssd{.json,_history.csv}``,
    ``data/reports/bananas/tinyssd_curves.png`` (see :class:`cvflow.engine.run.RunPaths`)."""
    from cvflow.engine.paths import RunPaths

    return RunPaths(root, EXPERIMENT, RUN)


def input_spec(cfg) -> dict:
    """The network's test input as data: resized to ``image_size``, floats in [0, 1] or the book's 0-255."""
    return {"resize": [cfg.image_size, cfg.image_size], "scale": "unit" if cfg.input_max == 1 else "byte"}


def val_images(cfg, root: Path):
    """bananas_val at the training resolution (evaluate and predict decode only this split)."""
    from torchvision.transforms import v2

    from cvflow.data.readers.bananas import BananasDataset
    from cvflow.preprocess import inference_transform

    # the served model's transform (its resize moves the boxes too), then the boxes kept inside the image
    return BananasDataset(data_dir(root), "val",
                          transforms=v2.Compose([inference_transform(input_spec(cfg)), v2.ClampBoundingBoxes()]))


def load_net(params: Params, root: Path):
    """The trained TinySSD on ``common.device`` (eval mode), its file's fields, precision and MLflow run."""
    from cvflow.engine.runtime import Precision, resolve_device
    from cvflow.errors import UserError
    from cvflow.fileio import sha1sum
    from cvflow.models.files import load_model
    import cvflow.detection.ssd  # noqa: F401  (registers the architecture the model file names)
    from cvflow.tracking import find_run

    path = run_paths(root).model
    if not path.exists():
        raise UserError(f"{path}: missing; run `cvflow train bananas` first")
    net, data = load_model(path)
    device = resolve_device(params.common.device)
    return (net.to(device).eval(), data, device, Precision.resolve(device, params.common.precision),
            find_run(root, EXPERIMENT, sha1sum(path)))
