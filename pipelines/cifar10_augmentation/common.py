"""What the CIFAR-10 augmentation stages share: where the data and the runs' files are, the book's transforms and
the image sets they read."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.engine.paths import RunPaths

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params
    from cvflow.pipelines.cifar10_augmentation.schema import CifarProfile

EXPERIMENT = "cifar10-augmentation"  # MLflow experiment, and the folder of the runs' files
DATA = "data/cifar10"


def cfg(params: Params) -> CifarProfile:
    """The active profile's ``cifar10`` section."""
    return params.task("cifar10")


def data_dir(root: Path) -> Path:
    """Holds ``cifar-10-batches-py`` (read with :func:`cvflow.data.readers.cifar.cifar10_dataset`)."""
    return root / "data" / "cifar10"


def run_paths(root: Path, variant: str) -> RunPaths:
    """Files of the run ``variant``: see :class:`cvflow.engine.paths.RunPaths`."""
    return RunPaths(root, EXPERIMENT, variant)


def metrics_file(root: Path) -> Path:
    return root / "metrics" / f"{EXPERIMENT}.json"


#: the book's test_augs (ToTensor: floats in [0, 1], not normalised), as data; the resize to 32 x 32 is a no-op on
#: CIFAR-10 and lets the served model take images of any size
TEST_SPEC = {"resize": [32, 32], "scale": "unit"}


def transforms(cfg, augment: bool):
    """The book's 13.1 train_augs (flip, and the demo's padded crop) or test_augs (:data:`TEST_SPEC`), on uint8
    tensors. As the book, images become floats in [0, 1] (``ToTensor``) and are not normalised."""
    import torch
    from torchvision.transforms import v2

    from cvflow.preprocess import inference_transform

    if not augment:
        return inference_transform(TEST_SPEC)
    steps = []
    if cfg.augment.hflip:
        steps.append(v2.RandomHorizontalFlip())
    if cfg.augment.crop_padding:
        steps.append(v2.RandomCrop(32, padding=cfg.augment.crop_padding))
    return v2.Compose([*steps, v2.ToDtype(torch.float32, scale=True)])


def split(cfg, root: Path, train: bool, augment: bool):
    """The CIFAR-10 training (its first ``train_images``) or test split, decoded once."""
    import torch

    from cvflow.data.readers.cifar import cifar10_dataset
    from cvflow.data.readers.images import TensorImages

    data = cifar10_dataset(data_dir(root), train=train)
    count = cfg.train_images if train and cfg.train_images else len(data.targets)
    images = torch.from_numpy(data.data[:count]).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor(data.targets[:count], dtype=torch.long)
    return TensorImages(images, labels, transforms(cfg, augment and train))
