"""The image augmenters of section 13.1 and the book's gallery of augmented copies.

The book shows each augmenter by applying it eight times to one photo (``cat1.jpg``) and
drawing the results in a 2x4 grid: ``apply(img, aug, num_rows=2, num_cols=4, scale=1.5)``.
:data:`BOOK_AUGMENTERS` lists those augmenters with the book's names and parameters, written
with ``torchvision.transforms.v2`` so they run on ``tv_tensors.Image`` tensors (the same code
path as a training pipeline's, and boxes or masks would follow along if given).

Randomness: :func:`augmented_copies` seeds torch's generator (inside
``torch.random.fork_rng``, so the caller's random stream is left untouched) before drawing a
grid's copies; the same seed gives the same copies, and so byte-identical PNGs on reruns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from cvflow.plots import plt

__all__ = [
    "Augmenter",
    "BOOK_AUGMENTERS",
    "NUM_ROWS",
    "NUM_COLS",
    "SCALE",
    "SEED",
    "augmenter",
    "shape_aug",
    "color_aug",
    "augmented_copies",
    "draw_grid",
    "draw_overview",
]

# The book's apply(img, aug, num_rows=2, num_cols=4, scale=1.5): eight copies in a 2x4 grid.
NUM_ROWS = 2
NUM_COLS = 4
SCALE = 1.5
#: The seed set before every grid: each grid is reproducible on its own, whatever was drawn before.
SEED = 0


def shape_aug() -> v2.Transform:
    """The book's ``shape_aug``: a random crop of 10%-100% of the area, aspect 1:2 to 2:1, resized to 200x200."""
    return v2.RandomResizedCrop((200, 200), scale=(0.1, 1), ratio=(0.5, 2))


def color_aug() -> v2.Transform:
    """The book's ``color_aug``: brightness, contrast, saturation and hue all changed at random by up to 50%."""
    return v2.ColorJitter(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.5)


@dataclass(frozen=True)
class Augmenter:
    """One augmenter of 13.1: ``name`` (file stem), ``title`` (the book's wording), how to build it.

    ``random_copies`` is False for the flips, whose every copy is either the photo or its
    mirror image; the others give eight different copies.
    """

    name: str
    title: str
    build: Callable[[], v2.Transform]
    random_copies: bool = True


#: 13.1's augmenters in the book's order, with the book's parameters.
BOOK_AUGMENTERS: tuple[Augmenter, ...] = (
    Augmenter("flip_left_right", "RandomHorizontalFlip()", v2.RandomHorizontalFlip, random_copies=False),
    Augmenter("flip_up_down", "RandomVerticalFlip()", v2.RandomVerticalFlip, random_copies=False),
    Augmenter("random_resized_crop", "RandomResizedCrop((200, 200), scale=(0.1, 1), ratio=(0.5, 2))", shape_aug),
    Augmenter("brightness", "ColorJitter(brightness=0.5, contrast=0, saturation=0, hue=0)",
              lambda: v2.ColorJitter(brightness=0.5, contrast=0, saturation=0, hue=0)),
    Augmenter("hue", "ColorJitter(brightness=0, contrast=0, saturation=0, hue=0.5)",
              lambda: v2.ColorJitter(brightness=0, contrast=0, saturation=0, hue=0.5)),
    Augmenter("color", "ColorJitter(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.5)", color_aug),
    Augmenter("combination", "Compose([RandomHorizontalFlip(), color_aug, shape_aug])",
              lambda: v2.Compose([v2.RandomHorizontalFlip(), color_aug(), shape_aug()])),
)


def augmenter(name: str) -> Augmenter:
    """The augmenter of :data:`BOOK_AUGMENTERS` called ``name``."""
    for aug in BOOK_AUGMENTERS:
        if aug.name == name:
            return aug
    raise KeyError(f"no augmenter {name!r}: known ones are {', '.join(a.name for a in BOOK_AUGMENTERS)}")


def augmented_copies(img: torch.Tensor, aug: Callable[[torch.Tensor], torch.Tensor],
                     n: int = NUM_ROWS * NUM_COLS, seed: int = SEED) -> list[tv_tensors.Image]:
    """``n`` augmented copies of ``img`` (``(3, h, w)`` uint8), the book's ``[aug(img) for _ in range(n)]``.

    torch is seeded with ``seed`` first, inside ``fork_rng`` so the caller's random stream
    does not change: the same seed gives the same copies.
    """
    image = tv_tensors.Image(img)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return [aug(image) for _ in range(n)]


def _to_hwc(img: torch.Tensor) -> np.ndarray:
    return img.permute(1, 2, 0).numpy()


def _draw_images(axes: Sequence, copies: Sequence[torch.Tensor]) -> None:
    """The book's ``show_images``: one image per axes, no axis ticks."""
    for ax, img in zip(axes, copies):
        ax.imshow(_to_hwc(img))
        ax.axes.get_xaxis().set_visible(False)
        ax.axes.get_yaxis().set_visible(False)


def draw_grid(copies: Sequence[torch.Tensor], title: str = "", num_rows: int = NUM_ROWS,
              num_cols: int = NUM_COLS, scale: float = SCALE):
    """Figure: the copies in the book's ``num_rows x num_cols`` grid, ``scale`` inches per image."""
    if len(copies) != num_rows * num_cols:
        raise ValueError(f"{len(copies)} images for a {num_rows}x{num_cols} grid")
    fig, axes = plt.subplots(num_rows, num_cols, figsize=(num_cols * scale, num_rows * scale))
    _draw_images(axes.flatten(), copies)
    if title:
        fig.suptitle(title, fontsize=8)
    return fig


def draw_overview(grids: Sequence[tuple[str, Sequence[torch.Tensor]]], num_rows: int = NUM_ROWS,
                  num_cols: int = NUM_COLS, scale: float = SCALE):
    """Figure: every grid of ``(title, copies)`` stacked top to bottom, each under its title."""
    fig = plt.figure(figsize=(num_cols * scale, len(grids) * (num_rows * scale + 0.4)))
    for sub, (title, copies) in zip(np.atleast_1d(fig.subfigures(len(grids), 1)), grids):
        axes = sub.subplots(num_rows, num_cols)
        _draw_images(axes.flatten(), copies)
        sub.suptitle(title, fontsize=8)
    return fig
