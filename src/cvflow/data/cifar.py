"""Offline demo twins of the CIFAR-10 and dog-breed data sets, in their real on-disk formats.

Three generators, each deterministic given its seed, none touching the network:

* :func:`generate_cifar10_torchvision`: ``ROOT/cifar-10-batches-py/`` exactly as in
  ``cifar-10-python.tar.gz`` (book 13.1 reads it with ``torchvision.datasets.CIFAR10``):
  ``data_batch_1`` .. ``data_batch_5``, ``test_batch``, ``batches.meta``, ``readme.html``.
  Each batch is a protocol-2 pickle of a dict written the way Python 2's cPickle wrote the
  originals: the keys and strings are Python 2 ``str`` objects, so
  ``pickle.load(f, encoding="bytes")`` gives ``b'data'``, ``b'labels'``, ``b'filenames'``,
  ``b'batch_label'`` (as on the CIFAR page) and ``encoding="latin1"`` gives ``'data'`` ...
  (as torchvision reads them). ``data`` is a uint8 array of shape (N, 3072) (1024 red,
  1024 green, 1024 blue values per image, rows top to bottom), ``labels`` a list of ints.
* :func:`generate_kaggle_cifar10`: the Kaggle ``cifar-10`` competition after unpacking
  (book 13.13): ``train/<id>.png``, ``test/<id>.png`` (32x32 RGB PNG, ids 1..N),
  ``trainLabels.csv`` (``id,label``) and ``sampleSubmission.csv`` (``id,label``, label ``cat``).
* :func:`generate_kaggle_dogs`: the Kaggle ``dog-breed-identification`` competition after
  unpacking (book 13.14): ``train/<id>.jpg``, ``test/<id>.jpg`` (32-digit hex ids, JPEGs of
  varied sizes), ``labels.csv`` (``id,breed``) and ``sample_submission.csv`` (``id`` and
  one column per breed, alphabetical, uniform probabilities).

**The md5 check of torchvision's CIFAR10.** ``torchvision.datasets.CIFAR10`` refuses any
folder whose batch files do not have the md5 sums of the official archive, and a generated
twin cannot have them. :class:`CIFAR10Twin` (a subclass) therefore replaces the expected md5
sums with those the generator recorded in ``cifar-10-batches-py/.cvflow-demo.json``;
torchvision's own code then still verifies every file (a damaged twin is refused) and
loads it. :func:`cifar10_dataset` picks the class: the twin's marker present means the twin,
anything else goes to ``torchvision.datasets.CIFAR10`` itself, so the real data set is
always downloaded from torchvision's URL and checked against torchvision's md5 sums.

**The marker.** Every twin holds one hidden file the real data lacks, ``.cvflow-demo.json``
(generator, seed, sizes; md5 sums for the torchvision twin), like the ``.cvflow-extracted``
marker of unpacked archives. Nothing but cvflow reads it (the reorganisation skips hidden
files); it also keeps a generator from ever replacing a folder of real data.

**Images.** Procedural, class-dependent pictures: each CIFAR class is a drawn object
(airplane, car, bird, cat, deer, dog, frog, horse, ship, truck) with its own shape and
colour distribution, on a class-typical but not class-unique background (sky, water,
road, grass, forest, indoors, mud or random), with random position, scale, facing, small
rotation, colour jitter, lighting and sensor noise; similar classes (cat/dog, deer/horse,
automobile/truck) share colours and scenes, so a classifier has to learn the shapes. Every
dog breed gets a fixed "genotype" drawn from a hash of its name (coat colours and pattern,
ears, snout, legs, body, tail, fur texture), so the same breed looks alike under every
seed; each picture then varies pose, size, scene, lighting and noise.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import math
import os
import pickle
import shutil
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from torchvision.datasets import CIFAR10 as _TorchvisionCIFAR10

from cvflow.console import progress
from cvflow.errors import DataError

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10Twin",
    "DEMO_MARKER",
    "DOG_BREEDS",
    "cifar10_dataset",
    "generate_cifar10_torchvision",
    "generate_kaggle_cifar10",
    "generate_kaggle_dogs",
    "render_cifar",
    "render_dog",
]

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)

# The 120 breeds of Kaggle's dog-breed-identification, in the column order of its
# sample_submission.csv (alphabetical; the names of the Stanford Dogs / ImageNet synsets).
DOG_BREEDS: tuple[str, ...] = (
    "affenpinscher", "afghan_hound", "african_hunting_dog", "airedale",
    "american_staffordshire_terrier", "appenzeller", "australian_terrier", "basenji", "basset",
    "beagle", "bedlington_terrier", "bernese_mountain_dog", "black-and-tan_coonhound",
    "blenheim_spaniel", "bloodhound", "bluetick", "border_collie", "border_terrier", "borzoi",
    "boston_bull", "bouvier_des_flandres", "boxer", "brabancon_griffon", "briard",
    "brittany_spaniel", "bull_mastiff", "cairn", "cardigan", "chesapeake_bay_retriever",
    "chihuahua", "chow", "clumber", "cocker_spaniel", "collie", "curly-coated_retriever",
    "dandie_dinmont", "dhole", "dingo", "doberman", "english_foxhound", "english_setter",
    "english_springer", "entlebucher", "eskimo_dog", "flat-coated_retriever", "french_bulldog",
    "german_shepherd", "german_short-haired_pointer", "giant_schnauzer", "golden_retriever",
    "gordon_setter", "great_dane", "great_pyrenees", "greater_swiss_mountain_dog", "groenendael",
    "ibizan_hound", "irish_setter", "irish_terrier", "irish_water_spaniel", "irish_wolfhound",
    "italian_greyhound", "japanese_spaniel", "keeshond", "kelpie", "kerry_blue_terrier",
    "komondor", "kuvasz", "labrador_retriever", "lakeland_terrier", "leonberg", "lhasa",
    "malamute", "malinois", "maltese_dog", "mexican_hairless", "miniature_pinscher",
    "miniature_poodle", "miniature_schnauzer", "newfoundland", "norfolk_terrier",
    "norwegian_elkhound", "norwich_terrier", "old_english_sheepdog", "otterhound", "papillon",
    "pekinese", "pembroke", "pomeranian", "pug", "redbone", "rhodesian_ridgeback", "rottweiler",
    "saint_bernard", "saluki", "samoyed", "schipperke", "scotch_terrier", "scottish_deerhound",
    "sealyham_terrier", "shetland_sheepdog", "shih-tzu", "siberian_husky", "silky_terrier",
    "soft-coated_wheaten_terrier", "staffordshire_bullterrier", "standard_poodle",
    "standard_schnauzer", "sussex_spaniel", "tibetan_mastiff", "tibetan_terrier", "toy_poodle",
    "toy_terrier", "vizsla", "walker_hound", "weimaraner", "welsh_springer_spaniel",
    "west_highland_white_terrier", "whippet", "wire-haired_fox_terrier", "yorkshire_terrier",
)

DEMO_MARKER = ".cvflow-demo.json"
CIFAR10_FOLDER = "cifar-10-batches-py"
_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))

RGB = tuple[int, int, int]


# =============================================================================== drawing


def _clip8(value: float) -> int:
    return int(min(max(value, 0.0), 255.0))


def _jitter(rgb: Sequence[float], rng: np.random.Generator, hue: float = 0.03, sat: float = 0.15,
            val: float = 0.15) -> RGB:
    """``rgb`` with a random hue / saturation / value shift."""
    h, s, v = colorsys.rgb_to_hsv(rgb[0] / 255.0, rgb[1] / 255.0, rgb[2] / 255.0)
    h = (h + rng.normal(0.0, hue)) % 1.0
    s = min(max(s * (1.0 + rng.normal(0.0, sat)), 0.0), 1.0)
    v = min(max(v * (1.0 + rng.normal(0.0, val)), 0.0), 1.0)
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return (_clip8(r * 255), _clip8(g * 255), _clip8(b * 255))


def _shade(rgb: Sequence[float], factor: float) -> RGB:
    """Darker (factor < 1) or lighter (factor > 1, towards white) version of ``rgb``."""
    if factor <= 1.0:
        return (_clip8(rgb[0] * factor), _clip8(rgb[1] * factor), _clip8(rgb[2] * factor))
    t = min(factor - 1.0, 1.0)
    return tuple(_clip8(c + (255 - c) * t) for c in rgb)  # type: ignore[return-value]


def _pick(rng: np.random.Generator, palette: Sequence[RGB]) -> RGB:
    return palette[int(rng.integers(len(palette)))]


class _Pen:
    """Draws in object coordinates: (0, 0) is the object's centre, 1 unit is ``scale`` pixels,
    and ``facing = -1`` mirrors x (the object looks left instead of right)."""

    def __init__(self, draw: ImageDraw.ImageDraw, cx: float, cy: float, scale: float, facing: int = 1):
        self.d, self.cx, self.cy, self.s, self.f = draw, cx, cy, scale, facing

    def xy(self, x: float, y: float) -> tuple[float, float]:
        return (self.cx + self.f * x * self.s, self.cy + y * self.s)

    def ellipse(self, x: float, y: float, rx: float, ry: float, fill: RGB, angle: float = 0.0) -> None:
        if angle == 0.0:
            (x0, y0), (x1, y1) = self.xy(x - rx, y - ry), self.xy(x + rx, y + ry)
            self.d.ellipse([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], fill=fill)
            return
        t = np.linspace(0.0, 2.0 * math.pi, 20, endpoint=False)
        ca, sa = math.cos(angle), math.sin(angle)
        px, py = rx * np.cos(t), ry * np.sin(t)
        self.poly(list(zip((x + px * ca - py * sa).tolist(), (y + px * sa + py * ca).tolist())), fill)

    def poly(self, points: Sequence[tuple[float, float]], fill: RGB) -> None:
        self.d.polygon([self.xy(x, y) for x, y in points], fill=fill)

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill: RGB, radius: float = 0.0) -> None:
        (a, b), (c, d) = self.xy(x0, y0), self.xy(x1, y1)
        box = [min(a, c), min(b, d), max(a, c), max(b, d)]
        if box[2] - box[0] < 1 or box[3] - box[1] < 1:
            return
        if radius > 0:
            r = min(radius * self.s, (box[2] - box[0]) / 2, (box[3] - box[1]) / 2)
            self.d.rounded_rectangle(box, radius=max(r, 0.0), fill=fill)
        else:
            self.d.rectangle(box, fill=fill)

    def line(self, points: Sequence[tuple[float, float]], fill: RGB, width: float) -> None:
        self.d.line([self.xy(x, y) for x, y in points], fill=fill, width=max(1, int(round(width * self.s))),
                    joint="curve")


# ------------------------------------------------------------------------- backgrounds


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return y / max(h - 1, 1), x / max(w - 1, 1)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Value noise in [0, 1]: a coarse random grid, bilinearly upsampled."""
    coarse = Image.fromarray((rng.random((cells, cells)) * 255).astype(np.uint8))
    return np.asarray(coarse.resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0


def _vgrad(h: int, w: int, top: Sequence[float], bottom: Sequence[float]) -> np.ndarray:
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    return (np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t) * np.ones((1, w, 1), np.float32)


def _textured(rng: np.random.Generator, h: int, w: int, base: Sequence[float], amount: float, cells: int) -> np.ndarray:
    n = _smooth_noise(rng, h, w, cells)[..., None] - 0.5
    return np.asarray(base, np.float32)[None, None, :] * (1.0 + amount * n) * np.ones((h, w, 1), np.float32)


def _scene(kind: str, rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, float]:
    """A background (float HxWx3 in 0..255) and the height (0..1) of its ground line."""
    if kind == "sky":
        top = _jitter((90, 150, 225), rng, sat=0.2)
        img = _vgrad(h, w, top, _shade(top, 1.5))
        clouds = np.clip(_smooth_noise(rng, h, w, 4) * 2.2 - 1.3, 0, 1)[..., None] * rng.uniform(0.3, 0.9)
        return img * (1 - clouds) + 245 * clouds, 1.1
    if kind == "water":
        horizon = rng.uniform(0.3, 0.6)
        sky = _vgrad(h, w, _jitter((120, 170, 230), rng), (210, 225, 240))
        sea_col = _jitter((30, 80, 130), rng, hue=0.05)
        y, x = _grid(h, w)
        waves = 0.12 * np.sin(y * rng.uniform(40, 90) + _smooth_noise(rng, h, w, 3) * 6)[..., None]
        sea = np.asarray(sea_col, np.float32) * (1 + waves)
        return np.where((y < horizon)[..., None], sky, sea), horizon
    if kind == "road":
        horizon = rng.uniform(0.35, 0.6)
        upper = _textured(rng, h, w, _jitter(_pick(rng, [(150, 150, 150), (120, 140, 170), (170, 160, 140)]), rng),
                          0.5, 6)
        road = _textured(rng, h, w, _jitter((85, 85, 90), rng, sat=0.05), 0.25, 12)
        y, x = _grid(h, w)
        img = np.where((y < horizon)[..., None], upper, road)
        if rng.random() < 0.5:  # a lane marking
            band = (np.abs(y - rng.uniform(horizon + 0.15, 0.95)) < 0.02) & (np.sin(x * 25) > 0)
            img[band] = (220, 210, 120)
        return img, horizon
    if kind in ("grass", "forest", "mud"):
        base = {"grass": (90, 150, 60), "forest": (40, 80, 40), "mud": (110, 90, 60)}[kind]
        ground = _textured(rng, h, w, _jitter(base, rng, hue=0.04), 0.7 if kind == "forest" else 0.45,
                           10 if kind == "forest" else 16)
        if kind == "grass" and rng.random() < 0.6:  # some sky above the field
            horizon = rng.uniform(0.15, 0.45)
            sky = _vgrad(h, w, _jitter((130, 180, 235), rng), (220, 230, 240))
            y, _ = _grid(h, w)
            return np.where((y < horizon)[..., None], sky, ground), horizon
        return ground, 0.0
    if kind == "indoor":
        horizon = rng.uniform(0.45, 0.75)
        wall = _textured(rng, h, w, _jitter(_pick(rng, [(220, 205, 180), (200, 210, 215), (230, 220, 200),
                                                         (190, 170, 150)]), rng), 0.15, 4)
        floor_col = _jitter(_pick(rng, [(150, 100, 60), (120, 80, 50), (170, 150, 130), (100, 100, 110)]), rng)
        y, x = _grid(h, w)
        floor = np.asarray(floor_col, np.float32) * (1 + 0.12 * np.sin(x * rng.uniform(20, 60)))[..., None]
        return np.where((y < horizon)[..., None], wall, floor), horizon
    if kind == "snow":
        return _textured(rng, h, w, _jitter((235, 238, 245), rng, sat=0.3, val=0.05), 0.12, 8), 0.0
    if kind == "sand":
        return _textured(rng, h, w, _jitter((215, 190, 140), rng), 0.2, 14), 0.0
    # "random": any colour, a gradient or some texture
    a = np.asarray(_jitter((rng.integers(0, 256), rng.integers(0, 256), rng.integers(0, 256)), rng), np.float32)
    b = np.asarray(_jitter((rng.integers(0, 256), rng.integers(0, 256), rng.integers(0, 256)), rng), np.float32)
    img = _vgrad(h, w, a, b) if rng.random() < 0.5 else _textured(rng, h, w, a, 0.6, int(rng.integers(3, 12)))
    return img, 0.0


def _finish(canvas: np.ndarray, layer: Image.Image, rng: np.random.Generator, size: tuple[int, int],
            noise: tuple[float, float], blur: float) -> np.ndarray:
    """Composite the object layer, downscale to ``size`` (w, h), light, blur and add noise."""
    base = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8)).convert("RGBA")
    base.alpha_composite(layer)
    image = base.convert("RGB").resize(size, Image.LANCZOS)
    if rng.random() < blur:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
    out = np.asarray(image, dtype=np.float32)
    h, w = out.shape[:2]
    y, x = _grid(h, w)
    light = 1.0 + rng.uniform(-0.25, 0.25) * (x - 0.5) + rng.uniform(-0.25, 0.25) * (y - 0.5)
    gain = rng.uniform(0.75, 1.2) * np.asarray(_jitter((255, 255, 255), rng, hue=0.0, sat=0.0, val=0.0), np.float32)
    cast = 1.0 + rng.normal(0.0, 0.05, 3).astype(np.float32)
    out = (out - 128) * rng.uniform(0.8, 1.15) + 128
    out = out * light[..., None] * cast * (gain / 255.0)
    out += rng.normal(0.0, rng.uniform(*noise), out.shape).astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------- CIFAR classes

