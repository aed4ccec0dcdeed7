"""Pascal VOC2012 semantic segmentation (book 13.9) for training: label decoding and a reader.

The data (hub file ``VOCtrainval_11-May-2012.tar``, or the twin of
:mod:`cvflow.twins.voc`) holds, among other things::

    VOCdevkit/VOC2012/
        JPEGImages/<id>.jpg                  RGB photos, up to 500x500
        SegmentationClass/<id>.png           'P' mode PNG, the VOC palette; pixel = class index
                                             0..20, 255 = the void border around every object
        SegmentationObject/<id>.png          'P' mode PNG; pixel = object number 1..n, 255 void
        ImageSets/Segmentation/{train,val,trainval}.txt   one <id> a line

Labels become class indices by :func:`read_voc_label`: a palette PNG whose palette is the
VOC one gives the indices directly; any other mask (RGB PNGs, as some mirrors ship) goes
through :func:`voc_label_indices`, a vectorised colour lookup (the book's
``colormap2label`` as a sorted table of 22 packed colours and ``searchsorted``, instead
of a 256**3 table). Index 255, colour (224, 224, 192), is kept: it is the ignore index
(``cross_entropy(..., ignore_index=255)``); the book maps it to background.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from cvflow.console import info
from cvflow.errors import DataError

__all__ = [
    "IGNORE_INDEX",
    "VOC_CLASSES",
    "VOC_COLORMAP",
    "VOCSegDataset",
    "find_voc_root",
    "load_data_voc",
    "read_ids",
    "read_voc_label",
    "voc_colormap2label",
    "voc_label_indices",
    "voc_palette",
    "voc_transforms",
]

VOC_CLASSES = ['background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
               'diningtable', 'dog', 'horse', 'motorbike', 'person', 'potted plant', 'sheep', 'sofa', 'train',
               'tv/monitor']

VOC_COLORMAP = [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128], [128, 0, 128], [0, 128, 128],
                [128, 128, 128], [64, 0, 0], [192, 0, 0], [64, 128, 0], [192, 128, 0], [64, 0, 128], [192, 0, 128],
                [64, 128, 128], [192, 128, 128], [0, 64, 0], [128, 64, 0], [0, 192, 0], [128, 192, 0], [0, 64, 128]]

IGNORE_INDEX = 255
VOID_COLOR = (224, 224, 192)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def voc_palette() -> list[int]:
    """The standard 256-entry VOC palette as a flat ``[r, g, b, ...]`` list (768 values).

    Entry ``i`` spreads the bits of ``i`` over the three channels (the devkit's
    ``labelcolormap``): entries 0..20 are :data:`VOC_COLORMAP`, entry 255 is (224, 224, 192).
    """
    out = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out += [r, g, b]
    return out


_PALETTE = voc_palette()
# packed colours 0xRRGGBB of the 21 classes and the void border, sorted for searchsorted
_CODES = np.array([(r << 16) | (g << 8) | b for r, g, b in VOC_COLORMAP] + [(224 << 16) | (224 << 8) | 192])
_INDEX = np.array(list(range(21)) + [IGNORE_INDEX], dtype=np.uint8)
_ORDER = np.argsort(_CODES)
_SORTED_CODES, _SORTED_INDEX = _CODES[_ORDER], _INDEX[_ORDER]


def voc_colormap2label() -> torch.Tensor:
    """The book's table: a ``256**3`` long tensor mapping a packed RGB colour to its class.

    As in the book unknown colours give 0, but the void colour gives 255 (kept as ignore).
    Costs 128 MiB; :func:`voc_label_indices` does not need it.
    """
    table = torch.zeros(256**3, dtype=torch.long)
    table[torch.from_numpy(_CODES)] = torch.from_numpy(_INDEX.astype(np.int64))
    return table


def _rgb_to_indices(rgb: np.ndarray, unknown: int) -> tuple[np.ndarray, int]:
    """(H, W, 3) uint8 colours -> ((H, W) uint8 indices, number of pixels of unknown colour)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] < 3:
        raise ValueError(f"expected an (H, W, 3) colour image, got shape {rgb.shape}")
    rgb = rgb[..., :3].astype(np.int32)
    codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    pos = np.searchsorted(_SORTED_CODES, codes).clip(max=len(_SORTED_CODES) - 1)
    hit = _SORTED_CODES[pos] == codes
    out = np.where(hit, _SORTED_INDEX[pos], np.uint8(unknown)).astype(np.uint8)
    return out, int(hit.size - np.count_nonzero(hit))


