"""Image-folder readers that decode every image once, up front.

``root/<class>/*.jpg|png`` (the layout of hotdog.zip, torchvision's ImageFolder) is scanned,
every file decoded once with Pillow in a thread pool (Pillow releases the GIL while it
decodes; torchvision 0.29 deprecated its own decoders) and kept as a uint8 CHW tensor. Augmentation then runs on tensors every epoch with no JPEG work. Corrupt
or truncated files are found here, before training, and reported by name: skipped (with a
warning) or, with ``on_corrupt='error'``, a :class:`~cvflow.errors.DataError`.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2

from cvflow.console import info
from cvflow.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (a stable order on every OS)."""
    with os.scandir(folder) as entries:
        return sorted(Path(e.path) for e in entries if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES))


def _decode(path: Path) -> torch.Tensor | str:
    try:
        with Image.open(path) as handle:
            array = np.array(handle.convert("RGB"))  # a writable copy torch can own
    except Exception as exc:  # noqa: BLE001 - any decoder failure means "corrupt"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'unreadable'}"
    if array.size == 0:
        return "empty image"
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def decode_all(paths: Sequence[Path], on_corrupt: str = "skip", what: str = "") -> tuple[list[torch.Tensor], list[int]]:
    """Decode ``paths`` once (threads); return the images and the indices of the readable ones."""
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(_decode, paths, chunksize=16))
    bad = [(p, r) for p, r in zip(paths, results) if isinstance(r, str)]
    if bad:
        names = ", ".join(f"{p} ({reason})" for p, reason in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        if on_corrupt == "error":
            raise DataError(f"{len(bad)} unreadable image(s) in {what or 'the data set'}: {names}{more}; "
                            "delete or replace them, or set on_corrupt: skip")
        info(f"warning: skipping {len(bad)} unreadable image(s) in {what or 'the data set'}: {names}{more}")
    keep = [i for i, r in enumerate(results) if not isinstance(r, str)]
    return [results[i] for i in keep], keep


class DecodedImageFolder(Dataset):
    """``root/<class>/<image>``; items are ``(transform(uint8 CHW image), class index)``."""

    def __init__(self, root: Path, classes: Sequence[str] | None = None, transform: Callable | None = None,
                 on_corrupt: str = "skip"):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: no such folder; run `cvflow fetch` first")
        found = sorted(d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        self.classes = list(classes) if classes is not None else found
        missing = [c for c in self.classes if c not in found]
        if missing or not self.classes:
            raise DataError(f"{self.root}: expected one folder per class ({', '.join(self.classes) or 'none found'}); "
                            f"missing: {', '.join(missing) or 'all'}")
        paths: list[Path] = []
        labels: list[int] = []
        for index, name in enumerate(self.classes):
            files = list_images(self.root / name)
            if not files:
                raise DataError(f"{self.root / name}: no images (.jpg, .png) in this class folder")
            paths += files
            labels += [index] * len(files)
        self.images, keep = decode_all(paths, on_corrupt, str(self.root))
        self.paths = [paths[i] for i in keep]
        self.targets = torch.tensor([labels[i] for i in keep], dtype=torch.long)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[index]


def classification_transforms(cfg) -> tuple[v2.Compose, v2.Compose]:
    """The book's 13.2 transforms on uint8 tensors: (train, test).

    train: RandomResizedCrop(train_crop, scale=train_scale) + horizontal flip; test: Resize([r, r]) + CenterCrop(c);
    both then float in [0, 1] and normalised with ``cfg.mean`` / ``cfg.std``.
    """
    finish = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(cfg.mean), list(cfg.std))]
    train = [v2.RandomResizedCrop(cfg.train_crop, scale=tuple(cfg.train_scale), antialias=True)]
    if cfg.hflip:
        train.append(v2.RandomHorizontalFlip())
    test = [v2.Resize([cfg.test_resize, cfg.test_resize], antialias=True), v2.CenterCrop(cfg.test_crop)]
    return v2.Compose(train + finish), v2.Compose(test + finish)
