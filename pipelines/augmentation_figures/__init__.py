"""Image augmentation (13.1): the book's augmentations of cat1.jpg, drawn by :mod:`.draw`."""

from __future__ import annotations

from cvflow.pipelines.task import Section, Stage, Task

TASK: Task[None] = Task(
    name="augmentation", module=f"{__name__}.draw", title="13.1 image augmentation (figures)",
    stages=(Stage("figures", "figures", "Image augmentation (13.1): 8 augmented copies of data/photos/cat1.jpg per "
                  "augmenter, data/reports/augmentation/.", deps=("data/photos",),
                  outs=("data/reports/augmentation",), echo_paths=True),),
    report=(Section("13.1", "Image augmentation", "The book's augmentations of cat1.jpg, eight random draws each: "
                    "flips, random resized crops, brightness, hue, colour, and all combined.",
                    pictures=("data/reports/augmentation/overview.png",), continues="cifar10"),),
)
