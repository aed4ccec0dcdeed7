"""The banana detection twin (book 13.6), written in the real set's files and formats.

The book's authors made the real set by pasting a banana sprite at random positions,
scales and rotations onto varied photos; :func:`generate_bananas` does the same with a
banana drawn here (a curved, shaded yellow body, brown tips, a stem, an anti-aliased alpha
mask) on the procedural backgrounds of :mod:`cvflow.twins.raster`. The box is the
tight box of the pasted sprite's non-zero alpha, as pixel edges: ``xmin`` is the first
covered column, ``xmax`` one past the last (so ``xmax - xmin`` is the width in pixels).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from cvflow.console import progress
from cvflow.data.readers.bananas import BANANA_HEADER, FOLDERS, SPLITS
from cvflow.twins.raster import distractor, pixel_grid, table_background, value_noise

__all__ = ["generate_bananas", "render_banana_scene"]


# --------------------------------------------------------------------------- the sprite


def _banana_sprite(rng: np.random.Generator, length: float) -> tuple[np.ndarray, np.ndarray]:
    """One banana, rotated, as ``(rgb float32 (h, w, 3), alpha uint8 (h, w))`` cropped to alpha > 0.

    The body is a band around a circular arc (chord ``length`` pixels) whose thickness
    tapers to points at both ends; a short stem sticks out of one end. Everything is
    evaluated per pixel in the sprite's own (rotated) coordinates, so the alpha is
    anti-aliased and exact, with no resampling.
    """
    half = rng.uniform(0.45, 1.05)  # half the angle the arc spans (how bent)
    radius = length / (2.0 * math.sin(half))
    thick = length * rng.uniform(0.17, 0.27)
    arc_len = 2.0 * half * radius
    stem_len = length * rng.uniform(0.06, 0.12)
    stem_w = thick * rng.uniform(0.16, 0.24)
    rot = rng.uniform(0.0, 2.0 * math.pi)
    mirror = -1.0 if rng.random() < 0.5 else 1.0

    ripe = rng.random()
    if ripe < 0.15:
        base = np.array([200, 205, 70], np.float32)  # green-yellow
    elif ripe < 0.85:
        base = np.array([248, 212, 58], np.float32)
    else:
        base = np.array([236, 188, 52], np.float32)  # riper, deeper yellow
    base = np.clip(base * (1.0 + rng.normal(0.0, 0.04, 3)).astype(np.float32), 0, 255)
    edge = np.array([150, 112, 30], np.float32)
    brown = np.array([88, 60, 26], np.float32) * np.float32(rng.uniform(0.8, 1.2))
    stem_col = np.array([112, 104, 44], np.float32)

    # Bounds: the outline's sample points, rotated, plus a margin for anti-aliasing.
    t = np.linspace(-half - stem_len / radius, half, 64)
    rr = np.concatenate([np.full_like(t, radius - thick / 2), np.full_like(t, radius + thick / 2)])
    tt = np.concatenate([t, t]) + math.pi / 2
    lx, ly = mirror * rr * np.cos(tt), rr * np.sin(tt)
    c, s = math.cos(rot), math.sin(rot)
    gx, gy = c * lx - s * ly, s * lx + c * ly
    x0, x1 = math.floor(gx.min()) - 2, math.ceil(gx.max()) + 2
    y0, y1 = math.floor(gy.min()) - 2, math.ceil(gy.max()) + 2

    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    xs += 0.5
    ys += 0.5
    # back to the sprite's own frame (arc centre at the origin, arc around +y)
    ux = (c * xs + s * ys) * mirror
    uy = -s * xs + c * ys
    r = np.hypot(ux, uy)
    theta = np.arctan2(uy, ux) - np.float32(math.pi / 2)  # 0 at the middle of the arc
    theta = (theta + np.pi) % (2 * np.pi) - np.pi
    q = (theta + half) * radius  # arc length from the stem end, pixels
    frac = q / arc_len
    d = r - radius  # signed distance from the centre line

    prof = np.maximum(np.sin(np.pi * np.clip(frac, 0.0, 1.0)), 0.0) ** 0.6
    hw = thick / 2 * prof  # half thickness
    body = np.clip(hw - np.abs(d) + 0.5, 0.0, 1.0) * ((frac >= 0) & (frac <= 1))
    stem = np.clip(stem_w / 2 - np.abs(d) + 0.5, 0.0, 1.0) * np.clip(q + stem_len + 0.5, 0.0, 1.0)
    stem *= np.clip(0.1 * arc_len - q, 0.0, 1.0)
    alpha = np.maximum(body, stem)

    u = np.clip(d / np.maximum(hw, 1e-3), -1.0, 1.0)
    shade = 0.6 + 0.4 * np.sqrt(1.0 - u * u)  # a cylinder lit from the front
    rgb = base * shade[..., None]
    glow = 0.35 * np.exp(-(((u + 0.35) / 0.2) ** 2))[..., None]  # highlight along one side
    rgb += (255.0 - rgb) * glow
    rib = np.clip((np.abs(u) - 0.72) / 0.28, 0.0, 1.0)[..., None] * 0.6  # darker rim (the ribs)
    rgb += (edge - rgb) * rib
    tip = np.clip((0.09 - frac) / 0.06, 0.0, 1.0) + np.clip((frac - 0.91) / 0.06, 0.0, 1.0)
    rgb += (brown - rgb) * np.clip(tip, 0.0, 1.0)[..., None]
    if ripe >= 0.85:  # sugar spots
        for _ in range(int(rng.integers(4, 12))):
            fx, fu = rng.uniform(0.15, 0.85), rng.uniform(-0.6, 0.6)
            spot = np.exp(-(((frac - fx) * arc_len) ** 2 + ((u - fu) * thick / 2) ** 2) / (thick * 0.05) ** 2)
            rgb += (brown - rgb) * (0.7 * spot)[..., None]
    st = (stem > body)[..., None]
    rgb = np.where(st, stem_col, rgb)

    a8 = np.rint(alpha * 255.0).astype(np.uint8)
    rows, cols = np.nonzero(a8.any(axis=1))[0], np.nonzero(a8.any(axis=0))[0]
    a8 = a8[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    rgb = rgb[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return np.clip(rgb, 0, 255).astype(np.float32), a8


def _scene_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A varied background (float32 HxWx3): tables, cloths, wood, stone, grass, sky, noise."""
    kind = rng.random()
    if kind < 0.55:
        img = table_background(rng, size, size)
    else:  # an outdoor-ish scene: sky or foliage above, ground below, both textured
        horizon = rng.uniform(0.2, 0.8) * size
        skies = ((120, 160, 215), (190, 205, 225), (225, 225, 220), (95, 115, 95), (150, 170, 120))
        grounds = ((70, 120, 45), (105, 140, 60), (120, 95, 65), (90, 85, 80), (150, 130, 100), (45, 70, 40))
        sky = np.array(skies[int(rng.integers(len(skies)))], np.float32) * (1 + rng.normal(0, 0.08, 3))
        ground = np.array(grounds[int(rng.integers(len(grounds)))], np.float32) * (1 + rng.normal(0, 0.1, 3))
        sky, ground = sky.astype(np.float32), ground.astype(np.float32)
        xx, yy = pixel_grid(size, size)
        wave = horizon + size * 0.06 * np.sin(xx[0] * (2 * math.pi / size) * rng.uniform(0.5, 2.0) + rng.uniform(0, 6))
        m = np.clip(yy - wave[None, :], 0.0, 1.0)[..., None]
        tex = value_noise(rng, size, size, int(rng.integers(6, 24)))[..., None]
        img = sky + (ground - sky) * m
        img = img * (0.75 + 0.5 * tex)
    if rng.random() < 0.5:
        canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(canvas)
        for _ in range(int(rng.integers(1, 4))):
            distractor(rng, draw, size, size)
        img = np.asarray(canvas, dtype=np.float32)
    return np.ascontiguousarray(img, dtype=np.float32)


