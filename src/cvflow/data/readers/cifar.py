"""CIFAR-10 for training (book 13.1): ``torchvision.datasets.CIFAR10``, on real data or the twin.

**The md5 check.** ``torchvision.datasets.CIFAR10`` refuses any folder whose batch files do
not have the md5 sums of the official archive, and a generated twin cannot have them.
:class:`CIFAR10Twin` (a subclass) therefore replaces the expected md5 sums with those the
generator (:mod:`cvflow.twins.cifar`) recorded in
``cifar-10-batches-py/.cvflow-demo.json``; torchvision's own code then still verifies every
file (a damaged twin is refused) and loads it. :func:`cifar10_dataset` picks the class:
the twin's marker present means the twin, anything else goes to
``torchvision.datasets.CIFAR10`` itself, so the real data set is always checked against
torchvision's md5 sums.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from torchvision.datasets import CIFAR10 as _TorchvisionCIFAR10

from cvflow.data.readers.demo import DEMO_MARKER
from cvflow.errors import DataError

__all__ = ["CIFAR10_CLASSES", "CIFAR10_FOLDER", "CIFAR10Twin", "TRAIN_BATCHES", "cifar10_dataset"]

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
CIFAR10_FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))


class CIFAR10Twin(_TorchvisionCIFAR10):
    """``torchvision.datasets.CIFAR10`` for a twin made by :func:`generate_cifar10_torchvision`.

    Same arguments and attributes (``data`` uint8 NHWC, ``targets``, ``classes``,
    ``class_to_idx``); the only difference is where the expected md5 sums come from: the
    twin's ``.cvflow-demo.json`` instead of the official archive's. torchvision's own
    ``_check_integrity`` and ``_load_meta`` still verify every file against them, so a
    damaged or missing file is refused (a one-line DataError).
    """

    def __init__(self, root: str | os.PathLike, train: bool = True, transform: Callable | None = None,
                 target_transform: Callable | None = None, download: bool = False) -> None:
        folder = Path(root) / CIFAR10_FOLDER
        try:
            md5 = json.loads((folder / DEMO_MARKER).read_text(encoding="utf-8"))["md5"]
            if not isinstance(md5, dict):
                raise TypeError
        except (OSError, ValueError, KeyError, TypeError):
            raise DataError(f"{folder / DEMO_MARKER}: missing or unreadable, so {folder} is not a cvflow demo "
                            "twin; generate it again, or load real data with torchvision.datasets.CIFAR10") from None
        if download:
            raise DataError("a demo twin is generated, not downloaded: use generate_cifar10_torchvision")
        # Instance attributes shadow the class's official md5 sums.
        self.train_list = [[name, str(md5.get(name, ""))] for name in TRAIN_BATCHES]
        self.test_list = [["test_batch", str(md5.get("test_batch", ""))]]
        self.meta = {**_TorchvisionCIFAR10.meta, "md5": str(md5.get("batches.meta", ""))}
        try:
            super().__init__(root, train=train, transform=transform, target_transform=target_transform,
                             download=False)
        except RuntimeError as exc:
            raise DataError(f"{folder}: the demo twin is damaged ({' '.join(str(exc).split())}); "
                            "generate it again") from None


def cifar10_dataset(root: str | os.PathLike, train: bool = True, transform: Callable | None = None,
                    target_transform: Callable | None = None, download: bool = False) -> Any:
    """CIFAR-10 from ``root`` as a ``torchvision.datasets.CIFAR10``: the twin or the real data.

    ``root/cifar-10-batches-py/.cvflow-demo.json`` present: :class:`CIFAR10Twin`. Otherwise
    ``torchvision.datasets.CIFAR10`` itself (``download=True`` fetches the official archive
    from torchvision's URL and checks torchvision's md5 sums); a missing or damaged folder
    is a one-line DataError.
    """
    folder = Path(root) / CIFAR10_FOLDER
    if (folder / DEMO_MARKER).is_file():
        return CIFAR10Twin(root, train=train, transform=transform, target_transform=target_transform)
    try:
        return _TorchvisionCIFAR10(root, train=train, transform=transform, target_transform=target_transform, download=download)
    except RuntimeError as exc:
        raise DataError(f"{folder}: {' '.join(str(exc).split())} (CIFAR-10; download it with download: true, "
                        "or run the offline demo)") from None