_VEHICLE = [(200, 30, 30), (30, 60, 170), (235, 235, 235), (30, 30, 30), (170, 170, 175), (230, 200, 40),
            (40, 120, 60), (230, 120, 30), (120, 30, 110), (90, 140, 200)]
_FUR = [(120, 80, 40), (200, 160, 110), (60, 50, 40), (150, 150, 150), (230, 225, 215), (210, 130, 50),
        (30, 28, 28), (170, 110, 60)]


def _draw_airplane(p: _Pen, rng: np.random.Generator) -> None:
    body = _jitter(_pick(rng, [(225, 225, 230), (190, 190, 200), (150, 155, 165), (235, 235, 235),
                               (200, 60, 50), (40, 70, 150)]), rng)
    wing = _shade(body, rng.uniform(0.75, 0.95))
    sweep = rng.uniform(0.0, 0.35)
    span = rng.uniform(0.75, 1.0)
    for side in (-1, 1):  # main wings, then the tail plane
        p.poly([(0.2, 0.0), (-0.2, 0.0), (-0.2 - sweep, side * span), (0.05 - sweep, side * span)], wing)
        p.poly([(-0.7, 0.0), (-0.9, 0.0), (-1.0, side * 0.35), (-0.88, side * 0.35)], wing)
    p.ellipse(0.0, 0.0, 1.05, rng.uniform(0.11, 0.17), body)
    p.ellipse(0.8, -0.02, 0.12, 0.06, _shade(body, 0.5))  # cockpit
    for side in (-1, 1):
        if rng.random() < 0.7:
            p.ellipse(-0.05 - sweep / 2, side * span * 0.45, 0.15, 0.06, _shade(body, 0.6))  # engines


