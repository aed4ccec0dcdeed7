"""What the Kaggle CIFAR-10 stages share: the competition's files, the runs' files, the book's transforms and the
prepared splits they read."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.engine.paths import RunPaths

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params
    from cvflow.pipelines.kaggle_cifar10.schema import KaggleCifarProfile

EXPERIMENT = "kaggle-cifar10"
FINAL = "train_valid"  # the model the submission comes from: the one registered


def cfg(params: Params) -> KaggleCifarProfile:
    """The active profile's ``kaggle_cifar10`` section."""
    return params.task("kaggle_cifar10")


def competition():
    """Kaggle's ``cifar-10`` in this project: a :class:`cvflow.competition.Competition`."""
    from cvflow.competition import Competition

    return Competition("cifar-10", "kaggle-cifar10", "trainLabels.csv", "kaggle_cifar10_tiny", "Kaggle CIFAR-10")


def run_paths(root: Path, variant: str) -> RunPaths:
    """Files of the run ``variant``: see :class:`cvflow.engine.paths.RunPaths`."""
    return RunPaths(root, EXPERIMENT, variant)


def metrics_file(root: Path) -> Path:
    return root / "metrics" / "kaggle-cifar10.json"


def test_spec(cfg) -> dict:
    """The book's 13.13 transform_test (ToTensor, Normalize) as data; the resize to the training size is a
    no-op on the competition's 32 x 32 images and lets the served model take images of any size."""
    t = cfg.transforms
    return {"resize": [t.crop, t.crop], "scale": "unit", "mean": list(t.mean), "std": list(t.std)}


def transforms(cfg):
    """The book's 13.13 transform_train and transform_test (:func:`test_spec`), on uint8 tensors."""
    import torch
    from torchvision.transforms import v2

    from cvflow.preprocess import inference_transform

    t = cfg.transforms
    finish = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(t.mean), list(t.std))]
    train = [v2.Resize(t.resize, antialias=True),
             v2.RandomResizedCrop(t.crop, scale=tuple(t.crop_scale), ratio=(1.0, 1.0), antialias=True)]
    if t.hflip:
        train.append(v2.RandomHorizontalFlip())
    return v2.Compose(train + finish), inference_transform(test_spec(cfg))


def folder(params: Params, root: Path, split: str, transform, classes=None):
    """A prepared split (``train``, ``valid``, ``train_valid``) as an image folder, decoded once."""
    from cvflow.competition import split as prepared_split

    return prepared_split(competition(), root, split, transform, cfg(params).reorg,
                          f"kaggle_cifar10.{params.profile}.reorg", params.common, classes)
