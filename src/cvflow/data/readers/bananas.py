"""The banana detection data set (book 13.6) for training: a reader and the book's batches.

The data (hub file ``banana-detection.zip``, or the twin of
:mod:`cvflow.twins.bananas`) is::

    banana-detection/
        bananas_train/images/0.png ... 999.png    256x256 RGB PNG
        bananas_train/label.csv                   img_name,label,xmin,ymin,xmax,ymax
        bananas_val/images/0.png ... 99.png
        bananas_val/label.csv

one banana per image, class 0, box corners in pixels.

:class:`BananasDataset` reads it (every PNG decoded once) into
``(tv_tensors.Image, {"boxes": tv_tensors.BoundingBoxes, "labels": tensor})`` items, so
``torchvision.transforms.v2`` moves the boxes with the pixels; :func:`book_collate` turns
a batch into the book's tensors: images ``(B, 3, H, W)`` in ``[0, 1]`` and labels
``(B, m, 5)`` rows ``(class, x1, y1, x2, y2)`` normalised by the image size, padded with
class ``-1`` rows.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from cvflow.console import info
from cvflow.errors import DataError

__all__ = [
    "BANANA_HEADER",
    "FOLDERS",
    "SPLITS",
    "BananasDataset",
    "RandomCropKeepingBoxes",
    "book_collate",
    "detection_train_transforms",
    "detection_test_transforms",
    "find_bananas_root",
    "load_data_bananas",
    "read_label_csv",
]

BANANA_HEADER = ("img_name", "label", "xmin", "ymin", "xmax", "ymax")
SPLITS = ("train", "val")
FOLDERS = {"train": "bananas_train", "val": "bananas_val"}


# --------------------------------------------------------------------------- reading


def find_bananas_root(folder: str | Path) -> Path | None:
    """The folder holding ``bananas_train/`` and ``bananas_val/``: ``folder``, or one level down."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    for candidate in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]:
        if all((candidate / f).is_dir() for f in FOLDERS.values()):
            return candidate
    return None