def _draw_car(p: _Pen, rng: np.random.Generator) -> None:
    col = _jitter(_pick(rng, _VEHICLE), rng)
    glass = _jitter((140, 170, 200), rng)
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


def _draw_truck(p: _Pen, rng: np.random.Generator) -> None:
    cargo = _jitter(_pick(rng, _VEHICLE), rng)
    cab = _jitter(_pick(rng, _VEHICLE), rng) if rng.random() < 0.5 else cargo
    top = -rng.uniform(0.55, 0.8)
    p.rect(-1.0, top, 0.35, 0.3, cargo, radius=0.03)
    p.rect(0.4, -0.4, 1.0, 0.3, cab, radius=0.06)
    p.rect(0.6, -0.33, 0.93, -0.08, _jitter((140, 170, 200), rng))
    p.rect(-1.0, 0.25, 1.0, 0.35, (40, 40, 40))
    for wx in (-0.75, -0.4, 0.72):
        p.ellipse(wx, 0.38, 0.19, 0.19, (25, 25, 25))
        p.ellipse(wx, 0.38, 0.08, 0.08, (160, 160, 160))


def _draw_ship(p: _Pen, rng: np.random.Generator) -> None:
    hull = _jitter(_pick(rng, [(40, 40, 45), (150, 30, 30), (235, 235, 235), (30, 50, 100), (90, 90, 95)]), rng)
    deck = _jitter(_pick(rng, [(240, 240, 240), (200, 200, 200), (220, 200, 150)]), rng)
    p.poly([(-1.0, -0.05), (1.05, -0.12), (0.8, 0.3), (-0.85, 0.3)], hull)
    x0 = rng.uniform(-0.7, -0.2)
    p.rect(x0, -0.45, x0 + rng.uniform(0.5, 0.9), -0.05, deck)
    p.rect(x0 + 0.1, -0.7, x0 + 0.45, -0.44, deck)
    for k in range(int(rng.integers(0, 3))):
        p.rect(x0 + 0.1 + 0.15 * k, -0.4, x0 + 0.18 + 0.15 * k, -0.3, (60, 70, 90))
    if rng.random() < 0.6:
        p.line([(x0 + 0.3, -0.7), (x0 + 0.3, -1.0)], (60, 60, 60), 0.04)
        p.rect(x0 + 0.55, -0.85, x0 + 0.68, -0.45, _jitter((180, 40, 40), rng))  # funnel


