"""The raster helpers every demo twin draws with: colours, grids, noise, gradients, scenes.

One module for all generators (food photos, hot dog twin, bananas, VOC, book photos,
CIFAR-10, dog breeds), so none of them reaches into another's private helpers. Two
families live side by side and are *not* interchangeable, because each twin's bytes are
pinned (tests/test_twins_bytes.py) and every helper consumes the random generator in its
own way:

* the food-photo family (pixel coordinates): :func:`pixel_grid`, :func:`value_noise`
  (bicubic float noise), :func:`stripes`, :func:`table_background`, :func:`distractor`,
  colour mixing (:func:`mix`, :func:`dark`, :func:`light`, :func:`random_hsv`) and outlines
  (:func:`blob`, :func:`ellipse_poly`, :func:`dot`);
* the animal family (CIFAR-10 and dog twins; unit coordinates): :func:`unit_grid`,
  :func:`smooth_noise` (bilinear uint8 noise), :func:`vgrad`, :func:`textured`,
  :func:`scene`, :func:`finish`, colour jitter (:func:`jitter`, :func:`shade`,
  :func:`pick`, :func:`choose`) and :class:`Pen` (object coordinates).

Everything is deterministic given the generator's state.
"""

from __future__ import annotations

import colorsys
import math
from functools import lru_cache
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

RGB = tuple[int, int, int]


# =============================================================== the food-photo family


def mix(a: Sequence[float], b: Sequence[float], t: float) -> RGB:
    return (
        int(a[0] + (b[0] - a[0]) * t + 0.5),
        int(a[1] + (b[1] - a[1]) * t + 0.5),
        int(a[2] + (b[2] - a[2]) * t + 0.5),
    )


def dark(c: Sequence[float], f: float) -> RGB:
    return mix(c, (0, 0, 0), f)


def light(c: Sequence[float], f: float) -> RGB:
    return mix(c, (255, 255, 255), f)


def random_hsv(rng: np.random.Generator, s: tuple[float, float], v: tuple[float, float]) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*s), rng.uniform(*v))
    return (int(r * 255), int(g * 255), int(b * 255))


# --------------------------------------------------------------------------- shapes


def blob(cx: float, cy: float, rx: float, ry: float, rng: np.random.Generator,
          rough: float = 0.06, n: int = 28) -> list[tuple[float, float]]:
    """An irregular closed outline around an ellipse (a few random harmonics)."""
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    r = np.ones(n)
    for k in (2, 3, 5):
        r += rough * rng.normal(0.0, 1.0 / k ** 0.5) * np.cos(k * t + rng.uniform(0, 2 * math.pi))
    xs = cx + rx * r * np.cos(t)
    ys = cy + ry * r * np.sin(t)
    return list(zip(xs.tolist(), ys.tolist()))


def ellipse_poly(cx: float, cy: float, rx: float, ry: float, angle: float,
                  n: int = 16) -> list[tuple[float, float]]:
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    ca, sa = math.cos(angle), math.sin(angle)
    x, y = rx * np.cos(t), ry * np.sin(t)
    return list(zip((cx + x * ca - y * sa).tolist(), (cy + x * sa + y * ca).tolist()))


def dot(d: ImageDraw.ImageDraw, x: float, y: float, r: float, fill: RGB) -> None:
    d.ellipse([x - r, y - r, x + r, y + r], fill=fill)


# --------------------------------------------------------------------------- scene


