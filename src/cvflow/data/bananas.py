"""The banana detection data set (book 13.6): a demo twin, a reader and the book's batches.

The real data (hub file ``banana-detection.zip``) is, after extraction::

    banana-detection/
        bananas_train/images/0.png ... 999.png    256x256 RGB PNG
        bananas_train/label.csv                   img_name,label,xmin,ymin,xmax,ymax
        bananas_val/images/0.png ... 99.png
        bananas_val/label.csv

one banana per image, class 0, box corners in pixels. The book's authors made it by
pasting a banana sprite at random positions, scales and rotations onto varied photos;
:func:`generate_bananas` does the same with a banana drawn here (a curved, shaded yellow
body, brown tips, a stem, an anti-aliased alpha mask) on the procedural backgrounds of
:mod:`cvflow.data.synth`, and writes the same files in the same formats. The box is the
tight box of the pasted sprite's non-zero alpha, as pixel edges: ``xmin`` is the first
covered column, ``xmax`` one past the last (so ``xmax - xmin`` is the width in pixels).

:class:`BananasDataset` reads either (every PNG decoded once) into
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

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from cvflow.console import info, progress
from cvflow.errors import DataError

__all__ = [
    "BANANA_HEADER",
    "SPLITS",
    "BananasDataset",
    "RandomCropKeepingBoxes",
    "book_collate",
    "detection_train_transforms",
    "detection_test_transforms",
    "fetch_bananas",
    "find_bananas_root",
    "generate_bananas",
    "load_data_bananas",
    "read_label_csv",
    "render_banana_scene",
]

BANANA_HEADER = ("img_name", "label", "xmin", "ymin", "xmax", "ymax")
SPLITS = ("train", "val")
_FOLDER = {"train": "bananas_train", "val": "bananas_val"}


# --------------------------------------------------------------------------- the sprite


def _banana_sprite(rng: np.random.Generator, length: float) -> tuple[np.ndarray, np.ndarray]:
    """One banana, rotated, as ``(rgb float32 (h, w, 3), alpha uint8 (h, w))`` cropped to alpha > 0.

    The body is a band around a circular arc (chord ``length`` pixels) whose thickness
    tapers to points at both ends; a short stem sticks out of one end. Everything is
    evaluated per pixel in the sprite's own (rotated) coordinates, so the alpha is
    anti-aliased and exact, with no resampling.
    """
    half = rng.uniform(0.45, 1.05)  # half the angle the arc spans (how bent)
    radius = length / (2.0 * math.sin(half))
    thick = length * rng.uniform(0.17, 0.27)
    arc_len = 2.0 * half * radius
    stem_len = length * rng.uniform(0.06, 0.12)
    stem_w = thick * rng.uniform(0.16, 0.24)
    rot = rng.uniform(0.0, 2.0 * math.pi)
    mirror = -1.0 if rng.random() < 0.5 else 1.0

    ripe = rng.random()
    if ripe < 0.15:
        base = np.array([200, 205, 70], np.float32)  # green-yellow
    elif ripe < 0.85:
        base = np.array([248, 212, 58], np.float32)
    else:
        base = np.array([236, 188, 52], np.float32)  # riper, deeper yellow
    base = np.clip(base * (1.0 + rng.normal(0.0, 0.04, 3)).astype(np.float32), 0, 255)
    edge = np.array([150, 112, 30], np.float32)
    brown = np.array([88, 60, 26], np.float32) * np.float32(rng.uniform(0.8, 1.2))
    stem_col = np.array([112, 104, 44], np.float32)

    # Bounds: the outline's sample points, rotated, plus a margin for anti-aliasing.
    t = np.linspace(-half - stem_len / radius, half, 64)
    rr = np.concatenate([np.full_like(t, radius - thick / 2), np.full_like(t, radius + thick / 2)])
    tt = np.concatenate([t, t]) + math.pi / 2
    lx, ly = mirror * rr * np.cos(tt), rr * np.sin(tt)
    c, s = math.cos(rot), math.sin(rot)
    gx, gy = c * lx - s * ly, s * lx + c * ly
    x0, x1 = math.floor(gx.min()) - 2, math.ceil(gx.max()) + 2
    y0, y1 = math.floor(gy.min()) - 2, math.ceil(gy.max()) + 2

    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    xs += 0.5
    ys += 0.5
    # back to the sprite's own frame (arc centre at the origin, arc around +y)
    ux = (c * xs + s * ys) * mirror
    uy = -s * xs + c * ys
    r = np.hypot(ux, uy)
    theta = np.arctan2(uy, ux) - np.float32(math.pi / 2)  # 0 at the middle of the arc
    theta = (theta + np.pi) % (2 * np.pi) - np.pi
    q = (theta + half) * radius  # arc length from the stem end, pixels
    frac = q / arc_len
    d = r - radius  # signed distance from the centre line

    prof = np.maximum(np.sin(np.pi * np.clip(frac, 0.0, 1.0)), 0.0) ** 0.6
    hw = thick / 2 * prof  # half thickness
    body = np.clip(hw - np.abs(d) + 0.5, 0.0, 1.0) * ((frac >= 0) & (frac <= 1))
    stem = np.clip(stem_w / 2 - np.abs(d) + 0.5, 0.0, 1.0) * np.clip(q + stem_len + 0.5, 0.0, 1.0)
    stem *= np.clip(0.1 * arc_len - q, 0.0, 1.0)
    alpha = np.maximum(body, stem)

    u = np.clip(d / np.maximum(hw, 1e-3), -1.0, 1.0)
    shade = 0.6 + 0.4 * np.sqrt(1.0 - u * u)  # a cylinder lit from the front
    rgb = base * shade[..., None]
    glow = 0.35 * np.exp(-(((u + 0.35) / 0.2) ** 2))[..., None]  # highlight along one side
    rgb += (255.0 - rgb) * glow
    rib = np.clip((np.abs(u) - 0.72) / 0.28, 0.0, 1.0)[..., None] * 0.6  # darker rim (the ribs)
    rgb += (edge - rgb) * rib
    tip = np.clip((0.09 - frac) / 0.06, 0.0, 1.0) + np.clip((frac - 0.91) / 0.06, 0.0, 1.0)
    rgb += (brown - rgb) * np.clip(tip, 0.0, 1.0)[..., None]
    if ripe >= 0.85:  # sugar spots
        for _ in range(int(rng.integers(4, 12))):
            fx, fu = rng.uniform(0.15, 0.85), rng.uniform(-0.6, 0.6)
            spot = np.exp(-(((frac - fx) * arc_len) ** 2 + ((u - fu) * thick / 2) ** 2) / (thick * 0.05) ** 2)
            rgb += (brown - rgb) * (0.7 * spot)[..., None]
    st = (stem > body)[..., None]
    rgb = np.where(st, stem_col, rgb)

    a8 = np.rint(alpha * 255.0).astype(np.uint8)
    rows, cols = np.nonzero(a8.any(axis=1))[0], np.nonzero(a8.any(axis=0))[0]
    a8 = a8[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    rgb = rgb[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return np.clip(rgb, 0, 255).astype(np.float32), a8


def _scene_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A varied background (float32 HxWx3): tables, cloths, wood, stone, grass, sky, noise."""
    from cvflow.data import synth

    kind = rng.random()
    if kind < 0.55:
        img = synth._background(rng, size, size)
    else:  # an outdoor-ish scene: sky or foliage above, ground below, both textured
        horizon = rng.uniform(0.2, 0.8) * size
        skies = ((120, 160, 215), (190, 205, 225), (225, 225, 220), (95, 115, 95), (150, 170, 120))
        grounds = ((70, 120, 45), (105, 140, 60), (120, 95, 65), (90, 85, 80), (150, 130, 100), (45, 70, 40))
        sky = np.array(skies[int(rng.integers(len(skies)))], np.float32) * (1 + rng.normal(0, 0.08, 3))
        ground = np.array(grounds[int(rng.integers(len(grounds)))], np.float32) * (1 + rng.normal(0, 0.1, 3))
        sky, ground = sky.astype(np.float32), ground.astype(np.float32)
        xx, yy = synth._grid(size, size)
        wave = horizon + size * 0.06 * np.sin(xx[0] * (2 * math.pi / size) * rng.uniform(0.5, 2.0) + rng.uniform(0, 6))
        m = np.clip(yy - wave[None, :], 0.0, 1.0)[..., None]
        tex = synth._noise(rng, size, size, int(rng.integers(6, 24)))[..., None]
        img = sky + (ground - sky) * m
        img = img * (0.75 + 0.5 * tex)
    if rng.random() < 0.5:
        canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(canvas)
        for _ in range(int(rng.integers(1, 4))):
            synth._distractor(rng, draw, size, size)
        img = np.asarray(canvas, dtype=np.float32)
    return np.ascontiguousarray(img, dtype=np.float32)