def read_label_csv(path: str | Path) -> dict[str, list[tuple[int, float, float, float, float]]]:
    """``label.csv`` as ``{img_name: [(label, xmin, ymin, xmax, ymax), ...]}`` (file order kept)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing; the banana layout is bananas_{{train,val}}/{{images/*.png,label.csv}}")
    out: dict[str, list[tuple[int, float, float, float, float]]] = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != list(BANANA_HEADER):
            raise DataError(f"{path}: the header must be {','.join(BANANA_HEADER)}, found {','.join(header or [])!r}")
        for line, row in enumerate(reader, start=2):
            if not row or not "".join(row).strip():
                continue
            try:
                if len(row) != 6:
                    raise ValueError(f"{len(row)} fields")
                label = int(float(row[1]))
                x1, y1, x2, y2 = (float(v) for v in row[2:])
            except ValueError as exc:
                raise DataError(f"{path}, line {line}: expected img_name,label,xmin,ymin,xmax,ymax ({exc})") from None
            if not (x2 > x1 and y2 > y1):
                raise DataError(f"{path}, line {line}: empty box ({x1}, {y1}, {x2}, {y2}); "
                                "need xmin < xmax, ymin < ymax")
            out.setdefault(row[0].strip(), []).append((label, x1, y1, x2, y2))
    if not out:
        raise DataError(f"{path}: no rows")
    return out


class BananasDataset(Dataset):
    """One split of the banana set; every image decoded once (uint8, CHW).

    Items are ``(tv_tensors.Image, {"boxes": tv_tensors.BoundingBoxes (m, 4) XYXY pixels,
    "labels": int64 (m,)})``, passed through ``transforms(image, target)`` when given (a
    ``transforms.v2`` pipeline moves the boxes with the pixels). ``root`` is the
    ``banana-detection`` folder or its parent. Unreadable or missing images are listed
    and skipped, or raise :class:`~cvflow.errors.DataError` with ``on_corrupt='error'``.
    """

    def __init__(self, root: str | Path, split: str = "train", transforms: Callable | None = None,
                 on_corrupt: str = "skip"):
        from cvflow.data.readers.images import decode_all

        if split not in FOLDERS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if on_corrupt not in ("skip", "error"):
            raise ValueError(f"on_corrupt must be 'skip' or 'error', got {on_corrupt!r}")
        found = find_bananas_root(root)
        if found is None:
            raise DataError(f"{root}: holds no bananas_train/ and bananas_val/ folders (the layout of "
                            "banana-detection.zip); run `cvflow fetch` first")
        self.root = found
        folder = found / FOLDERS[split]
        rows = read_label_csv(folder / "label.csv")
        names = list(rows)
        paths = [folder / "images" / name for name in names]
        self.images, keep = decode_all(paths, on_corrupt, str(folder))
        self.names = [names[i] for i in keep]
        self.boxes = [torch.tensor([r[1:] for r in rows[n]], dtype=torch.float32) for n in self.names]
        self.labels = [torch.tensor([r[0] for r in rows[n]], dtype=torch.int64) for n in self.names]
        if not self.images:
            raise DataError(f"{folder}: none of the {len(names)} images listed in label.csv could be read")
        self.transforms = transforms
        info(f"read {len(self.images)} {split} examples")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, dict[str, Any]]:
        image = tv_tensors.Image(self.images[index])
        target = {
            "boxes": tv_tensors.BoundingBoxes(self.boxes[index], format=tv_tensors.BoundingBoxFormat.XYXY,
                                              canvas_size=tuple(image.shape[-2:])),
            "labels": self.labels[index],
        }
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target


def book_collate(batch: Sequence[tuple[torch.Tensor, dict[str, Any]]]) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch in the book's format: ``(images (B, 3, H, W) float in [0, 1], labels (B, m, 5))``.

    Label rows are ``(class, x1, y1, x2, y2)`` with corners divided by the image width and
    height; images with fewer than ``m`` boxes get rows of ``-1``. All images must have the
    same size (add a resize to the transforms otherwise).
    """
    if not batch:
        raise ValueError("empty batch")
    sizes = {tuple(image.shape) for image, _ in batch}
    if len(sizes) != 1:
        raise ValueError(f"images of different sizes in one batch {sorted(sizes)}: add a Resize to the transforms")
    images = torch.stack([torch.as_tensor(image).as_subclass(torch.Tensor) for image, _ in batch])
    if not images.is_floating_point():
        images = images.to(torch.float32) / 255.0
    h, w = images.shape[-2:]
    m = max(1, max(len(target["labels"]) for _, target in batch))
    labels = torch.full((len(batch), m, 5), -1.0, dtype=torch.float32)
    scale = torch.tensor([w, h, w, h], dtype=torch.float32)
    for i, (_, target) in enumerate(batch):
        boxes = target["boxes"]
        if isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.format != tv_tensors.BoundingBoxFormat.XYXY:
            boxes = F.convert_bounding_box_format(boxes, new_format=tv_tensors.BoundingBoxFormat.XYXY)
        boxes = torch.as_tensor(boxes).as_subclass(torch.Tensor).to(torch.float32)
        k = len(target["labels"])
        if k:
            labels[i, :k, 0] = torch.as_tensor(target["labels"]).to(torch.float32)
            labels[i, :k, 1:] = boxes.reshape(-1, 4) / scale
    return images, labels


# --------------------------------------------------------------------------- augmentation


