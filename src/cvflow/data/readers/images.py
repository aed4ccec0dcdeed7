"""Image-folder readers with bounded memory: decode per sample, or cache decoded images up to a cap.

``root/<class>/*.jpg|png`` (the layout of hotdog.zip, torchvision's ImageFolder) is scanned
and every item is a full-size uint8 CHW tensor run through the transform, so the book's
crops always see the whole image. Where the decoded pixels live is a choice (``cache``):

* ``"none"``: nothing is kept; each ``__getitem__`` decodes its file (in the DataLoader's
  worker processes when ``num_workers > 0``, as torchvision's references do). Memory does
  not grow with the data set (300,000 Kaggle CIFAR-10 test files, 10,222 large dog JPEGs).
* ``"decoded"``: every file is decoded once up front (threads: Pillow releases the GIL)
  and kept, up to ``cache_max_bytes`` (None: no cap); images past the cap are decoded per
  sample like ``"none"``. No downscaling: the cache holds exactly what a decode gives.

Decoded images are shared process-wide by file identity (``st_dev``, ``st_ino``, size,
mtime): two splits listing the same files (Kaggle ``train_valid`` = ``train`` + ``valid``
hard links, or the same path twice) hold one tensor per file, decoded once.

Corrupt or truncated files are found before training, in both modes, and reported by name:
skipped (with a warning) or, with ``on_corrupt='error'``, a :class:`~cvflow.errors.DataError`.
``"decoded"`` finds them by decoding; ``"none"`` by a cheap check in a thread pool (JPEG: a
1/8-scale draft decode, which reads every scan and so catches truncation; others:
Pillow's ``verify``). A file that still fails later (changed on disk) is a one-line
DataError naming it.
"""

from __future__ import annotations

import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2