def render_banana_scene(rng: np.random.Generator, size: int = 256
                        ) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """One banana pasted on a random background.

    Returns ``(image uint8 (size, size, 3), alpha uint8 (size, size), box)``: ``alpha`` is
    the pasted sprite's alpha in image coordinates and ``box = (xmin, ymin, xmax, ymax)``
    its tight box (pixel edges; ``xmax``/``ymax`` one past the last covered pixel).
    Depends only on the generator's state (which it advances).
    """
    size = int(size)
    if size < 32:
        raise ValueError(f"size must be at least 32 pixels, got {size}")
    bg = _scene_background(rng, size)
    length = size * rng.uniform(0.13, 0.36)
    rgb, a8 = _banana_sprite(rng, length)
    h, w = a8.shape
    if h > size or w > size:  # cannot happen at these scales; keep the contract anyway
        raise AssertionError("banana sprite larger than the image")
    x = int(rng.integers(0, size - w + 1))
    y = int(rng.integers(0, size - h + 1))
    a = a8.astype(np.float32)[..., None] * np.float32(1 / 255)
    patch = bg[y : y + h, x : x + w]
    patch += (rgb - patch) * a
    # global photometry: brightness/colour gain and mild sensor noise
    gain = np.float32(rng.uniform(0.85, 1.12)) * (1.0 + rng.normal(0.0, 0.03, 3)).astype(np.float32)
    bg *= gain
    sigma = rng.uniform(0.0, 4.0)
    if sigma > 1.0:
        bg += rng.normal(0.0, sigma, bg.shape).astype(np.float32)
    image = np.clip(bg, 0, 255).astype(np.uint8)
    alpha = np.zeros((size, size), np.uint8)
    alpha[y : y + h, x : x + w] = a8
    return image, alpha, (x, y, x + w, y + h)


