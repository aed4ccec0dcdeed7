"""Image augmentation (13.1): the book's augmentations of cat1.jpg, drawn by :mod:`.draw`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cvflow.pipelines.task import Section, Stage, Task


def figures(params: Any, root: Path) -> dict[str, Path]:
    """The stage's function: :func:`.draw.figures`, imported when it runs (it imports torch; the declaration, read
    by every command, stays cheap)."""
    from cvflow.pipelines.augmentation_figures.draw import figures as draw

    return draw(params, root)

TASK: Task[None] = Task(
    name="augmentation", title="13.1 image augmentation (figures)",
    stages=(Stage("figures", figures, "Image augmentation (13.1): 8 augmented copies of data/photos/cat1.jpg per "
                  "augmenter, data/reports/augmentation/.", deps=("data/photos",),
                  outs=("data/reports/augmentation",), echo_paths=True),),
    report=(Section("13.1", "Image augmentation", "The book's augmentations of cat1.jpg, eight random draws each: "
                    "flips, random resized crops, brightness, hue, colour, and all combined.",
                    pictures=("data/reports/augmentation/overview.png",), continues="cifar10"),),
)
