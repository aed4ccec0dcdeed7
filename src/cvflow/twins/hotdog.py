"""The hot dog twin (book 13.2): ``{train,test}/{hotdog,not-hotdog}/*.jpg``, drawn offline.

JPEGs of varied sizes and aspect ratios from :func:`cvflow.twins.food.render_food`:
hot dogs against the other foods (hard negatives included).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cvflow.console import progress
from cvflow.data.readers.hotdog import CLASSES
from cvflow.twins.food import FOOD_CLASSES, render_food

__all__ = ["generate_hotdog"]


def generate_hotdog(root: Path, cfg) -> None:
    """Write the demo twin into ``root`` (``cfg``: :class:`cvflow.params.HotdogDemo`)."""
    others = [k for k in FOOD_CLASSES if k != "hotdog"]
    rng = np.random.default_rng(cfg.seed)
    jobs = []
    for split, per_class in (("train", cfg.train_per_class), ("test", cfg.test_per_class)):
        for name in CLASSES:
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                jobs.append((split, name, i))
    with progress("generating the hot dog demo twin", total=len(jobs), unit="images") as bar:
        for split, name, i in jobs:
            kind = "hotdog" if name == "hotdog" else others[int(rng.integers(len(others)))]
            long_side = int(rng.integers(cfg.min_side, cfg.max_side + 1))
            short_side = int(rng.integers(cfg.min_side, long_side + 1))
            size = (long_side, short_side) if rng.random() < 0.5 else (short_side, long_side)
            image = render_food(kind, rng, size)
            image.save(root / split / name / f"{i:05d}.jpg", quality=int(rng.integers(75, 96)))
            bar.advance()