def voc_label_indices(colormap: torch.Tensor | np.ndarray, colormap2label: torch.Tensor | None = None, *,
                      unknown: int = IGNORE_INDEX) -> torch.Tensor:
    """The book's ``voc_label_indices``: an RGB label image -> class indices (H, W), long.

    ``colormap`` is a ``(3, H, W)`` tensor (as ``read_image`` gives) or an ``(H, W, 3)``
    numpy array. Colours of :data:`VOC_COLORMAP` give 0..20, the void colour 255 and any
    other colour ``unknown``. With the book's ``colormap2label`` table the table decides.
    Vectorised: no per-pixel Python.
    """
    if isinstance(colormap, torch.Tensor):
        if colormap.dim() != 3 or colormap.shape[0] not in (3, 4):
            raise ValueError(f"expected a (3, H, W) tensor, got shape {tuple(colormap.shape)}")
        rgb = colormap[:3].permute(1, 2, 0).cpu().numpy()
    else:
        rgb = np.asarray(colormap)
    if colormap2label is not None:
        rgb = rgb.astype(np.int64)
        idx = torch.from_numpy((rgb[..., 0] * 256 + rgb[..., 1]) * 256 + rgb[..., 2])
        return colormap2label[idx]
    return torch.from_numpy(_rgb_to_indices(rgb, unknown)[0]).long()


def _is_voc_palette(palette: Sequence[int] | None) -> bool:
    return palette is not None and len(palette) >= 63 and list(palette[:63]) == _PALETTE[:63]


def read_voc_label(path: str | Path) -> tuple[np.ndarray, int]:
    """A VOC mask file -> ``((H, W) uint8 class indices, pixels of unknown colour)``.

    'P' PNGs with the VOC palette and 'L' PNGs are indices already; other palettes and
    RGB(A) masks are mapped by colour (unknown colours become 255, and are counted).
    Raises :class:`DataError` for indices outside 0..20 and 255 in an index mask.
    """
    with Image.open(path) as handle:
        handle.load()
        if handle.mode == "L" or (handle.mode == "P" and _is_voc_palette(handle.getpalette())):
            indices = np.array(handle)
            bad = (indices > 20) & (indices != IGNORE_INDEX)
            if bad.any():
                values = sorted(set(np.unique(indices[bad]).tolist()))[:5]
                raise DataError(f"{path}: label indices {values} are not VOC classes (0..20, 255)")
            return indices, 0
        return _rgb_to_indices(np.asarray(handle.convert("RGB")), IGNORE_INDEX)


# --------------------------------------------------------------------------- reading


def find_voc_root(folder: str | Path) -> Path | None:
    """The ``VOC2012`` folder: ``folder`` itself, ``folder/VOC2012`` or ``folder/VOCdevkit/VOC2012``."""
    folder = Path(folder)
    for candidate in (folder, folder / "VOC2012", folder / "VOCdevkit" / "VOC2012"):
        if (candidate / "ImageSets" / "Segmentation").is_dir() and (candidate / "JPEGImages").is_dir():
            return candidate
    return None


def read_ids(voc: Path, split: str) -> list[str]:
    path = voc / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not path.is_file():
        raise DataError(f"{path}: missing; the VOC layout is ImageSets/Segmentation/{{train,val}}.txt")
    ids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not ids:
        raise DataError(f"{path}: lists no images")
    return ids


def _decode_pair(paths: tuple[Path, Path]) -> tuple[torch.Tensor, torch.Tensor, int] | str:
    image_path, label_path = paths
    try:
        with Image.open(image_path) as handle:
            image = np.array(handle.convert("RGB"))
        label, unknown = read_voc_label(label_path)
    except Exception as exc:  # noqa: BLE001 - any failure means "corrupt"
        text = str(exc).splitlines()[0] if str(exc) else "unreadable"
        return f"{type(exc).__name__}: {text}"
    if image.shape[:2] != label.shape:
        return f"image {image.shape[1]}x{image.shape[0]} but mask {label.shape[1]}x{label.shape[0]}"
    return torch.from_numpy(image).permute(2, 0, 1).contiguous(), torch.from_numpy(label), unknown


#: The FCN's test input as data (:func:`cvflow.preprocess.inference_transform`): floats in [0, 1] normalised with the
#: ImageNet mean and std, the image whole.
TEST_SPEC = {"scale": "unit", "mean": list(MEAN), "std": list(STD)}