from cvflow.console import info
from cvflow.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
CACHE_MODES = ("none", "decoded")


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (a stable order on every OS)."""
    with os.scandir(folder) as entries:
        return sorted(Path(e.path) for e in entries if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES))


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'unreadable'}"


def _decode(path: Path) -> torch.Tensor | str:
    """The image as a uint8 CHW tensor, or the reason it cannot be read."""
    try:
        with Image.open(path) as handle:
            array = np.array(handle.convert("RGB"))  # a writable copy torch can own
    except Exception as exc:  # noqa: BLE001 - any decoder failure means "corrupt"
        return _reason(exc)
    if array.size == 0:
        return "empty image"
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def _check(path: Path) -> str | None:
    """A cheap readability check (no full decode); None when the file looks fine."""
    try:
        with Image.open(path) as handle:
            width, height = handle.size
            if width == 0 or height == 0:
                return "empty image"
            if handle.format == "JPEG":  # a 1/8-scale decode still reads every scan: catches truncation
                handle.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                handle.load()
            else:
                handle.verify()
    except Exception as exc:  # noqa: BLE001 - any decoder failure means "corrupt"
        return _reason(exc)
    return None


# Decoded images by file identity, shared by every reader of this process; an entry lives
# as long as some reader holds its tensor.
_SHARED: "weakref.WeakValueDictionary[tuple[int, int, int, int], torch.Tensor]" = weakref.WeakValueDictionary()
_SHARED_LOCK = threading.Lock()


def _file_key(path: Path) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _decode_shared(path: Path) -> tuple[torch.Tensor | str, bool]:
    """:func:`_decode` through the process-wide cache; returns (result, was it decoded now)."""
    try:
        key = _file_key(path)
    except OSError as exc:
        return _reason(exc), True
    with _SHARED_LOCK:
        cached = _SHARED.get(key)
    if cached is not None:
        return cached, False
    result = _decode(path)
    if isinstance(result, torch.Tensor):
        with _SHARED_LOCK:
            result = _SHARED.setdefault(key, result)
    return result, True


def _report(bad: list[tuple[Path, str]], on_corrupt: str, what: str) -> None:
    if not bad:
        return
    names = ", ".join(f"{p} ({reason})" for p, reason in bad[:5])
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    if on_corrupt == "error":
        raise DataError(f"{len(bad)} unreadable image(s) in {what or 'the data set'}: {names}{more}; "
                        "delete or replace them, or set on_corrupt: skip")
    info(f"warning: skipping {len(bad)} unreadable image(s) in {what or 'the data set'}: {names}{more}")


def _workers() -> int:
    return min(8, os.cpu_count() or 1)


def decode_all(paths: Sequence[Path], on_corrupt: str = "skip", what: str = "") -> tuple[list[torch.Tensor], list[int]]:
    """Decode ``paths`` once (threads); return the images and the indices of the readable ones."""
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        results = list(pool.map(_decode, paths, chunksize=16))
    _report([(p, r) for p, r in zip(paths, results) if isinstance(r, str)], on_corrupt, what)
    keep = [i for i, r in enumerate(results) if not isinstance(r, str)]
    return [results[i] for i in keep], keep


class _Images(Sequence):
    """``dataset.images``: the uint8 CHW images by index, decoded on access where not cached."""

    def __init__(self, dataset: "_ImageFiles"):
        self._dataset = dataset

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self._dataset.image(i) for i in range(*index.indices(len(self)))]
        return self._dataset.image(index)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (self._dataset.image(i) for i in range(len(self)))


class _ImageFiles(Dataset):
    """What every image reader shares: a checked list of files, the cache, and decoding on access.

    Subclasses list their files, call :meth:`_load` (which checks or decodes them, reports
    unreadable ones and returns the indices kept) and define ``__getitem__``.
    """

    def _setup_cache(self, cache: str, cache_max_bytes: int | None) -> None:
        if cache not in CACHE_MODES:
            raise DataError(f"unknown image cache {cache!r}: use {' or '.join(CACHE_MODES)}")
        if cache_max_bytes is not None and cache_max_bytes < 0:
            raise DataError(f"cache_max_bytes must be >= 0 or None (no cap), got {cache_max_bytes}")
        self.cache = cache
        self.cache_max_bytes = cache_max_bytes
        self.decoded_now = 0  # files this reader decoded itself while building its cache (not shared hits)

    def _load(self, paths: list[Path], on_corrupt: str, what: str) -> list[int]:
        """Check (``cache="none"``) or decode (``"decoded"``) ``paths``; keep the readable ones."""
        if self.cache == "none":
            with ThreadPoolExecutor(max_workers=_workers()) as pool:
                problems = list(pool.map(_check, paths, chunksize=16))
            cached: list[torch.Tensor | None] = [None] * len(paths)
            bad = [(p, r) for p, r in zip(paths, problems) if r is not None]
            keep = [i for i, r in enumerate(problems) if r is None]
        else:
            cached, bad, keep = self._fill(paths)
        _report(bad, on_corrupt, what)
        self.paths = [paths[i] for i in keep]
        self._cached = [cached[i] for i in keep]
        self.cache_nbytes = sum(t.numel() for t in self._cached if t is not None)
        return keep

    def _fill(self, paths: list[Path]) -> tuple[list[torch.Tensor | None], list[tuple[Path, str]], list[int]]:
        """Decode every file once (threads, in order); keep tensors while they fit under the cap."""
        cap = self.cache_max_bytes
        cached: list[torch.Tensor | None] = []
        bad: list[tuple[Path, str]] = []
        keep: list[int] = []
        held = 0
        workers = _workers()
        window = 8 * workers  # Executor.map submits everything at once: feed it a window at a time, so
        # images past the cap are dropped soon after decoding and memory stays near the cap
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = (r for start in range(0, len(paths), window)
                       for r in pool.map(_decode_shared, paths[start:start + window]))
            for i, (result, fresh) in enumerate(results):
                self.decoded_now += int(fresh)
                if isinstance(result, str):
                    bad.append((paths[i], result))
                    cached.append(None)
                    continue
                keep.append(i)
                if cap is None or held + result.numel() <= cap:
                    cached.append(result)
                    held += result.numel()
                else:
                    cached.append(None)
        return cached, bad, keep

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, index: int) -> torch.Tensor:
        """Image ``index`` as a full-size uint8 CHW tensor (from the cache, or decoded now)."""
        cached = self._cached[index]
        if cached is not None:
            return cached
        result = _decode(self.paths[index])
        if isinstance(result, str):
            raise DataError(f"{self.paths[index]}: unreadable ({result}); it changed after the data set was "
                            "checked, or is damaged past its header: delete or replace it")
        return result

    @property
    def images(self) -> _Images:
        """The images as a sequence (``images[i]`` is :meth:`image`), cheap: nothing is copied."""
        return _Images(self)


class DecodedImageFolder(_ImageFiles):
    """``root/<class>/<image>``; items are ``(transform(uint8 CHW full-size image), class index)``.

    ``cache``: ``"none"`` (decode per item: memory bounded) or ``"decoded"`` (decode once up
    front and keep, at most ``cache_max_bytes`` bytes of pixels; None: no cap). Attributes:
    ``classes``, ``paths``, ``targets``, ``cache_nbytes`` (bytes held by this reader's cache),
    :meth:`image` (uint8 CHW, for drawing grids) and ``images`` (the same, as a sequence).
    """

    def __init__(self, root: Path, classes: Sequence[str] | None = None, transform: Callable | None = None,
                 on_corrupt: str = "skip", *, cache: str = "decoded", cache_max_bytes: int | None = None):
        self._setup_cache(cache, cache_max_bytes)
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
        keep = self._load(paths, on_corrupt, str(self.root))
        self.targets = torch.tensor([labels[i] for i in keep], dtype=torch.long)
        self.transform = transform

    def __getitem__(self, index: int):
        image = self.image(index)
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[index]


def ids_from_names(paths: Sequence[Path]) -> list[int] | list[str]:
    """Each file's id, from its own name (``17.png`` -> 17): ints when every name is a number, else the names.

    Ids come from file names, never from positions, so no listing order can shift a label
    onto another image.
    """
    stems = [p.stem for p in paths]
    if stems and all(s.isdigit() for s in stems):
        return [int(s) for s in stems]
    return stems


class ImageIdFolder(_ImageFiles):
    """An unlabelled flat folder of images (Kaggle ``test/``); items are ``(transform(image), id)``.

    The id is the file name without its extension; the files are ordered by id, numerically
    when every id is a number (1, 2, ..., 10, not the string order 1, 10, 11, 2) and by name
    otherwise. ``cache`` defaults to ``"none"``: prediction reads each image once, so decoding
    it in the loader's workers is the one decode, and memory stays flat on 300,000 files.
    Attributes: ``ids`` (in item order), ``paths``, ``cache_nbytes``, :meth:`image`.
    """

    def __init__(self, folder: Path, transform: Callable | None = None, on_corrupt: str = "error", *,
                 cache: str = "none", cache_max_bytes: int | None = None):
        self._setup_cache(cache, cache_max_bytes)
        self.root = Path(folder)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: no such folder; run `cvflow fetch` first")
        paths = list_images(self.root)
        if not paths:
            raise DataError(f"{self.root}: no images (.jpg, .png) in this folder")
        ids = ids_from_names(paths)
        if len(set(ids)) != len(ids):
            raise DataError(f"{self.root}: two files share an id (e.g. 7.png and 7.jpg); keep one per id")
        order = sorted(range(len(paths)), key=ids.__getitem__)
        keep = self._load([paths[i] for i in order], on_corrupt, str(self.root))
        self.ids = [ids[order[i]] for i in keep]
        self.transform = transform

    def __getitem__(self, index: int):
        image = self.image(index)
        if self.transform is not None:
            image = self.transform(image)
        return image, self.ids[index]


def classification_test_spec(cfg) -> dict:
    """The book's 13.2 test transform as data (:func:`cvflow.preprocess.inference_transform`): Resize([r, r]),
    CenterCrop(c), floats in [0, 1], normalised with ``cfg.mean`` / ``cfg.std``."""
    return {"resize": [cfg.test_resize, cfg.test_resize], "crop": cfg.test_crop, "scale": "unit",
            "mean": list(cfg.mean), "std": list(cfg.std)}


def classification_transforms(cfg) -> tuple[v2.Compose, v2.Compose]:
    """The book's 13.2 transforms on uint8 tensors: (train, test).

    train: RandomResizedCrop(train_crop, scale=train_scale) + horizontal flip, then float in [0, 1] and
    normalised with ``cfg.mean`` / ``cfg.std``; test: :func:`classification_test_spec`'s.
    """
    from cvflow.preprocess import inference_transform

    finish = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(cfg.mean), list(cfg.std))]
    train = [v2.RandomResizedCrop(cfg.train_crop, scale=tuple(cfg.train_scale), antialias=True)]
    if cfg.hflip:
        train.append(v2.RandomHorizontalFlip())
    return v2.Compose(train + finish), inference_transform(classification_test_spec(cfg))


class TensorImages(Dataset):
    """uint8 CHW images held in memory (a generated set, CIFAR-10's decoded batches) with labels and a transform."""

    def __init__(self, images, labels, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.transform(self.images[index]), self.labels[index]