def _draw_bird(p: _Pen, rng: np.random.Generator) -> None:
    col = _jitter(_pick(rng, [(120, 85, 50), (40, 80, 170), (190, 40, 40), (220, 190, 50), (35, 35, 35),
                              (150, 150, 140), (240, 240, 235)]), rng)
    belly = _shade(col, rng.uniform(1.2, 1.6))
    p.poly([(-0.45, 0.0), (-1.0, -0.15 + rng.uniform(-0.15, 0.25)), (-0.95, 0.2)], _shade(col, 0.7))  # tail
    p.ellipse(0.0, 0.05, 0.55, 0.32, col, angle=rng.uniform(-0.35, 0.1))
    p.ellipse(0.05, 0.15, 0.38, 0.17, belly)
    p.ellipse(0.48, -0.25, 0.22, 0.21, col)
    p.poly([(0.66, -0.3), (0.95, -0.22), (0.66, -0.16)], _jitter((230, 160, 40), rng))
    p.ellipse(0.54, -0.3, 0.05, 0.05, (10, 10, 10))
    flap = rng.uniform(-0.7, 0.3)
    p.poly([(0.15, -0.05), (-0.35, -0.05), (-0.2, flap - 0.25)], _shade(col, 0.6))
    for lx in (-0.05, 0.1):
        p.line([(lx, 0.33), (lx + 0.02, 0.6)], (120, 90, 40), 0.04)


def _draw_cat(p: _Pen, rng: np.random.Generator) -> None:
    fur = _jitter(_pick(rng, _FUR), rng)
    p.ellipse(0.0, 0.75, 0.6, 0.45, fur)  # body
    for side in (-1, 1):  # pointed ears
        p.poly([(side * 0.52, -0.2), (side * rng.uniform(0.42, 0.55), -0.95), (side * 0.08, -0.45)], fur)
        p.poly([(side * 0.45, -0.28), (side * 0.45, -0.78), (side * 0.18, -0.45)], _jitter((220, 150, 150), rng))
    p.ellipse(0.0, 0.0, 0.58, 0.5, fur)
    if rng.random() < 0.5:  # tabby stripes
        dark = _shade(fur, 0.6)
        for k in (-0.2, 0.0, 0.2):
            p.line([(k, -0.48), (k * 1.3, -0.2)], dark, 0.06)
    eye = _jitter(_pick(rng, [(120, 190, 60), (220, 190, 40), (80, 150, 200)]), rng)
    for side in (-1, 1):
        p.ellipse(side * 0.22, -0.05, 0.12, 0.1, eye)
        p.ellipse(side * 0.22, -0.05, 0.03, 0.09, (10, 10, 10))
    p.poly([(-0.07, 0.15), (0.07, 0.15), (0.0, 0.24)], (230, 130, 140))
    for side in (-1, 1):
        for dy in (0.18, 0.26):
            p.line([(side * 0.12, dy), (side * 0.62, dy + rng.uniform(-0.1, 0.05))], (235, 235, 235), 0.02)


def _draw_dog(p: _Pen, rng: np.random.Generator) -> None:
    fur = _jitter(_pick(rng, _FUR), rng)
    ear = _shade(fur, rng.uniform(0.45, 0.8)) if rng.random() < 0.7 else fur
    p.ellipse(0.0, 0.8, 0.62, 0.45, fur)
    p.ellipse(0.0, -0.02, 0.5, 0.55, fur)
    droop = rng.uniform(0.2, 0.55)
    for side in (-1, 1):  # floppy ears hanging down the sides
        p.ellipse(side * 0.5, droop - 0.2, 0.17, 0.42, ear, angle=side * rng.uniform(0.05, 0.35))
    muzzle = _shade(fur, rng.uniform(1.1, 1.5))
    p.ellipse(0.0, 0.3, 0.3, 0.22, muzzle)
    p.ellipse(0.0, 0.2, 0.11, 0.08, (20, 15, 15))
    for side in (-1, 1):
        p.ellipse(side * 0.2, -0.12, 0.07, 0.07, (25, 20, 15))
    if rng.random() < 0.35:
        p.ellipse(0.0, 0.48, 0.08, 0.1, (220, 90, 110))  # tongue


def _legs(p: _Pen, xs: Sequence[float], y0: float, y1: float, width: float, fill: RGB) -> None:
    for x in xs:
        p.rect(x - width / 2, y0, x + width / 2, y1, fill)


def _draw_deer(p: _Pen, rng: np.random.Generator) -> None:
    fur = _jitter(_pick(rng, [(160, 110, 60), (140, 95, 55), (180, 130, 80), (120, 85, 50)]), rng)
    _legs(p, (-0.45, -0.32, 0.3, 0.42), 0.1, 0.9, 0.07, _shade(fur, 0.85))
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


def _draw_horse(p: _Pen, rng: np.random.Generator) -> None:
    fur = _jitter(_pick(rng, [(110, 60, 30), (60, 40, 30), (25, 20, 20), (220, 215, 205), (160, 100, 50),
                              (130, 120, 110)]), rng)
    mane = _shade(fur, 0.45) if rng.random() < 0.8 else (235, 230, 220)
    _legs(p, (-0.55, -0.4, 0.38, 0.52), 0.1, 0.95, 0.13, fur)
    p.line([(-0.7, -0.1), (-0.9, 0.25), (-0.85, 0.5)], mane, 0.08)  # tail
    p.ellipse(0.0, 0.0, 0.72, 0.32, fur)
    p.poly([(0.35, -0.2), (0.65, 0.1), (0.9, -0.55), (0.65, -0.75)], fur)  # thick neck
    p.ellipse(0.92, -0.6, 0.3, 0.13, fur, angle=0.9)
    p.line([(0.62, -0.75), (0.42, -0.2)], mane, 0.07)
    if rng.random() < 0.3:
        p.ellipse(0.98, -0.6, 0.05, 0.12, (240, 240, 240), angle=0.9)  # blaze


