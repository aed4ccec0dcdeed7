"""The book's image-augmentation gallery (d2l 13.1) as PNGs: ``cvflow figures augmentation``.

On ``data/photos/cat1.jpg`` (``cvflow fetch photos``) it writes, into
``data/reports/augmentation/``, one PNG per augmenter of
:data:`cvflow.augmentation.BOOK_AUGMENTERS` (``flip_left_right.png``, ``flip_up_down.png``,
``random_resized_crop.png``, ``brightness.png``, ``hue.png``, ``color.png``,
``combination.png``), each the book's 2x4 grid of eight augmented copies, and
``overview.png`` stacking the seven grids under their titles.

This lives apart from ``pipelines/cifar10_augmentation.py`` (the CIFAR-10 training task) so
the figures' DVC stage depends on the drawing code only. Every grid is drawn with torch seeded
to :data:`cvflow.augmentation.SEED`, so reruns write byte-identical PNGs.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.transforms.v2 import functional as TF

from cvflow.augmentation import BOOK_AUGMENTERS, SEED, augmented_copies, draw_grid, draw_overview
from cvflow.data.readers.photos import read_photo
from cvflow.params import ParamsBase as Params
from cvflow.plots import _save

__all__ = ["PHOTO", "FILES", "OVERVIEW", "reports_dir", "load_cat", "copies", "figures"]

PHOTO = "cat1.jpg"
OVERVIEW = "overview.png"
#: The files written, in order: one grid per augmenter, then the overview.
FILES = tuple(f"{aug.name}.png" for aug in BOOK_AUGMENTERS) + (OVERVIEW,)


def reports_dir(root: Path) -> Path:
    return root / "data" / "reports" / "augmentation"


def load_cat(root: Path) -> torch.Tensor:
    """``data/photos/cat1.jpg`` as a ``(3, h, w)`` uint8 tensor, or a one-line DataError saying what to run."""
    return TF.pil_to_tensor(read_photo(root, PHOTO))


def copies(img: torch.Tensor, seed: int = SEED) -> dict[str, list[torch.Tensor]]:
    """Each augmenter's eight copies of ``img`` (torch seeded with ``seed`` before each), by name."""
    return {aug.name: augmented_copies(img, aug.build(), seed=seed) for aug in BOOK_AUGMENTERS}


def figures(params: Params, root: Path) -> dict[str, Path]:
    """Draw the gallery from ``root/data/photos/cat1.jpg`` into ``root/data/reports/augmentation/``.

    Returns ``{file name: path}`` in :data:`FILES` order; each PNG is written atomically.
    ``params`` is accepted like every pipeline's (nothing in it changes these figures).
    """
    del params
    img = load_cat(root)
    out = reports_dir(root)
    grids = copies(img)
    written = {f"{aug.name}.png": _save(draw_grid(grids[aug.name], aug.title), out / f"{aug.name}.png")
               for aug in BOOK_AUGMENTERS}
    written[OVERVIEW] = _save(draw_overview([(aug.title, grids[aug.name]) for aug in BOOK_AUGMENTERS]),
                              out / OVERVIEW)
    return written