def generate_bananas(root: str | Path, n_train: int = 1000, n_val: int = 100, seed: int = 0,
                     size: int = 256) -> Path:
    """Write the banana demo twin into ``root`` (the ``banana-detection`` folder); return ``root``.

    ``root/bananas_{train,val}/images/<i>.png`` and ``label.csv`` exactly as in the real
    set. Image ``i`` of a split depends only on ``(seed, split, i)``.
    """
    root = Path(root)
    n = {"train": int(n_train), "val": int(n_val)}
    if min(n.values()) < 0:
        raise ValueError(f"image counts must be >= 0, got n_train={n_train}, n_val={n_val}")
    with progress("generating the banana demo twin", total=sum(n.values()), unit="images") as bar:
        for split_index, split in enumerate(SPLITS):
            folder = root / _FOLDER[split]
            (folder / "images").mkdir(parents=True, exist_ok=True)
            rows = []
            for i in range(n[split]):
                rng = np.random.default_rng([int(seed), split_index, i])
                image, _, box = render_banana_scene(rng, size)
                name = f"{i}.png"
                Image.fromarray(image).save(folder / "images" / name, compress_level=1)
                rows.append((name, 0, *box))
                bar.advance()
            with open(folder / "label.csv", "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerow(BANANA_HEADER)
                writer.writerows(rows)
    return root


# --------------------------------------------------------------------------- reading


def find_bananas_root(folder: str | Path) -> Path | None:
    """The folder holding ``bananas_train/`` and ``bananas_val/``: ``folder``, or one level down."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    for candidate in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]:
        if all((candidate / f).is_dir() for f in _FOLDER.values()):
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
        from cvflow.data.images import decode_all

        if split not in _FOLDER:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if on_corrupt not in ("skip", "error"):
            raise ValueError(f"on_corrupt must be 'skip' or 'error', got {on_corrupt!r}")
        found = find_bananas_root(root)
        if found is None:
            raise DataError(f"{root}: holds no bananas_train/ and bananas_val/ folders (the layout of "
                            "banana-detection.zip); run `cvflow fetch` first")
        self.root = found
        folder = found / _FOLDER[split]
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


# --------------------------------------------------------------------------- sources


def check_layout(root: Path) -> dict[str, int]:
    """Images per split (rows of label.csv whose PNG exists); a DataError names what is missing."""
    counts = {}
    for split in SPLITS:
        folder = root / _FOLDER[split]
        if not (folder / "images").is_dir():
            raise DataError(f"{folder / 'images'}: missing; the banana layout is "
                            "bananas_{train,val}/{images,label.csv}")
        rows = read_label_csv(folder / "label.csv")
        missing = [n for n in rows if not (folder / "images" / n).is_file()]
        if missing:
            raise DataError(f"{folder}: label.csv names {len(missing)} image(s) not in images/: "
                            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        counts[split] = len(rows)
    return counts


def fetch_bananas(dest: str | Path, source: str = "demo", *, path: str | Path | None = None,
                  hub_url: str | None = None, downloads: str | Path | None = None, n_train: int = 1000,
                  n_val: int = 100, seed: int = 0, size: int = 256) -> dict[str, int]:
    """Materialise the banana set at ``dest`` (the ``banana-detection`` folder, replaced atomically).

    ``source``: ``d2l`` (hub file ``banana-detection.zip``, SHA-1 checked, safely extracted),
    ``local`` (``path``: that zip, or a folder holding the layout) or ``demo``
    (:func:`generate_bananas`). Returns the image count per split.
    """
    from cvflow.data.sources import fetch_dataset

    dest = Path(dest)
    counts = fetch_dataset(
        dest, source, layout="bananas_train/ and bananas_val/ folders", hub_key="banana-detection",
        locate=find_bananas_root, check=check_layout,
        generate=lambda folder: generate_bananas(folder, n_train, n_val, seed, size),
        path=path, hub_url=hub_url, downloads=downloads,
    )
    info(f"banana data ({source}) at {dest}: train {counts['train']}, val {counts['val']}")
    return counts