def _draw_frog(p: _Pen, rng: np.random.Generator) -> None:
    skin = _jitter(_pick(rng, [(70, 140, 50), (100, 120, 50), (120, 100, 60), (60, 110, 70), (150, 160, 60)]),
                   rng, hue=0.05)
    for side in (-1, 1):  # bent back legs
        p.ellipse(side * 0.62, 0.35, 0.32, 0.16, _shade(skin, 0.85), angle=side * 0.5)
        p.ellipse(side * 0.8, 0.5, 0.22, 0.07, _shade(skin, 0.85))
    p.ellipse(0.0, 0.1, 0.7, 0.4, skin)
    p.ellipse(0.0, 0.22, 0.45, 0.2, _shade(skin, 1.35))  # pale throat/belly
    for side in (-1, 1):
        p.ellipse(side * 0.36, -0.27, 0.17, 0.16, skin)
        p.ellipse(side * 0.36, -0.28, 0.1, 0.1, _jitter((200, 160, 40), rng))
        p.ellipse(side * 0.36, -0.28, 0.05, 0.06, (10, 10, 10))
    for _ in range(int(rng.integers(0, 7))):
        p.ellipse(rng.uniform(-0.5, 0.5), rng.uniform(-0.1, 0.2), 0.06, 0.05, _shade(skin, 0.55))