def render_banana_scene(rng: np.random.Generator, size: int = 256
                        ) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """One banana pasted on a random background.

    Returns ``(image uint8 (size, size, 3), alpha uint8 (size, size), box)``: ``alpha`` is
    the pasted sprite's alpha in image coordinates and ``box = (xmin, ymin, xmax, ymax)``
    its tight box (pixel edges; ``xmax``/``ymax`` one past the last covered pixel).
    Depends only on the generator's state (which it advances).
    """
    size = int(size)
    if size < 32:
        raise ValueError(f"size must be at least 32 pixels, got {size}")
    bg = _scene_background(rng, size)
    length = size * rng.uniform(0.13, 0.36)
    rgb, a8 = _banana_sprite(rng, length)
    h, w = a8.shape
    if h > size or w > size:  # cannot happen at these scales; keep the contract anyway
        raise AssertionError("banana sprite larger than the image")
    x = int(rng.integers(0, size - w + 1))
    y = int(rng.integers(0, size - h + 1))
    a = a8.astype(np.float32)[..., None] * np.float32(1 / 255)
    patch = bg[y : y + h, x : x + w]
    patch += (rgb - patch) * a
    # global photometry: brightness/colour gain and mild sensor noise
    gain = np.float32(rng.uniform(0.85, 1.12)) * (1.0 + rng.normal(0.0, 0.03, 3)).astype(np.float32)
    bg *= gain
    sigma = rng.uniform(0.0, 4.0)
    if sigma > 1.0:
        bg += rng.normal(0.0, sigma, bg.shape).astype(np.float32)
    image = np.clip(bg, 0, 255).astype(np.uint8)
    alpha = np.zeros((size, size), np.uint8)
    alpha[y : y + h, x : x + w] = a8
    return image, alpha, (x, y, x + w, y + h)


def generate_bananas(root: str | Path, n_train: int = 1000, n_val: int = 100, seed: int = 0,
                     size: int = 256) -> Path:
    """Write the banana demo twin into ``root`` (the ``banana-detection`` folder); return ``root``.

    ``root/bananas_{train,val}/images/<i>.png`` and ``label.csv`` exactly as in the real
    set. Image ``i`` of a split depends only on ``(seed, split, i)``.
    """
    root = Path(root)
    n = {"train": int(n_train), "val": int(n_val)}
    if min(n.values()) < 0:
        raise ValueError(f"image counts must be >= 0, got n_train={n_train}, n_val={n_val}")
    with progress("generating the banana demo twin", total=sum(n.values()), unit="images") as bar:
        for split_index, split in enumerate(SPLITS):
            folder = root / FOLDERS[split]
            (folder / "images").mkdir(parents=True, exist_ok=True)
            rows = []
            for i in range(n[split]):
                rng = np.random.default_rng([int(seed), split_index, i])
                image, _, box = render_banana_scene(rng, size)
                name = f"{i}.png"
                Image.fromarray(image).save(folder / "images" / name, compress_level=1)
                rows.append((name, 0, *box))
                bar.advance()
            with open(folder / "label.csv", "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerow(BANANA_HEADER)
                writer.writerows(rows)
    return root