@lru_cache(maxsize=16)
def pixel_grid(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy.flags.writeable = False
    xx.flags.writeable = False
    return xx, yy


def value_noise(rng: np.random.Generator, w: int, h: int, cells: int) -> np.ndarray:
    """Smooth value noise in [0, 1]: a coarse random grid upscaled bicubically."""
    gw = max(2, int(cells * w / max(w, h)) + 1)
    gh = max(2, int(cells * h / max(w, h)) + 1)
    small = Image.fromarray(rng.random((gh, gw), dtype=np.float32))
    return np.asarray(small.resize((w, h), Image.BICUBIC))


def stripes(u: np.ndarray, period: float, duty: float = 0.5) -> np.ndarray:
    """Anti-aliased 0/1 stripes along coordinate ``u``."""
    v = u * np.float32(1.0 / period)
    f = v - np.floor(v)
    f -= 0.5
    np.abs(f, out=f)
    f *= np.float32(period)  # distance to the middle of the gap between stripes, pixels
    f += np.float32(0.5 - (1.0 - duty) * period * 0.5)
    return np.clip(f, 0.0, 1.0, out=f)


def table_colour(rng: np.random.Generator) -> np.ndarray:
    u = rng.random()
    if u < 0.25:  # wood and warm tones (bread-like: hard)
        c = random_hsv(rng, (0.3, 0.7), (0.35, 0.85))
        c = mix(c, (190, 130, 70), 0.75)
    elif u < 0.5:  # whites and greys
        g = rng.uniform(120, 245)
        c = (g + rng.normal(0, 6), g + rng.normal(0, 6), g + rng.normal(0, 6))
    elif u < 0.65:  # dark
        c = random_hsv(rng, (0.0, 0.5), (0.08, 0.35))
    else:
        c = random_hsv(rng, (0.15, 0.8), (0.35, 0.95))
    return np.array(c, dtype=np.float32)


def table_background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    xx, yy = pixel_grid(w, h)
    c0, c1 = table_colour(rng), table_colour(rng)
    kind = rng.random()
    a = rng.uniform(0, math.pi)
    u = xx * math.cos(a) + yy * math.sin(a)
    scale = max(w, h)
    if kind < 0.14:  # flat
        m = None
    elif kind < 0.3:  # gradient
        m = (u - u.min()) / max(float(u.max() - u.min()), 1.0)
    elif kind < 0.48:  # smooth noise texture
        m = value_noise(rng, w, h, int(rng.integers(3, 12)))
        if rng.random() < 0.5:
            m = 0.6 * m + 0.4 * value_noise(rng, w, h, int(rng.integers(12, 30)))
    elif kind < 0.62:  # stripes
        m = stripes(u, scale * rng.uniform(0.04, 0.2), rng.uniform(0.3, 0.7))
    elif kind < 0.78:  # gingham / checks (table cloth)
        v = -xx * math.sin(a) + yy * math.cos(a)
        p = scale * rng.uniform(0.05, 0.16)
        if rng.random() < 0.6:
            c0 = np.array(mix(c0, (250, 250, 250), 0.8), dtype=np.float32)
            m = 0.5 * stripes(u, p) + 0.5 * stripes(v, p)
        else:
            m = np.abs(stripes(u, p) - stripes(v, p))
    elif kind < 0.9:  # wood planks
        c0 = np.array(mix(c0, (150, 95, 50), 0.6), dtype=np.float32)
        c1 = dark(c0, rng.uniform(0.15, 0.4))
        c1 = np.array(c1, dtype=np.float32)
        v = -xx * math.sin(a) + yy * math.cos(a)
        warp = value_noise(rng, w, h, 4) * scale * 0.05
        m = 0.5 + 0.5 * np.sin((v + warp) * (2 * math.pi / (scale * rng.uniform(0.02, 0.06))))
        m = 0.6 * m + 0.4 * value_noise(rng, w, h, 20)
        seam = stripes(v, scale * rng.uniform(0.15, 0.4), 0.03)
        m = np.maximum(m, seam)
    else:  # speckled stone
        m = 0.35 * value_noise(rng, w, h, 8) + 0.65 * (rng.random((h, w), dtype=np.float32) ** 3)
    if m is None:
        img = np.broadcast_to(c0, (h, w, 3)).astype(np.float32)
    else:
        img = c0 + (c1 - c0) * m[..., None]
    return img


def distractor(rng: np.random.Generator, d: ImageDraw.ImageDraw, w: int, h: int) -> None:
    s = min(w, h) * rng.uniform(0.05, 0.14)
    x, y = rng.uniform(0, w), rng.uniform(0, h)
    col = random_hsv(rng, (0.0, 0.9), (0.2, 1.0))
    k = rng.random()
    if k < 0.3:  # pea, olive, tomato, ...
        d.ellipse([x - s / 2, y - s / 2, x + s / 2, y + s / 2], fill=col)
    elif k < 0.45:  # napkin
        d.polygon(ellipse_poly(x, y, s * 1.2, s * 0.9, rng.uniform(0, 3), 4),
                  fill=light(col, 0.6))
    elif k < 0.65:  # knife / fork handle
        b = rng.uniform(0, math.pi)
        L = min(w, h) * rng.uniform(0.25, 0.5)
        dx, dy = math.cos(b) * L / 2, math.sin(b) * L / 2
        g = int(rng.uniform(150, 225))
        d.line([(x - dx, y - dy), (x + dx, y + dy)], fill=(g, g, g + 5), width=max(1, int(s * 0.25)))
    elif k < 0.8:  # leaf
        d.polygon(ellipse_poly(x, y, s * 0.7, s * 0.3, rng.uniform(0, 3), 10),
                  fill=random_hsv(rng, (0.5, 0.8), (0.4, 0.7)) if rng.random() < 0.3 else (70, 140, 50))
    elif k < 0.9:  # crumbs
        for _ in range(int(rng.integers(3, 8))):
            dot(d, x + rng.normal(0, s), y + rng.normal(0, s), max(0.6, s * 0.08), (200, 160, 100))
    else:  # a little bowl
        d.ellipse([x - s, y - s * 0.8, x + s, y + s * 0.8], fill=dark(col, 0.3))
        d.ellipse([x - s * 0.8, y - s * 0.6, x + s * 0.8, y + s * 0.6], fill=col)


# =============================================================== the animal family


# =============================================================================== drawing


def clip8(value: float) -> int:
    return int(min(max(value, 0.0), 255.0))


def jitter(rgb: Sequence[float], rng: np.random.Generator, hue: float = 0.03, sat: float = 0.15,
            val: float = 0.15) -> RGB:
    """``rgb`` with a random hue / saturation / value shift."""
    h, s, v = colorsys.rgb_to_hsv(rgb[0] / 255.0, rgb[1] / 255.0, rgb[2] / 255.0)
    h = (h + rng.normal(0.0, hue)) % 1.0
    s = min(max(s * (1.0 + rng.normal(0.0, sat)), 0.0), 1.0)
    v = min(max(v * (1.0 + rng.normal(0.0, val)), 0.0), 1.0)
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return (clip8(r * 255), clip8(g * 255), clip8(b * 255))


def shade(rgb: Sequence[float], factor: float) -> RGB:
    """Darker (factor < 1) or lighter (factor > 1, towards white) version of ``rgb``."""
    if factor <= 1.0:
        return (clip8(rgb[0] * factor), clip8(rgb[1] * factor), clip8(rgb[2] * factor))
    t = min(factor - 1.0, 1.0)
    return tuple(clip8(c + (255 - c) * t) for c in rgb)  # type: ignore[return-value]


def pick(rng: np.random.Generator, palette: Sequence[RGB]) -> RGB:
    return palette[int(rng.integers(len(palette)))]


def choose(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    probs = np.asarray([weights[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=probs / probs.sum()))]


class Pen:
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


def draw_legs(p: Pen, xs: Sequence[float], y0: float, y1: float, width: float, fill: RGB) -> None:
    for x in xs:
        p.rect(x - width / 2, y0, x + width / 2, y1, fill)


# ------------------------------------------------------------------------- backgrounds


def unit_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return y / max(h - 1, 1), x / max(w - 1, 1)


def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Value noise in [0, 1]: a coarse random grid, bilinearly upsampled."""
    coarse = Image.fromarray((rng.random((cells, cells)) * 255).astype(np.uint8))
    return np.asarray(coarse.resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0


def vgrad(h: int, w: int, top: Sequence[float], bottom: Sequence[float]) -> np.ndarray:
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    return (np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t) * np.ones((1, w, 1), np.float32)


def textured(rng: np.random.Generator, h: int, w: int, base: Sequence[float], amount: float, cells: int) -> np.ndarray:
    n = smooth_noise(rng, h, w, cells)[..., None] - 0.5
    return np.asarray(base, np.float32)[None, None, :] * (1.0 + amount * n) * np.ones((h, w, 1), np.float32)


def scene(kind: str, rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, float]:
    """A background (float HxWx3 in 0..255) and the height (0..1) of its ground line."""
    if kind == "sky":
        top = jitter((90, 150, 225), rng, sat=0.2)
        img = vgrad(h, w, top, shade(top, 1.5))
        clouds = np.clip(smooth_noise(rng, h, w, 4) * 2.2 - 1.3, 0, 1)[..., None] * rng.uniform(0.3, 0.9)
        return img * (1 - clouds) + 245 * clouds, 1.1
    if kind == "water":
        horizon = rng.uniform(0.3, 0.6)
        sky = vgrad(h, w, jitter((120, 170, 230), rng), (210, 225, 240))
        sea_col = jitter((30, 80, 130), rng, hue=0.05)
        y, x = unit_grid(h, w)
        waves = 0.12 * np.sin(y * rng.uniform(40, 90) + smooth_noise(rng, h, w, 3) * 6)[..., None]
        sea = np.asarray(sea_col, np.float32) * (1 + waves)
        return np.where((y < horizon)[..., None], sky, sea), horizon
    if kind == "road":
        horizon = rng.uniform(0.35, 0.6)
        upper = textured(rng, h, w, jitter(pick(rng, [(150, 150, 150), (120, 140, 170), (170, 160, 140)]), rng),
                          0.5, 6)
        road = textured(rng, h, w, jitter((85, 85, 90), rng, sat=0.05), 0.25, 12)
        y, x = unit_grid(h, w)
        img = np.where((y < horizon)[..., None], upper, road)
        if rng.random() < 0.5:  # a lane marking
            band = (np.abs(y - rng.uniform(horizon + 0.15, 0.95)) < 0.02) & (np.sin(x * 25) > 0)
            img[band] = (220, 210, 120)
        return img, horizon
    if kind in ("grass", "forest", "mud"):
        base = {"grass": (90, 150, 60), "forest": (40, 80, 40), "mud": (110, 90, 60)}[kind]
        ground = textured(rng, h, w, jitter(base, rng, hue=0.04), 0.7 if kind == "forest" else 0.45,
                           10 if kind == "forest" else 16)
        if kind == "grass" and rng.random() < 0.6:  # some sky above the field
            horizon = rng.uniform(0.15, 0.45)
            sky = vgrad(h, w, jitter((130, 180, 235), rng), (220, 230, 240))
            y, _ = unit_grid(h, w)
            return np.where((y < horizon)[..., None], sky, ground), horizon
        return ground, 0.0
    if kind == "indoor":
        horizon = rng.uniform(0.45, 0.75)
        wall = textured(rng, h, w, jitter(pick(rng, [(220, 205, 180), (200, 210, 215), (230, 220, 200),
                                                         (190, 170, 150)]), rng), 0.15, 4)
        floor_col = jitter(pick(rng, [(150, 100, 60), (120, 80, 50), (170, 150, 130), (100, 100, 110)]), rng)
        y, x = unit_grid(h, w)
        floor = np.asarray(floor_col, np.float32) * (1 + 0.12 * np.sin(x * rng.uniform(20, 60)))[..., None]
        return np.where((y < horizon)[..., None], wall, floor), horizon
    if kind == "snow":
        return textured(rng, h, w, jitter((235, 238, 245), rng, sat=0.3, val=0.05), 0.12, 8), 0.0
    if kind == "sand":
        return textured(rng, h, w, jitter((215, 190, 140), rng), 0.2, 14), 0.0
    # "random": any colour, a gradient or some texture
    a = np.asarray(jitter((rng.integers(0, 256), rng.integers(0, 256), rng.integers(0, 256)), rng), np.float32)
    b = np.asarray(jitter((rng.integers(0, 256), rng.integers(0, 256), rng.integers(0, 256)), rng), np.float32)
    img = vgrad(h, w, a, b) if rng.random() < 0.5 else textured(rng, h, w, a, 0.6, int(rng.integers(3, 12)))
    return img, 0.0


def finish(canvas: np.ndarray, layer: Image.Image, rng: np.random.Generator, size: tuple[int, int],
            noise: tuple[float, float], blur: float) -> np.ndarray:
    """Composite the object layer, downscale to ``size`` (w, h), light, blur and add noise."""
    base = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8)).convert("RGBA")
    base.alpha_composite(layer)
    image = base.convert("RGB").resize(size, Image.LANCZOS)
    if rng.random() < blur:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
    out = np.asarray(image, dtype=np.float32)
    h, w = out.shape[:2]
    y, x = unit_grid(h, w)
    light = 1.0 + rng.uniform(-0.25, 0.25) * (x - 0.5) + rng.uniform(-0.25, 0.25) * (y - 0.5)
    gain = rng.uniform(0.75, 1.2) * np.asarray(jitter((255, 255, 255), rng, hue=0.0, sat=0.0, val=0.0), np.float32)
    cast = 1.0 + rng.normal(0.0, 0.05, 3).astype(np.float32)
    out = (out - 128) * rng.uniform(0.8, 1.15) + 128
    out = out * light[..., None] * cast * (gain / 255.0)
    out += rng.normal(0.0, rng.uniform(*noise), out.shape).astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