_CIFAR_DRAW: dict[str, Callable[[_Pen, np.random.Generator], None]] = {
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


def _choose(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    probs = np.asarray([weights[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=probs / probs.sum()))]


def render_cifar(label: str, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """One ``size`` x ``size`` RGB picture (uint8 HWC) of CIFAR-10 class ``label``."""
    if label not in _CIFAR_DRAW:
        raise ValueError(f"unknown CIFAR-10 class {label!r}; known: {', '.join(CIFAR10_CLASSES)}")
    big = 2 * size  # drawn at twice the size, then downscaled (anti-aliasing)
    canvas, horizon = _scene(_choose(rng, _CIFAR_SCENES[label]), rng, big, big)
    layer = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    scale = big * rng.uniform(0.26, 0.42)
    cx = big * rng.uniform(0.35, 0.65)
    if label in _STANDING and horizon < 1.0:
        cy = big * min(max(horizon + rng.uniform(0.0, 0.25), 0.45), 0.62)
    else:
        cy = big * rng.uniform(0.35, 0.65)
    facing = 1 if rng.random() < 0.5 else -1
    _CIFAR_DRAW[label](_Pen(ImageDraw.Draw(layer), cx, cy, scale, facing), rng)
    if rng.random() < 0.6:
        layer = layer.rotate(float(rng.normal(0.0, 12.0)), resample=Image.BILINEAR, center=(cx, cy))
    return _finish(canvas, layer, rng, (size, size), noise=(2.0, 9.0), blur=0.25)


# --------------------------------------------------------------------------- dog breeds


@dataclass(frozen=True)
class _Breed:
    """The fixed look of one breed (drawn from a hash of its name)."""

    coat: RGB
    second: RGB
    pattern: str  # solid, saddle, mask, spots, chest, tricolour
    ears: str  # erect, floppy, folded
    ear_size: float
    snout: float  # length of the muzzle
    head: float  # head size relative to the body
    body_len: float
    body_h: float
    legs: float
    tail: str  # up, down, curl, none
    fur: str  # smooth, curly, wiry, long
    eye: RGB


_COATS: list[RGB] = [(25, 22, 22), (245, 242, 235), (230, 215, 175), (200, 150, 90), (170, 90, 40),
                     (95, 60, 35), (130, 130, 135), (215, 170, 80), (150, 110, 75), (80, 80, 90),
                     (185, 120, 70), (120, 75, 60)]


def _breed(name: str) -> _Breed:
    rng = np.random.default_rng(zlib.crc32(name.encode("utf-8")))
    coat = _jitter(_pick(rng, _COATS), rng, hue=0.02, sat=0.1, val=0.08)
    second = _jitter(_pick(rng, _COATS), rng, hue=0.02, sat=0.1, val=0.08)
    return _Breed(
        coat=coat,
        second=second,
        pattern=str(rng.choice(["solid", "saddle", "mask", "spots", "chest", "tricolour"])),
        ears=str(rng.choice(["erect", "floppy", "folded"])),
        ear_size=float(rng.uniform(0.6, 1.4)),
        snout=float(rng.uniform(0.15, 0.65)),
        head=float(rng.uniform(0.75, 1.25)),
        body_len=float(rng.uniform(0.75, 1.15)),
        body_h=float(rng.uniform(0.25, 0.42)),
        legs=float(rng.uniform(0.25, 0.8)),
        tail=str(rng.choice(["up", "down", "curl", "none"], p=[0.35, 0.3, 0.25, 0.1])),
        fur=str(rng.choice(["smooth", "curly", "wiry", "long"], p=[0.4, 0.2, 0.2, 0.2])),
        eye=_pick(rng, [(40, 25, 15), (70, 45, 20), (110, 150, 200)]),
    )


def _draw_breed(p: _Pen, b: _Breed, rng: np.random.Generator) -> None:
    coat = _jitter(b.coat, rng, hue=0.01, sat=0.06, val=0.07)
    second = _jitter(b.second, rng, hue=0.01, sat=0.06, val=0.07)
    L, H, legs, hs = b.body_len, b.body_h, b.legs, 0.32 * b.head
    leg_col = second if b.pattern == "tricolour" else coat
    gait = rng.uniform(-0.08, 0.08)
    _legs(p, (-L * 0.75 + gait, -L * 0.6 - gait, L * 0.55 + gait, L * 0.7 - gait), 0.0, H + legs, 0.12, leg_col)
    tail_col = second if b.pattern in ("saddle", "tricolour") else coat
    if b.tail == "up":
        p.line([(-L * 0.9, -H * 0.3), (-L * 1.15, -H - 0.25)], tail_col, 0.08)
    elif b.tail == "down":
        p.line([(-L * 0.9, -H * 0.2), (-L * 1.1, H * 0.6), (-L * 1.05, H + 0.2)], tail_col, 0.07)
    elif b.tail == "curl":
        p.ellipse(-L * 0.9, -H - 0.05, 0.16, 0.14, tail_col)
        p.ellipse(-L * 0.88, -H - 0.05, 0.07, 0.06, _shade(tail_col, 0.8))
    p.ellipse(0.0, 0.0, L, H, coat)
    if b.fur == "long":  # fringe under the body
        for k in np.linspace(-L * 0.7, L * 0.6, 7):
            p.poly([(k - 0.1, H * 0.6), (k + 0.1, H * 0.6), (k, H + 0.18)], coat)
    if b.pattern in ("saddle", "tricolour"):
        p.ellipse(-0.05, -H * 0.45, L * 0.75, H * 0.55, second)
    elif b.pattern == "spots":
        for _ in range(int(rng.integers(4, 9))):
            p.ellipse(rng.uniform(-L * 0.7, L * 0.7), rng.uniform(-H * 0.6, H * 0.6), 0.09, 0.08, second)
    if b.pattern in ("chest", "tricolour"):
        p.ellipse(L * 0.7, H * 0.2, 0.2, H * 0.7, (240, 236, 228))
    # neck and head
    hx, hy = L * 0.95, -H - hs * 0.9
    p.poly([(L * 0.55, -H * 0.6), (L * 0.95, H * 0.2), (hx + hs * 0.3, hy + hs * 0.2), (hx - hs * 0.4, hy)], coat)
    head_col = second if b.pattern == "mask" else coat
    ear_col = second if b.pattern in ("mask", "tricolour", "saddle") else _shade(coat, 0.85)
    e = b.ear_size * hs
    if b.ears == "erect":
        p.poly([(hx - hs * 0.55, hy - hs * 0.4), (hx - hs * 0.4, hy - hs * 0.6 - e * 1.6), (hx + hs * 0.05, hy - hs * 0.7)],
               ear_col)
    p.ellipse(hx, hy, hs, hs * 0.9, head_col)
    p.rect(hx + hs * 0.2, hy - hs * 0.1, hx + hs * 0.7 + b.snout, hy + hs * 0.55,
           _shade(head_col, 1.15) if b.pattern != "mask" else coat, radius=0.08)
    p.ellipse(hx + hs * 0.7 + b.snout, hy + hs * 0.05, 0.07, 0.06, (20, 15, 15))
    p.ellipse(hx + hs * 0.35, hy - hs * 0.3, 0.05, 0.05, b.eye)
    if b.ears == "floppy":
        p.ellipse(hx - hs * 0.45, hy + e * 0.5, e * 0.45, e * 1.1, ear_col, angle=0.25)
    elif b.ears == "folded":
        p.poly([(hx - hs * 0.6, hy - hs * 0.5), (hx - hs * 0.1, hy - hs * 0.9 - e * 0.4),
                (hx + hs * 0.1, hy - hs * 0.3)], ear_col)
    if b.fur in ("curly", "wiry"):
        dark, light = _shade(coat, 0.75), _shade(coat, 1.2)
        for _ in range(40 if b.fur == "curly" else 30):
            x, y = rng.uniform(-L * 0.9, L * 0.9), rng.uniform(-H * 0.8, H * 0.8)
            if b.fur == "curly":
                p.ellipse(x, y, 0.04, 0.04, dark if rng.random() < 0.5 else light)
            else:
                p.line([(x, y), (x + rng.uniform(-0.08, 0.08), y + 0.09)], dark, 0.015)


_DOG_SCENES = {"grass": 0.35, "indoor": 0.3, "snow": 0.08, "sand": 0.07, "forest": 0.1, "random": 0.1}


def render_dog(breed: str, rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """One RGB picture (``size`` = (width, height)) of a dog of ``breed``."""
    w, h = size
    bw, bh = 2 * w, 2 * h
    canvas, horizon = _scene(_choose(rng, _DOG_SCENES), rng, bh, bw)
    layer = Image.new("RGBA", (bw, bh), (0, 0, 0, 0))
    b = _breed(breed)
    scale = min(bw, bh) * rng.uniform(0.22, 0.36)
    cx = bw * rng.uniform(0.4, 0.6)
    cy = bh * rng.uniform(0.45, 0.6)
    facing = 1 if rng.random() < 0.5 else -1
    _draw_breed(_Pen(ImageDraw.Draw(layer), cx - facing * 0.1 * scale, cy, scale, facing), b, rng)
    if rng.random() < 0.5:
        layer = layer.rotate(float(rng.normal(0.0, 6.0)), resample=Image.BILINEAR, center=(cx, cy))
    return Image.fromarray(_finish(canvas, layer, rng, (w, h), noise=(1.5, 6.0), blur=0.2))


# ================================================================ py2-style pickle writer


class _Py2Str(bytes):
    """Bytes pickled as a Python 2 ``str`` (opcodes SHORT_BINSTRING / BINSTRING), as cPickle
    wrote the original CIFAR files: they load as ``bytes`` with ``encoding='bytes'`` and
    as ``str`` with ``encoding='latin1'``."""


class _Global:
    """A module-level name, written with the GLOBAL opcode."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name


class _Reduce:
    """An object rebuilt as ``func(*args)`` then ``__setstate__(state)`` (REDUCE, BUILD)."""

    def __init__(self, func: _Global, args: tuple, state: Any = None):
        self.func, self.args, self.state = func, args, state


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler: its dispatch table can be extended
    """Protocol 2 with the opcodes Python 2's cPickle wrote for the CIFAR batches: ``str`` as
    SHORT_BINSTRING / BINSTRING, numpy arrays as ``numpy.core.multiarray._reconstruct`` +
    BUILD with the raw bytes as a Python 2 ``str`` (numpy still reads those)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2str(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + bytes(obj))
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + bytes(obj))
        self.memoize(obj)

    def save_global_ref(self, obj: _Global) -> None:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode("ascii"))

    def save_reduce_ref(self, obj: _Reduce) -> None:
        self.save(obj.func)
        self.save(tuple(obj.args))
        self.write(pickle.REDUCE)
        if obj.state is not None:
            self.save(obj.state)
            self.write(pickle.BUILD)

    dispatch[_Py2Str] = save_py2str
    dispatch[_Global] = save_global_ref
    dispatch[_Reduce] = save_reduce_ref


def _py2_array(array: np.ndarray) -> _Reduce:
    """A uint8 array as numpy 1.x pickled it on Python 2."""
    if array.dtype != np.uint8:
        raise TypeError("only uint8 arrays are written")
    dtype = _Reduce(_Global("numpy", "dtype"), (_Py2Str(b"u1"), 0, 1),
                    (3, _Py2Str(b"|"), None, None, None, -1, -1, 0))
    state = (1, tuple(array.shape), dtype, False, _Py2Str(np.ascontiguousarray(array).tobytes()))
    return _Reduce(_Global("numpy.core.multiarray", "_reconstruct"),
                   (_Global("numpy", "ndarray"), (0,), _Py2Str(b"b")), state)


def _py2_pickle(obj: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def _s(text: str) -> _Py2Str:
    return _Py2Str(text.encode("latin1"))


# ============================================================================ generators


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_marker(folder: Path, generator: str, **fields: Any) -> None:
    """The hidden ``.cvflow-demo.json``: the one file a real download lacks (nothing else reads it)."""
    data = {"generator": f"cvflow.data.cifar.{generator}", **fields}
    (folder / DEMO_MARKER).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _cifar_row(image: np.ndarray) -> np.ndarray:
    """A 32x32 RGB image (HWC) as one CIFAR row: 1024 red, then 1024 green, then 1024 blue
    values, each plane row-major (the layout the CIFAR page documents)."""
    return image.transpose(2, 0, 1).reshape(3072)


def _balanced_labels(n: int, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` class indices, as balanced as possible, in random order."""
    return rng.permutation(np.arange(n) % n_classes)


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if int(value) != value or value < 0:
            raise DataError(f"{name} must be a whole number >= 0 (got {value!r})")


class _Building:
    """A hidden folder beside ``dest`` that is renamed onto ``dest`` once complete.

    An existing ``dest`` is replaced only if it is an earlier twin (it holds
    :data:`DEMO_MARKER`) or empty: real data is never overwritten by a twin."""

    def __init__(self, dest: Path):
        self.dest = Path(dest)

    def __enter__(self) -> Path:
        if self.dest.exists() and not (self.dest / DEMO_MARKER).is_file() and (
                not self.dest.is_dir() or any(self.dest.iterdir())):
            raise DataError(f"{self.dest} exists and is not a cvflow demo twin; refusing to replace it "
                            "(move it away or generate the twin elsewhere)")
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.dest.name}.generating-", dir=self.dest.parent))
        return self.tmp

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        try:
            if exc_type is None:
                if self.dest.exists():
                    old = Path(tempfile.mkdtemp(prefix=f".{self.dest.name}.old-", dir=self.dest.parent))
                    os.replace(self.dest, old / "x")
                    os.replace(self.tmp, self.dest)
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    os.replace(self.tmp, self.dest)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


def generate_cifar10_torchvision(root: str | os.PathLike, n_train: int = 5000, n_test: int = 1000,
                                 seed: int = 0) -> Path:
    """Write a CIFAR-10 twin to ``root/cifar-10-batches-py`` (replaced atomically); return that folder.

    The ``n_train`` images are spread over the five training batches, the ``n_test`` ones go
    to ``test_batch``; labels are balanced over the ten classes. Load it with
    :func:`cifar10_dataset` (or :class:`CIFAR10Twin`).
    """
    _check_counts(n_train=n_train, n_test=n_test)
    rng = np.random.default_rng(seed)
    folder = Path(root) / CIFAR10_FOLDER
    train_labels = _balanced_labels(n_train, 10, rng)
    test_labels = _balanced_labels(n_test, 10, rng)
    batches = [(name, part) for name, part in zip(_TRAIN_BATCHES, np.array_split(np.arange(n_train), 5))]
    with _Building(folder) as tmp, progress("generating the CIFAR-10 twin", total=n_train + n_test,
                                            unit="images") as bar:
        def write_batch(name: str, label_text: str, labels: np.ndarray) -> None:
            data = np.empty((len(labels), 3072), dtype=np.uint8)
            filenames = []
            for i, label in enumerate(labels):
                image = render_cifar(CIFAR10_CLASSES[int(label)], rng)
                data[i] = _cifar_row(image)
                filenames.append(_s(f"{CIFAR10_CLASSES[int(label)]}_s_{int(rng.integers(1, 10**6)):06d}.png"))
                bar.advance()
            entry = {_s("batch_label"): _s(label_text), _s("labels"): [int(v) for v in labels],
                     _s("data"): _py2_array(data), _s("filenames"): filenames}
            (tmp / name).write_bytes(_py2_pickle(entry))

        for k, (name, index) in enumerate(batches, start=1):
            write_batch(name, f"training batch {k} of 5", train_labels[index])
        write_batch("test_batch", "testing batch 1 of 1", test_labels)
        per_batch = max((len(index) for _, index in batches), default=0)
        meta = {_s("num_cases_per_batch"): int(per_batch), _s("label_names"): [_s(c) for c in CIFAR10_CLASSES],
                _s("num_vis"): 3072}
        (tmp / "batches.meta").write_bytes(_py2_pickle(meta))
        (tmp / "readme.html").write_text(
            '<meta HTTP-EQUIV="REFRESH" content="0; url=http://www.cs.toronto.edu/~kriz/cifar.html">\n',
            encoding="ascii")
        md5 = {name: _md5(tmp / name) for name in (*_TRAIN_BATCHES, "test_batch", "batches.meta")}
        _write_marker(tmp, "generate_cifar10_torchvision", seed=seed, n_train=n_train, n_test=n_test, md5=md5)
    return folder


class CIFAR10Twin(_TorchvisionCIFAR10):
    """``torchvision.datasets.CIFAR10`` for a twin made by :func:`generate_cifar10_torchvision`.

    Same arguments and attributes (``data`` uint8 NHWC, ``targets``, ``classes``,
    ``class_to_idx``); the only difference is where the expected md5 sums come from: the
    twin's ``.cvflow-demo.json`` instead of the official archive's. torchvision's own
    ``_check_integrity`` and ``_load_meta`` still verify every file against them, so a
    damaged or missing file is refused (a one-line DataError).
    """

    def __init__(self, root: str | os.PathLike, train: bool = True, transform: Callable | None = None,
                 target_transform: Callable | None = None, download: bool = False) -> None:
        folder = Path(root) / CIFAR10_FOLDER
        try:
            md5 = json.loads((folder / DEMO_MARKER).read_text(encoding="utf-8"))["md5"]
            if not isinstance(md5, dict):
                raise TypeError
        except (OSError, ValueError, KeyError, TypeError):
            raise DataError(f"{folder / DEMO_MARKER}: missing or unreadable, so {folder} is not a cvflow demo "
                            "twin; generate it again, or load real data with torchvision.datasets.CIFAR10") from None
        if download:
            raise DataError("a demo twin is generated, not downloaded: use generate_cifar10_torchvision")
        # Instance attributes shadow the class's official md5 sums.
        self.train_list = [[name, str(md5.get(name, ""))] for name in _TRAIN_BATCHES]
        self.test_list = [["test_batch", str(md5.get("test_batch", ""))]]
        self.meta = {**_TorchvisionCIFAR10.meta, "md5": str(md5.get("batches.meta", ""))}
        try:
            super().__init__(root, train=train, transform=transform, target_transform=target_transform,
                             download=False)
        except RuntimeError as exc:
            raise DataError(f"{folder}: the demo twin is damaged ({' '.join(str(exc).split())}); "
                            "generate it again") from None


def cifar10_dataset(root: str | os.PathLike, train: bool = True, transform: Callable | None = None,
                    target_transform: Callable | None = None, download: bool = False) -> Any:
    """CIFAR-10 from ``root`` as a ``torchvision.datasets.CIFAR10``: the twin or the real data.

    ``root/cifar-10-batches-py/.cvflow-demo.json`` present: :class:`CIFAR10Twin`. Otherwise
    ``torchvision.datasets.CIFAR10`` itself (``download=True`` fetches the official archive
    from torchvision's URL and checks torchvision's md5 sums); a missing or damaged folder
    is a one-line DataError.
    """
    folder = Path(root) / CIFAR10_FOLDER
    if (folder / DEMO_MARKER).is_file():
        return CIFAR10Twin(root, train=train, transform=transform, target_transform=target_transform)
    try:
        return _TorchvisionCIFAR10(root, train=train, transform=transform, target_transform=target_transform, download=download)
    except RuntimeError as exc:
        raise DataError(f"{folder}: {' '.join(str(exc).split())} (CIFAR-10; download it with download: true, "
                        "or run the offline demo)") from None


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(",".join(header) + "\n")
        handle.writelines(",".join(str(v) for v in row) + "\n" for row in rows)


def generate_kaggle_cifar10(root: str | os.PathLike, n_train: int = 5000, n_test: int = 1000,
                            seed: int = 0) -> Path:
    """Write the Kaggle ``cifar-10`` twin into ``root`` (replaced atomically); return ``root``.

    ``train/1.png .. train/N.png`` with ``trainLabels.csv`` (``id,label``, ids 1..N in
    order, classes balanced), ``test/1.png .. test/M.png`` and ``sampleSubmission.csv``
    (``id,label``, every label ``cat``, like Kaggle's).
    """
    _check_counts(n_train=n_train, n_test=n_test)
    rng = np.random.default_rng(seed)
    root = Path(root)
    train_labels = _balanced_labels(n_train, 10, rng)
    with _Building(root) as tmp, progress("generating the Kaggle CIFAR-10 twin", total=n_train + n_test,
                                          unit="images") as bar:
        for split, n in (("train", n_train), ("test", n_test)):
            (tmp / split).mkdir()
            labels = train_labels if split == "train" else rng.integers(0, 10, n)
            for i in range(n):
                image = render_cifar(CIFAR10_CLASSES[int(labels[i])], rng)
                Image.fromarray(image).save(tmp / split / f"{i + 1}.png", format="PNG")
                bar.advance()
        _write_csv(tmp / "trainLabels.csv", ("id", "label"),
                   [(i + 1, CIFAR10_CLASSES[int(c)]) for i, c in enumerate(train_labels)])
        _write_csv(tmp / "sampleSubmission.csv", ("id", "label"), [(i + 1, "cat") for i in range(n_test)])
        _write_marker(tmp, "generate_kaggle_cifar10", seed=seed, n_train=n_train, n_test=n_test)
    return root


def generate_kaggle_dogs(root: str | os.PathLike, breeds: Sequence[str] = DOG_BREEDS[:10], n_train: int = 500,
                         n_test: int = 100, seed: int = 0, *, min_side: int = 80, max_side: int = 160) -> Path:
    """Write the Kaggle ``dog-breed-identification`` twin into ``root`` (replaced atomically).

    ``train/<id>.jpg`` and ``test/<id>.jpg`` with random 32-digit hex ids, sides between
    ``min_side`` and ``max_side`` pixels; ``labels.csv`` (``id,breed``, rows sorted by id),
    ``sample_submission.csv`` (``id`` then one column per breed in alphabetical order,
    every probability ``1/len(breeds)``, rows sorted by id). ``breeds`` may be any subset
    of :data:`DOG_BREEDS` (or other names); train labels are balanced over them.
    """
    _check_counts(n_train=n_train, n_test=n_test)
    breeds = sorted(set(breeds))
    if not breeds:
        raise DataError("generate_kaggle_dogs needs at least one breed")
    bad = [b for b in breeds if not b or "," in b or b == "id"]
    if bad:
        raise DataError(f"invalid breed names (empty, 'id' or with a comma): {bad}")
    if not 8 <= min_side <= max_side:
        raise DataError(f"need 8 <= min_side <= max_side (got {min_side}, {max_side})")
    rng = np.random.default_rng(seed)
    root = Path(root)
    ids: set[str] = set()

    def new_id() -> str:
        while True:
            value = rng.bytes(16).hex()
            if value not in ids:
                ids.add(value)
                return value

    train = [(new_id(), breeds[int(k)]) for k in _balanced_labels(n_train, len(breeds), rng)]
    test = [(new_id(), breeds[int(k)]) for k in rng.integers(0, len(breeds), n_test)]
    with _Building(root) as tmp, progress("generating the Kaggle dog-breed twin", total=n_train + n_test,
                                          unit="images") as bar:
        for split, items in (("train", train), ("test", test)):
            (tmp / split).mkdir()
            for image_id, breed in items:
                long_side = int(rng.integers(min_side, max_side + 1))
                short_side = int(rng.integers(max(min_side, int(long_side * 0.6)), long_side + 1))
                size = (long_side, short_side) if rng.random() < 0.7 else (short_side, long_side)
                render_dog(breed, rng, size).save(tmp / split / f"{image_id}.jpg", format="JPEG",
                                                  quality=int(rng.integers(80, 96)))
                bar.advance()
        _write_csv(tmp / "labels.csv", ("id", "breed"), sorted(train))
        uniform = repr(1.0 / len(breeds))
        _write_csv(tmp / "sample_submission.csv", ("id", *breeds),
                   [(image_id, *([uniform] * len(breeds))) for image_id in sorted(i for i, _ in test)])
        _write_marker(tmp, "generate_kaggle_dogs", seed=seed, n_train=n_train, n_test=n_test, breeds=breeds)
    return root


def check_cifar10(root: Path) -> dict[str, int]:
    """``root/cifar-10-batches-py`` complete? Returns the number of files."""
    folder = Path(root) / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataError(f"{folder}: missing {', '.join(missing)} (the layout of torchvision's CIFAR10)")
    return {"files": len(names)}


def fetch_cifar10(dest: Path, source: str, *, path: Path | None = None, n_train: int = 5000, n_test: int = 1000,
                  seed: int = 0) -> dict[str, int]:
    """``dest/cifar-10-batches-py``: ``demo`` (the twin), ``torchvision`` (torchvision's own URL and
    MD5), or ``local`` (a folder holding cifar-10-batches-py, or cifar-10-python.tar.gz)."""
    from cvflow.data.sources import find_root, materialize, unpack_user_data

    def build(work: Path) -> Path:
        target = work / "target"
        if source == "demo":
            generate_cifar10_torchvision(target, n_train, n_test, seed)
        elif source == "torchvision":
            from torchvision.datasets import CIFAR10

            try:
                CIFAR10(str(target), train=True, download=True)
            except Exception as exc:  # noqa: BLE001 - URLError, HTTP errors, checksum failures
                raise DataError(
                    f"cannot download CIFAR-10 through torchvision ({type(exc).__name__}: {str(exc)[:120]}); "
                    "use --source local --path FOLDER_OR_TAR_GZ, or the offline demo (profile: demo)") from None
            (target / "cifar-10-python.tar.gz").unlink(missing_ok=True)
        elif source == "local":
            if path is None:
                raise DataError("source local needs --path (a folder holding cifar-10-batches-py, or the .tar.gz)")
            root = unpack_user_data(Path(path), work, lambda f: find_root(f, lambda d: (d / "cifar-10-batches-py").is_dir()),
                                    "cifar-10-batches-py")
            root.rename(target)
        else:
            raise DataError(f"unknown source {source!r}: use demo, torchvision or local")
        return target

    return materialize(Path(dest), build, check_cifar10)
