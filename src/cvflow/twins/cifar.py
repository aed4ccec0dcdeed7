"""Offline demo twins of CIFAR-10, in the real on-disk formats (book 13.1 and 13.13).

* :func:`generate_cifar10_torchvision`: ``ROOT/cifar-10-batches-py/`` as in
  ``cifar-10-python.tar.gz``: ``data_batch_1`` .. ``data_batch_5``, ``test_batch``,
  ``batches.meta``, ``readme.html``. Each batch is a plain protocol-2 pickle of a dict with
  ``str`` keys (``data``: uint8 array (N, 3072), 1024 red, 1024 green, 1024 blue values per
  image, rows top to bottom; ``labels``: list of ints; ``filenames``, ``batch_label``),
  which ``torchvision.datasets.CIFAR10`` reads (it unpickles with ``encoding="latin1"``).
  The twin's md5 sums go to its marker; read it with
  :func:`cvflow.data.readers.cifar.cifar10_dataset`.
* :func:`generate_kaggle_cifar10`: the Kaggle ``cifar-10`` competition after unpacking:
  ``train/<id>.png``, ``test/<id>.png`` (32x32 RGB PNG, ids 1..N), ``trainLabels.csv``
  (``id,label``) and ``sampleSubmission.csv`` (``id,label``, label ``cat``).

**Images.** Procedural, class-dependent pictures: each class is a drawn object (airplane,
car, bird, cat, deer, dog, frog, horse, ship, truck) with its own shape and colour
distribution, on a class-typical but not class-unique background (sky, water, road,
grass, forest, indoors, mud or random), with random position, scale, facing, small
rotation, colour jitter, lighting and sensor noise; similar classes (cat/dog, deer/horse,
automobile/truck) share colours and scenes, so a classifier has to learn the shapes.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from cvflow.console import progress
from cvflow.data.readers.cifar import CIFAR10_CLASSES, CIFAR10_FOLDER, TRAIN_BATCHES
from cvflow.twins.output import (balanced_labels, building, check_counts, md5sum, write_csv,
                                      write_marker)
from cvflow.twins.raster import Pen, choose, draw_legs, finish, jitter, pick, scene, shade

__all__ = ["generate_cifar10_torchvision", "generate_kaggle_cifar10", "render_cifar"]


# ----------------------------------------------------------------------- CIFAR classes

_VEHICLE = [(200, 30, 30), (30, 60, 170), (235, 235, 235), (30, 30, 30), (170, 170, 175), (230, 200, 40),
            (40, 120, 60), (230, 120, 30), (120, 30, 110), (90, 140, 200)]
_FUR = [(120, 80, 40), (200, 160, 110), (60, 50, 40), (150, 150, 150), (230, 225, 215), (210, 130, 50),
        (30, 28, 28), (170, 110, 60)]


def _draw_airplane(p: Pen, rng: np.random.Generator) -> None:
    body = jitter(pick(rng, [(225, 225, 230), (190, 190, 200), (150, 155, 165), (235, 235, 235),
                               (200, 60, 50), (40, 70, 150)]), rng)
    wing = shade(body, rng.uniform(0.75, 0.95))
    sweep = rng.uniform(0.0, 0.35)
    span = rng.uniform(0.75, 1.0)
    for side in (-1, 1):  # main wings, then the tail plane
        p.poly([(0.2, 0.0), (-0.2, 0.0), (-0.2 - sweep, side * span), (0.05 - sweep, side * span)], wing)
        p.poly([(-0.7, 0.0), (-0.9, 0.0), (-1.0, side * 0.35), (-0.88, side * 0.35)], wing)
    p.ellipse(0.0, 0.0, 1.05, rng.uniform(0.11, 0.17), body)
    p.ellipse(0.8, -0.02, 0.12, 0.06, shade(body, 0.5))  # cockpit
    for side in (-1, 1):
        if rng.random() < 0.7:
            p.ellipse(-0.05 - sweep / 2, side * span * 0.45, 0.15, 0.06, shade(body, 0.6))  # engines


def _draw_car(p: Pen, rng: np.random.Generator) -> None:
    col = jitter(pick(rng, _VEHICLE), rng)
    glass = jitter((140, 170, 200), rng)
    low = rng.uniform(0.3, 0.4)
    p.rect(-1.0, -0.05, 1.0, low, col, radius=0.15)
    roof = rng.uniform(0.38, 0.5)
    p.poly([(-0.55, -0.04), (0.55, -0.04), (0.3, -roof), (-0.4, -roof)], col)
    p.poly([(-0.45, -0.06), (0.45, -0.06), (0.26, -roof + 0.07), (-0.34, -roof + 0.07)], glass)
    p.rect(-0.04, -roof + 0.05, 0.04, -0.04, col)
    for wx in (-0.6, 0.6):
        p.ellipse(wx, low, 0.22, 0.22, (25, 25, 25))
        p.ellipse(wx, low, 0.1, 0.1, (170, 170, 170))
    p.ellipse(0.93, 0.08, 0.07, 0.05, (250, 240, 190))  # head light


def _draw_truck(p: Pen, rng: np.random.Generator) -> None:
    cargo = jitter(pick(rng, _VEHICLE), rng)
    cab = jitter(pick(rng, _VEHICLE), rng) if rng.random() < 0.5 else cargo
    top = -rng.uniform(0.55, 0.8)
    p.rect(-1.0, top, 0.35, 0.3, cargo, radius=0.03)
    p.rect(0.4, -0.4, 1.0, 0.3, cab, radius=0.06)
    p.rect(0.6, -0.33, 0.93, -0.08, jitter((140, 170, 200), rng))
    p.rect(-1.0, 0.25, 1.0, 0.35, (40, 40, 40))
    for wx in (-0.75, -0.4, 0.72):
        p.ellipse(wx, 0.38, 0.19, 0.19, (25, 25, 25))
        p.ellipse(wx, 0.38, 0.08, 0.08, (160, 160, 160))


def _draw_ship(p: Pen, rng: np.random.Generator) -> None:
    hull = jitter(pick(rng, [(40, 40, 45), (150, 30, 30), (235, 235, 235), (30, 50, 100), (90, 90, 95)]), rng)
    deck = jitter(pick(rng, [(240, 240, 240), (200, 200, 200), (220, 200, 150)]), rng)
    p.poly([(-1.0, -0.05), (1.05, -0.12), (0.8, 0.3), (-0.85, 0.3)], hull)
    x0 = rng.uniform(-0.7, -0.2)
    p.rect(x0, -0.45, x0 + rng.uniform(0.5, 0.9), -0.05, deck)
    p.rect(x0 + 0.1, -0.7, x0 + 0.45, -0.44, deck)
    for k in range(int(rng.integers(0, 3))):
        p.rect(x0 + 0.1 + 0.15 * k, -0.4, x0 + 0.18 + 0.15 * k, -0.3, (60, 70, 90))
    if rng.random() < 0.6:
        p.line([(x0 + 0.3, -0.7), (x0 + 0.3, -1.0)], (60, 60, 60), 0.04)
        p.rect(x0 + 0.55, -0.85, x0 + 0.68, -0.45, jitter((180, 40, 40), rng))  # funnel


def _draw_bird(p: Pen, rng: np.random.Generator) -> None:
    col = jitter(pick(rng, [(120, 85, 50), (40, 80, 170), (190, 40, 40), (220, 190, 50), (35, 35, 35),
                              (150, 150, 140), (240, 240, 235)]), rng)
    belly = shade(col, rng.uniform(1.2, 1.6))
    p.poly([(-0.45, 0.0), (-1.0, -0.15 + rng.uniform(-0.15, 0.25)), (-0.95, 0.2)], shade(col, 0.7))  # tail
    p.ellipse(0.0, 0.05, 0.55, 0.32, col, angle=rng.uniform(-0.35, 0.1))
    p.ellipse(0.05, 0.15, 0.38, 0.17, belly)
    p.ellipse(0.48, -0.25, 0.22, 0.21, col)
    p.poly([(0.66, -0.3), (0.95, -0.22), (0.66, -0.16)], jitter((230, 160, 40), rng))
    p.ellipse(0.54, -0.3, 0.05, 0.05, (10, 10, 10))
    flap = rng.uniform(-0.7, 0.3)
    p.poly([(0.15, -0.05), (-0.35, -0.05), (-0.2, flap - 0.25)], shade(col, 0.6))
    for lx in (-0.05, 0.1):
        p.line([(lx, 0.33), (lx + 0.02, 0.6)], (120, 90, 40), 0.04)


def _draw_cat(p: Pen, rng: np.random.Generator) -> None:
    fur = jitter(pick(rng, _FUR), rng)
    p.ellipse(0.0, 0.75, 0.6, 0.45, fur)  # body
    for side in (-1, 1):  # pointed ears
        p.poly([(side * 0.52, -0.2), (side * rng.uniform(0.42, 0.55), -0.95), (side * 0.08, -0.45)], fur)
        p.poly([(side * 0.45, -0.28), (side * 0.45, -0.78), (side * 0.18, -0.45)], jitter((220, 150, 150), rng))
    p.ellipse(0.0, 0.0, 0.58, 0.5, fur)
    if rng.random() < 0.5:  # tabby stripes
        dark = shade(fur, 0.6)
        for k in (-0.2, 0.0, 0.2):
            p.line([(k, -0.48), (k * 1.3, -0.2)], dark, 0.06)
    eye = jitter(pick(rng, [(120, 190, 60), (220, 190, 40), (80, 150, 200)]), rng)
    for side in (-1, 1):
        p.ellipse(side * 0.22, -0.05, 0.12, 0.1, eye)
        p.ellipse(side * 0.22, -0.05, 0.03, 0.09, (10, 10, 10))
    p.poly([(-0.07, 0.15), (0.07, 0.15), (0.0, 0.24)], (230, 130, 140))
    for side in (-1, 1):
        for dy in (0.18, 0.26):
            p.line([(side * 0.12, dy), (side * 0.62, dy + rng.uniform(-0.1, 0.05))], (235, 235, 235), 0.02)


def _draw_dog(p: Pen, rng: np.random.Generator) -> None:
    fur = jitter(pick(rng, _FUR), rng)
    ear = shade(fur, rng.uniform(0.45, 0.8)) if rng.random() < 0.7 else fur
    p.ellipse(0.0, 0.8, 0.62, 0.45, fur)
    p.ellipse(0.0, -0.02, 0.5, 0.55, fur)
    droop = rng.uniform(0.2, 0.55)
    for side in (-1, 1):  # floppy ears hanging down the sides
        p.ellipse(side * 0.5, droop - 0.2, 0.17, 0.42, ear, angle=side * rng.uniform(0.05, 0.35))
    muzzle = shade(fur, rng.uniform(1.1, 1.5))
    p.ellipse(0.0, 0.3, 0.3, 0.22, muzzle)
    p.ellipse(0.0, 0.2, 0.11, 0.08, (20, 15, 15))
    for side in (-1, 1):
        p.ellipse(side * 0.2, -0.12, 0.07, 0.07, (25, 20, 15))
    if rng.random() < 0.35:
        p.ellipse(0.0, 0.48, 0.08, 0.1, (220, 90, 110))  # tongue


def _draw_deer(p: Pen, rng: np.random.Generator) -> None:
    fur = jitter(pick(rng, [(160, 110, 60), (140, 95, 55), (180, 130, 80), (120, 85, 50)]), rng)
    draw_legs(p, (-0.45, -0.32, 0.3, 0.42), 0.1, 0.9, 0.07, shade(fur, 0.85))
    p.ellipse(0.0, 0.0, 0.6, 0.27, fur)
    p.poly([(0.35, -0.15), (0.55, 0.05), (0.72, -0.5), (0.58, -0.6)], fur)  # slim neck
    p.ellipse(0.74, -0.6, 0.19, 0.11, fur, angle=0.4)
    p.ellipse(0.66, -0.74, 0.05, 0.1, fur)  # ear
    p.ellipse(-0.6, -0.05, 0.07, 0.09, (240, 235, 225))  # white tail
    if rng.random() < 0.6:  # antlers
        antler = (200, 180, 140)
        p.line([(0.68, -0.7), (0.6, -1.0), (0.45, -1.15)], antler, 0.035)
        p.line([(0.62, -0.92), (0.78, -1.1)], antler, 0.03)
    if rng.random() < 0.4:  # fawn spots
        for _ in range(6):
            p.ellipse(rng.uniform(-0.4, 0.3), rng.uniform(-0.15, 0.05), 0.04, 0.04, (235, 225, 205))


def _draw_horse(p: Pen, rng: np.random.Generator) -> None:
    fur = jitter(pick(rng, [(110, 60, 30), (60, 40, 30), (25, 20, 20), (220, 215, 205), (160, 100, 50),
                              (130, 120, 110)]), rng)
    mane = shade(fur, 0.45) if rng.random() < 0.8 else (235, 230, 220)
    draw_legs(p, (-0.55, -0.4, 0.38, 0.52), 0.1, 0.95, 0.13, fur)
    p.line([(-0.7, -0.1), (-0.9, 0.25), (-0.85, 0.5)], mane, 0.08)  # tail
    p.ellipse(0.0, 0.0, 0.72, 0.32, fur)
    p.poly([(0.35, -0.2), (0.65, 0.1), (0.9, -0.55), (0.65, -0.75)], fur)  # thick neck
    p.ellipse(0.92, -0.6, 0.3, 0.13, fur, angle=0.9)
    p.line([(0.62, -0.75), (0.42, -0.2)], mane, 0.07)
    if rng.random() < 0.3:
        p.ellipse(0.98, -0.6, 0.05, 0.12, (240, 240, 240), angle=0.9)  # blaze


def _draw_frog(p: Pen, rng: np.random.Generator) -> None:
    skin = jitter(pick(rng, [(70, 140, 50), (100, 120, 50), (120, 100, 60), (60, 110, 70), (150, 160, 60)]),
                   rng, hue=0.05)
    for side in (-1, 1):  # bent back legs
        p.ellipse(side * 0.62, 0.35, 0.32, 0.16, shade(skin, 0.85), angle=side * 0.5)
        p.ellipse(side * 0.8, 0.5, 0.22, 0.07, shade(skin, 0.85))
    p.ellipse(0.0, 0.1, 0.7, 0.4, skin)
    p.ellipse(0.0, 0.22, 0.45, 0.2, shade(skin, 1.35))  # pale throat/belly
    for side in (-1, 1):
        p.ellipse(side * 0.36, -0.27, 0.17, 0.16, skin)
        p.ellipse(side * 0.36, -0.28, 0.1, 0.1, jitter((200, 160, 40), rng))
        p.ellipse(side * 0.36, -0.28, 0.05, 0.06, (10, 10, 10))
    for _ in range(int(rng.integers(0, 7))):
        p.ellipse(rng.uniform(-0.5, 0.5), rng.uniform(-0.1, 0.2), 0.06, 0.05, shade(skin, 0.55))


_CIFAR_DRAW: dict[str, Callable[[Pen, np.random.Generator], None]] = {
    "airplane": _draw_airplane, "automobile": _draw_car, "bird": _draw_bird, "cat": _draw_cat,
    "deer": _draw_deer, "dog": _draw_dog, "frog": _draw_frog, "horse": _draw_horse, "ship": _draw_ship,
    "truck": _draw_truck,
}

# Scene probabilities per class: typical, never unique (every class has "random").
_CIFAR_SCENES: dict[str, dict[str, float]] = {
    "airplane": {"sky": 0.7, "grass": 0.1, "road": 0.05, "random": 0.15},
    "automobile": {"road": 0.55, "grass": 0.1, "indoor": 0.05, "random": 0.3},
    "bird": {"sky": 0.3, "forest": 0.25, "grass": 0.2, "water": 0.05, "random": 0.2},
    "cat": {"indoor": 0.45, "grass": 0.2, "random": 0.35},
    "deer": {"forest": 0.45, "grass": 0.35, "snow": 0.05, "random": 0.15},
    "dog": {"indoor": 0.35, "grass": 0.35, "snow": 0.05, "random": 0.25},
    "frog": {"mud": 0.35, "grass": 0.3, "forest": 0.15, "random": 0.2},
    "horse": {"grass": 0.55, "forest": 0.1, "sand": 0.05, "random": 0.3},
    "ship": {"water": 0.8, "sky": 0.05, "random": 0.15},
    "truck": {"road": 0.55, "grass": 0.1, "sand": 0.05, "random": 0.3},
}
# Side-view objects stand on the ground; faces and airplanes float anywhere.
_STANDING = {"automobile", "truck", "deer", "horse", "ship"}


def render_cifar(label: str, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """One ``size`` x ``size`` RGB picture (uint8 HWC) of CIFAR-10 class ``label``."""
    if label not in _CIFAR_DRAW:
        raise ValueError(f"unknown CIFAR-10 class {label!r}; known: {', '.join(CIFAR10_CLASSES)}")
    big = 2 * size  # drawn at twice the size, then downscaled (anti-aliasing)
    canvas, horizon = scene(choose(rng, _CIFAR_SCENES[label]), rng, big, big)
    layer = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    scale = big * rng.uniform(0.26, 0.42)
    cx = big * rng.uniform(0.35, 0.65)
    if label in _STANDING and horizon < 1.0:
        cy = big * min(max(horizon + rng.uniform(0.0, 0.25), 0.45), 0.62)
    else:
        cy = big * rng.uniform(0.35, 0.65)
    facing = 1 if rng.random() < 0.5 else -1
    _CIFAR_DRAW[label](Pen(ImageDraw.Draw(layer), cx, cy, scale, facing), rng)
    if rng.random() < 0.6:
        layer = layer.rotate(float(rng.normal(0.0, 12.0)), resample=Image.BILINEAR, center=(cx, cy))
    return finish(canvas, layer, rng, (size, size), noise=(2.0, 9.0), blur=0.25)


def _cifar_row(image: np.ndarray) -> np.ndarray:
    """A 32x32 RGB image (HWC) as one CIFAR row: 1024 red, then 1024 green, then 1024 blue
    values, each plane row-major (the layout the CIFAR page documents)."""
    return image.transpose(2, 0, 1).reshape(3072)


def generate_cifar10_torchvision(root: str | os.PathLike, n_train: int = 5000, n_test: int = 1000,
                                 seed: int = 0) -> Path:
    """Write a CIFAR-10 twin to ``root/cifar-10-batches-py`` (replaced atomically); return that folder.

    The ``n_train`` images are spread over the five training batches, the ``n_test`` ones go
    to ``test_batch``; labels are balanced over the ten classes. Load it with
    :func:`cvflow.data.readers.cifar.cifar10_dataset`.
    """
    check_counts(n_train=n_train, n_test=n_test)
    rng = np.random.default_rng(seed)
    folder = Path(root) / CIFAR10_FOLDER
    train_labels = balanced_labels(n_train, 10, rng)
    test_labels = balanced_labels(n_test, 10, rng)
    batches = [(name, part) for name, part in zip(TRAIN_BATCHES, np.array_split(np.arange(n_train), 5))]
    with building(folder) as tmp, progress("generating the CIFAR-10 twin", total=n_train + n_test,
                                            unit="images") as bar:
        def write_batch(name: str, label_text: str, labels: np.ndarray) -> None:
            data = np.empty((len(labels), 3072), dtype=np.uint8)
            filenames = []
            for i, label in enumerate(labels):
                image = render_cifar(CIFAR10_CLASSES[int(label)], rng)
                data[i] = _cifar_row(image)
                filenames.append(f"{CIFAR10_CLASSES[int(label)]}_s_{int(rng.integers(1, 10**6)):06d}.png")
                bar.advance()
            entry = {"batch_label": label_text, "labels": [int(v) for v in labels], "data": data,
                     "filenames": filenames}
            (tmp / name).write_bytes(pickle.dumps(entry, protocol=2))

        for k, (name, index) in enumerate(batches, start=1):
            write_batch(name, f"training batch {k} of 5", train_labels[index])
        write_batch("test_batch", "testing batch 1 of 1", test_labels)
        per_batch = max((len(index) for _, index in batches), default=0)
        meta = {"num_cases_per_batch": int(per_batch), "label_names": list(CIFAR10_CLASSES), "num_vis": 3072}
        (tmp / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
        (tmp / "readme.html").write_text(
            '<meta HTTP-EQUIV="REFRESH" content="0; url=http://www.cs.toronto.edu/~kriz/cifar.html">\n',
            encoding="ascii")
        md5 = {name: md5sum(tmp / name) for name in (*TRAIN_BATCHES, "test_batch", "batches.meta")}
        write_marker(tmp, "generate_cifar10_torchvision", seed=seed, n_train=n_train, n_test=n_test, md5=md5)
    return folder


def generate_kaggle_cifar10(root: str | os.PathLike, n_train: int = 5000, n_test: int = 1000,
                            seed: int = 0) -> Path:
    """Write the Kaggle ``cifar-10`` twin into ``root`` (replaced atomically); return ``root``.

    ``train/1.png .. train/N.png`` with ``trainLabels.csv`` (``id,label``, ids 1..N in
    order, classes balanced), ``test/1.png .. test/M.png`` and ``sampleSubmission.csv``
    (``id,label``, every label ``cat``, like Kaggle's).
    """
    check_counts(n_train=n_train, n_test=n_test)
    rng = np.random.default_rng(seed)
    root = Path(root)
    train_labels = balanced_labels(n_train, 10, rng)
    with building(root) as tmp, progress("generating the Kaggle CIFAR-10 twin", total=n_train + n_test,
                                          unit="images") as bar:
        for split, n in (("train", n_train), ("test", n_test)):
            (tmp / split).mkdir()
            labels = train_labels if split == "train" else rng.integers(0, 10, n)
            for i in range(n):
                image = render_cifar(CIFAR10_CLASSES[int(labels[i])], rng)
                Image.fromarray(image).save(tmp / split / f"{i + 1}.png", format="PNG")
                bar.advance()
        write_csv(tmp / "trainLabels.csv", ("id", "label"),
                   [(i + 1, CIFAR10_CLASSES[int(c)]) for i, c in enumerate(train_labels)])
        write_csv(tmp / "sampleSubmission.csv", ("id", "label"), [(i + 1, "cat") for i in range(n_test)])
        write_marker(tmp, "generate_kaggle_cifar10", seed=seed, n_train=n_train, n_test=n_test)
    return root