class RandomCropKeepingBoxes(v2.Transform):
    """A random crop that always contains every box whole (so boxes keep their pixels).

    The crop's width and height are drawn independently from ``[min_scale, 1]`` times the
    image's, enlarged where needed to hold the union of the boxes, and placed at random
    among the positions that contain it. Applied with probability ``p``.
    """

    def __init__(self, min_scale: float = 0.5, p: float = 1.0):
        super().__init__()
        if not 0.0 < min_scale <= 1.0:
            raise ValueError(f"min_scale must be in (0, 1], got {min_scale}")
        self.min_scale = float(min_scale)
        self.p = float(p)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        if torch.rand(()) >= self.p:
            return {}
        height, width = None, None
        boxes = []
        for item in flat_inputs:
            if isinstance(item, tv_tensors.BoundingBoxes):
                xyxy = F.convert_bounding_box_format(item.as_subclass(torch.Tensor), old_format=item.format,
                                                     new_format=tv_tensors.BoundingBoxFormat.XYXY)
                boxes.append(xyxy.reshape(-1, 4))
                height, width = item.canvas_size
            elif isinstance(item, (tv_tensors.Image, tv_tensors.Mask)) and height is None:
                height, width = item.shape[-2:]
        if height is None:
            return {}
        all_boxes = torch.cat(boxes) if boxes else torch.zeros((0, 4))
        if len(all_boxes):  # the union of the boxes, in whole pixels, inside the image
            lo, hi = all_boxes[:, :2].min(0).values, all_boxes[:, 2:].max(0).values
            bx1 = min(width, max(0, math.floor(float(lo[0]))))
            by1 = min(height, max(0, math.floor(float(lo[1]))))
            bx2 = max(bx1, min(width, math.ceil(float(hi[0]))))
            by2 = max(by1, min(height, math.ceil(float(hi[1]))))
        else:  # nothing to keep
            bx1, by1, bx2, by2 = width, height, 0, 0
        r = self.min_scale + (1.0 - self.min_scale) * torch.rand(2)
        cw = min(width, max(int(width * float(r[0])), bx2 - bx1, 1))
        ch = min(height, max(int(height * float(r[1])), by2 - by1, 1))
        # any left in [max(0, bx2 - cw), min(bx1, width - cw)] keeps columns [bx1, bx2) in the crop
        lo_x, hi_x = max(0, bx2 - cw), min(bx1, width - cw)
        lo_y, hi_y = max(0, by2 - ch), min(by1, height - ch)
        left = int(torch.randint(lo_x, hi_x + 1, ()))
        top = int(torch.randint(lo_y, hi_y + 1, ()))
        return {"top": top, "left": left, "height": ch, "width": cw}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not params:
            return inpt
        return self._call_kernel(F.crop, inpt, **params)


def detection_train_transforms(size: int | tuple[int, int] = 256, min_scale: float = 0.5,
                               crop_p: float = 0.5) -> v2.Compose:
    """Flip, a random crop keeping every box whole (probability ``crop_p``), resize to ``size``.

    Works on ``(tv_tensors.Image, {"boxes", "labels"})`` (and any ``tv_tensors.Mask``);
    boxes are clamped to the image and degenerate ones removed with their labels.
    """
    size = (size, size) if isinstance(size, int) else tuple(size)
    return v2.Compose([
        v2.RandomHorizontalFlip(),
        RandomCropKeepingBoxes(min_scale=min_scale, p=crop_p),
        v2.Resize(size, antialias=True),
        v2.ClampBoundingBoxes(),
        v2.SanitizeBoundingBoxes(min_size=1.0),
    ])


def detection_test_transforms(size: int | tuple[int, int] = 256) -> v2.Compose:
    """Resize to ``size`` (boxes follow); no randomness."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    return v2.Compose([v2.Resize(size, antialias=True), v2.ClampBoundingBoxes()])


def load_data_bananas(root: str | Path, batch_size: int, train_transforms: Callable | None = None,
                      val_transforms: Callable | None = None, num_workers: int = 0) -> tuple[DataLoader, DataLoader]:
    """The book's ``load_data_bananas``: (train, val) loaders giving :func:`book_collate` batches."""
    train = BananasDataset(root, "train", transforms=train_transforms)
    val = BananasDataset(root, "val", transforms=val_transforms)
    return (DataLoader(train, batch_size, shuffle=True, collate_fn=book_collate, num_workers=num_workers),
            DataLoader(val, batch_size, shuffle=False, collate_fn=book_collate, num_workers=num_workers))
