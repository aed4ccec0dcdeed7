"""Offline demo twin of Kaggle's dog-breed-identification, in its on-disk format (book 13.14).

:func:`generate_kaggle_dogs`: the competition after unpacking: ``train/<id>.jpg``,
``test/<id>.jpg`` (32-digit hex ids, JPEGs of varied sizes), ``labels.csv`` (``id,breed``)
and ``sample_submission.csv`` (``id`` and one column per breed, alphabetical, uniform
probabilities).

Every breed gets a fixed "genotype" drawn from a hash of its name (coat colours and
pattern, ears, snout, legs, body, tail, fur texture), so the same breed looks alike under
every seed; each picture then varies pose, size, scene, lighting and noise.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from cvflow.console import progress
from cvflow.twins.output import balanced_labels, building, check_counts, write_csv, write_marker
from cvflow.twins.raster import RGB, Pen, choose, draw_legs, finish, jitter, pick, scene, shade
from cvflow.errors import DataError

__all__ = ["DOG_BREEDS", "generate_kaggle_dogs", "render_dog"]

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
    coat = jitter(pick(rng, _COATS), rng, hue=0.02, sat=0.1, val=0.08)
    second = jitter(pick(rng, _COATS), rng, hue=0.02, sat=0.1, val=0.08)
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
        eye=pick(rng, [(40, 25, 15), (70, 45, 20), (110, 150, 200)]),
    )


def _draw_breed(p: Pen, b: _Breed, rng: np.random.Generator) -> None:
    coat = jitter(b.coat, rng, hue=0.01, sat=0.06, val=0.07)
    second = jitter(b.second, rng, hue=0.01, sat=0.06, val=0.07)
    L, H, legs, hs = b.body_len, b.body_h, b.legs, 0.32 * b.head
    leg_col = second if b.pattern == "tricolour" else coat
    gait = rng.uniform(-0.08, 0.08)
    draw_legs(p, (-L * 0.75 + gait, -L * 0.6 - gait, L * 0.55 + gait, L * 0.7 - gait), 0.0, H + legs, 0.12, leg_col)
    tail_col = second if b.pattern in ("saddle", "tricolour") else coat
    if b.tail == "up":
        p.line([(-L * 0.9, -H * 0.3), (-L * 1.15, -H - 0.25)], tail_col, 0.08)
    elif b.tail == "down":
        p.line([(-L * 0.9, -H * 0.2), (-L * 1.1, H * 0.6), (-L * 1.05, H + 0.2)], tail_col, 0.07)
    elif b.tail == "curl":
        p.ellipse(-L * 0.9, -H - 0.05, 0.16, 0.14, tail_col)
        p.ellipse(-L * 0.88, -H - 0.05, 0.07, 0.06, shade(tail_col, 0.8))
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
    ear_col = second if b.pattern in ("mask", "tricolour", "saddle") else shade(coat, 0.85)
    e = b.ear_size * hs
    if b.ears == "erect":
        p.poly([(hx - hs * 0.55, hy - hs * 0.4), (hx - hs * 0.4, hy - hs * 0.6 - e * 1.6), (hx + hs * 0.05, hy - hs * 0.7)],
               ear_col)
    p.ellipse(hx, hy, hs, hs * 0.9, head_col)
    p.rect(hx + hs * 0.2, hy - hs * 0.1, hx + hs * 0.7 + b.snout, hy + hs * 0.55,
           shade(head_col, 1.15) if b.pattern != "mask" else coat, radius=0.08)
    p.ellipse(hx + hs * 0.7 + b.snout, hy + hs * 0.05, 0.07, 0.06, (20, 15, 15))
    p.ellipse(hx + hs * 0.35, hy - hs * 0.3, 0.05, 0.05, b.eye)
    if b.ears == "floppy":
        p.ellipse(hx - hs * 0.45, hy + e * 0.5, e * 0.45, e * 1.1, ear_col, angle=0.25)
    elif b.ears == "folded":
        p.poly([(hx - hs * 0.6, hy - hs * 0.5), (hx - hs * 0.1, hy - hs * 0.9 - e * 0.4),
                (hx + hs * 0.1, hy - hs * 0.3)], ear_col)
    if b.fur in ("curly", "wiry"):
        dark, light = shade(coat, 0.75), shade(coat, 1.2)
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
    canvas, horizon = scene(choose(rng, _DOG_SCENES), rng, bh, bw)
    layer = Image.new("RGBA", (bw, bh), (0, 0, 0, 0))
    b = _breed(breed)
    scale = min(bw, bh) * rng.uniform(0.22, 0.36)
    cx = bw * rng.uniform(0.4, 0.6)
    cy = bh * rng.uniform(0.45, 0.6)
    facing = 1 if rng.random() < 0.5 else -1
    _draw_breed(Pen(ImageDraw.Draw(layer), cx - facing * 0.1 * scale, cy, scale, facing), b, rng)
    if rng.random() < 0.5:
        layer = layer.rotate(float(rng.normal(0.0, 6.0)), resample=Image.BILINEAR, center=(cx, cy))
    return Image.fromarray(finish(canvas, layer, rng, (w, h), noise=(1.5, 6.0), blur=0.2))


def generate_kaggle_dogs(root: str | os.PathLike, breeds: Sequence[str] = DOG_BREEDS[:10], n_train: int = 500,
                         n_test: int = 100, seed: int = 0, *, min_side: int = 80, max_side: int = 160) -> Path:
    """Write the Kaggle ``dog-breed-identification`` twin into ``root`` (replaced atomically).

    ``train/<id>.jpg`` and ``test/<id>.jpg`` with random 32-digit hex ids, sides between
    ``min_side`` and ``max_side`` pixels; ``labels.csv`` (``id,breed``, rows sorted by id),
    ``sample_submission.csv`` (``id`` then one column per breed in alphabetical order,
    every probability ``1/len(breeds)``, rows sorted by id). ``breeds`` may be any subset
    of :data:`DOG_BREEDS` (or other names); train labels are balanced over them.
    """
    check_counts(n_train=n_train, n_test=n_test)
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

    train = [(new_id(), breeds[int(k)]) for k in balanced_labels(n_train, len(breeds), rng)]
    test = [(new_id(), breeds[int(k)]) for k in rng.integers(0, len(breeds), n_test)]
    with building(root) as tmp, progress("generating the Kaggle dog-breed twin", total=n_train + n_test,
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
        write_csv(tmp / "labels.csv", ("id", "breed"), sorted(train))
        uniform = repr(1.0 / len(breeds))
        write_csv(tmp / "sample_submission.csv", ("id", *breeds),
                   [(image_id, *([uniform] * len(breeds))) for image_id in sorted(i for i, _ in test)])
        write_marker(tmp, "generate_kaggle_dogs", seed=seed, n_train=n_train, n_test=n_test, breeds=breeds)
    return root