def voc_transforms(crop_size: tuple[int, int] | None = (320, 480), normalize: bool = True) -> v2.Compose:
    """The book's pipeline on ``(tv_tensors.Image, tv_tensors.Mask)``: one random crop of both,
    then the image as float in [0, 1] normalised with the ImageNet mean and std (:data:`TEST_SPEC`).
    ``crop_size=None``: no crop (whole images)."""
    from cvflow.preprocess import inference_transform

    steps: list[Any] = [v2.RandomCrop(tuple(crop_size))] if crop_size is not None else []
    steps.append(inference_transform(TEST_SPEC if normalize else {"scale": "unit"}))
    return v2.Compose(steps)


class VOCSegDataset(Dataset):
    """The book's ``VOCSegDataset``: images and class-index masks decoded once, cropped together.

    ``root``: the ``VOC2012`` folder or a folder above it. ``split``: a list name in
    ``ImageSets/Segmentation`` (``train``, ``val``, ``trainval``) or the book's ``is_train``
    bool. Images smaller than ``crop_size`` (height, width) are dropped, as in the book;
    ``crop_size=None`` keeps every image, whole (the default transforms then do not crop).
    Items are ``(image float (3, h, w), label long (h, w))`` with 255 = ignore; ``transforms``
    (default :func:`voc_transforms`) gets ``(tv_tensors.Image uint8, tv_tensors.Mask)``.
    """

    def __init__(self, root: str | Path, split: str | bool = "train", crop_size: tuple[int, int] | None = (320, 480),
                 transforms: Callable | None = None, *, on_corrupt: str = "skip"):
        if isinstance(split, bool):
            split = "train" if split else "val"
        if on_corrupt not in ("skip", "error"):
            raise ValueError(f"on_corrupt must be 'skip' or 'error', got {on_corrupt!r}")
        voc = find_voc_root(root)
        if voc is None:
            raise DataError(f"{root}: holds no VOCdevkit/VOC2012 with JPEGImages/ and ImageSets/Segmentation/; "
                            "run `cvflow fetch` first")
        self.root = voc
        self.crop_size = (int(crop_size[0]), int(crop_size[1])) if crop_size is not None else None
        ids = read_ids(voc, split)
        pairs = [(voc / "JPEGImages" / f"{i}.jpg", voc / "SegmentationClass" / f"{i}.png") for i in ids]
        with ThreadPoolExecutor(max_workers=min(8, len(pairs))) as pool:
            results = list(pool.map(_decode_pair, pairs))
        bad = [(i, r) for i, r in zip(ids, results) if isinstance(r, str)]
        if bad:
            names = ", ".join(f"{i} ({reason})" for i, reason in bad[:5])
            names += f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            if on_corrupt == "error":
                raise DataError(f"{len(bad)} unreadable image/mask pair(s) in {voc} ({split}): {names}; "
                                "delete or replace them, or set on_corrupt: skip")
            info(f"warning: skipping {len(bad)} unreadable image/mask pair(s) in {voc} ({split}): {names}")
        odd = [i for i, r in zip(ids, results) if not isinstance(r, str) and r[2]]
        if odd:
            info(f"warning: {len(odd)} mask(s) hold colours outside the VOC colormap (set to 255, ignored): "
                 f"{', '.join(odd[:5])}{' ...' if len(odd) > 5 else ''}")
        ch, cw = self.crop_size or (0, 0)
        self.ids, self.images, self.labels = [], [], []
        for i, r in zip(ids, results):
            if isinstance(r, str) or r[0].shape[1] < ch or r[0].shape[2] < cw:
                continue
            self.ids.append(i)
            self.images.append(r[0])
            self.labels.append(r[1])
        if not self.images:
            raise DataError(f"{voc}: no readable image of the {len(ids)} in {split}.txt is at least "
                            f"{ch}x{cw} (height x width); use a smaller crop_size")
        self.transforms = transforms if transforms is not None else voc_transforms(self.crop_size)
        info(f"read {len(self.images)} examples")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = tv_tensors.Image(self.images[index])
        mask = tv_tensors.Mask(self.labels[index])
        image, mask = self.transforms(image, mask)
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).long()


def load_data_voc(root: str | Path, batch_size: int, crop_size: tuple[int, int] = (320, 480),
                  num_workers: int = 0) -> tuple[DataLoader, DataLoader]:
    """The book's ``load_data_voc``: (train, val) loaders of cropped, normalised batches."""
    train = VOCSegDataset(root, "train", crop_size)
    val = VOCSegDataset(root, "val", crop_size)
    return (DataLoader(train, batch_size, shuffle=True, drop_last=True, num_workers=num_workers),
            DataLoader(val, batch_size, drop_last=True, num_workers=num_workers))
