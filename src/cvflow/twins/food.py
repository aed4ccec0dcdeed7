"""Procedural "food photos": an offline stand-in for ImageNet food classes and the d2l hotdog set.

The d2l.ai fine-tuning experiment pretrains ResNet-18 on ImageNet (which has a ``hotdog``
class) and fine-tunes it on a small "hot dog vs not hot dog" data set. This module draws
both kinds of data itself, so the experiment runs with no download:

* :func:`render_batch` builds an in-memory *source* set over :data:`FOOD_CLASSES`;
* :func:`render_food` draws one image, e.g. for writing a hotdog twin to disk.

Each image shows one food item on a random scene: a flat, gradient, noisy, striped,
checked (table cloth), wooden or speckled background, an optional plate, 0-3 small
distractor shapes, a soft shadow, random position, scale (30-90 % of the frame), rotation,
per-instance colour jitter, a lighting gradient, a colour cast, mild blur and sensor noise,
and now and then a partial occlusion or an item cut by the frame border.

The classes include hard negatives for the hot dog: a plain bread roll / baguette, a sub
sandwich (a bun with green filling), a banana, a carrot and nigiri sushi are all
elongated, so telling a hot dog apart needs its specifics: a reddish-brown sausage lying in
a pale bun, sausage ends sticking out, optional mustard zig-zag or ketchup line.

Items are drawn with PIL at twice the final resolution and downscaled with LANCZOS
(anti-aliasing); backgrounds are numpy arrays at the final resolution. Everything is
deterministic given the random generator's state.
"""

from __future__ import annotations

import colorsys
import math
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from cvflow.twins.raster import (RGB, blob, dark, distractor, dot, ellipse_poly, light, mix, pixel_grid,
                                      random_hsv, table_background)

__all__ = ["FOOD_CLASSES", "render_food", "render_batch"]

FOOD_CLASSES: tuple[str, ...] = (
    "hotdog",
    "pizza",
    "donut",
    "burger",
    "baguette",
    "banana",
    "sub_sandwich",
    "sushi",
    "fried_egg",
    "carrot",
)

_SS = 2  # supersampling factor for the drawn item
Tone = tuple[float, float, float]
DrawFn = Callable[[ImageDraw.ImageDraw, float, float], None]


# --------------------------------------------------------------------------- colours


def _tone(rng: np.random.Generator, strength: float = 1.0) -> Tone:
    """A per-instance colour shift (hue offset, saturation and value factors) for one item."""
    return (
        float(rng.normal(0.0, 0.02 * strength)),
        float(rng.normal(0.0, 0.12 * strength)),
        float(rng.normal(0.0, 0.10 * strength)),
    )


def _col(rgb: Sequence[float], tone: Tone, rng: np.random.Generator, spread: float = 0.04) -> RGB:
    """``rgb`` shifted by the item's tone plus a little per-colour noise."""
    h, s, v = colorsys.rgb_to_hsv(rgb[0] / 255.0, rgb[1] / 255.0, rgb[2] / 255.0)
    h = (h + tone[0] + rng.normal(0.0, spread * 0.25)) % 1.0
    s = min(max(s * (1.0 + tone[1] + rng.normal(0.0, spread)), 0.0), 1.0)
    v = min(max(v * (1.0 + tone[2] + rng.normal(0.0, spread)), 0.0), 1.0)
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return (int(r * 255 + 0.5), int(g * 255 + 0.5), int(b * 255 + 0.5))


def _wavy_band(x0: float, x1: float, y0: float, y1: float, rng: np.random.Generator,
               amp: float, n: int = 14) -> list[tuple[float, float]]:
    """A horizontal band with ragged top and bottom edges (lettuce, cheese)."""
    xs = np.linspace(x0, x1, n)
    top = y0 + amp * rng.uniform(-1.0, 1.0, n)
    bot = y1 + amp * rng.uniform(-1.0, 1.0, n)
    return list(zip(xs.tolist(), top.tolist())) + list(zip(xs[::-1].tolist(), bot[::-1].tolist()))


def _capsule(d: ImageDraw.ImageDraw, x0: float, y0: float, x1: float, y1: float,
             fill: RGB, radius: float | None = None) -> None:
    if x1 - x0 < 1 or y1 - y0 < 1:
        return
    r = min(x1 - x0, y1 - y0) / 2.0 if radius is None else min(radius, (x1 - x0) / 2, (y1 - y0) / 2)
    d.rounded_rectangle([x0, y0, x1, y1], radius=max(r, 0.0), fill=fill)


# --------------------------------------------------------------------------- food items
#
# Each ``_spec_*`` draws its random choices up front and returns (aspect, max_rotation, draw)
# where ``aspect`` is the height/width ratio of the item's own canvas, ``max_rotation`` the
# largest rotation in degrees that still looks natural (side views stay upright) and
# ``draw(d, w, h)`` paints the item into a transparent w x h canvas.

_BUN = (222, 168, 98)
_SAUSAGES = ((176, 72, 46), (158, 60, 40), (192, 92, 62), (140, 52, 36), (185, 80, 70))


def _bun(d: ImageDraw.ImageDraw, x0: float, x1: float, y0: float, y1: float, bun: RGB,
         crust: RGB, e: float) -> None:
    """A rounded bread roll seen from above: darker crust rim, lighter top."""
    _capsule(d, x0, y0, x1, y1, crust, radius=(y1 - y0) * 0.45)
    _capsule(d, x0 + e, y0 + e, x1 - e, y1 - e, bun, radius=(y1 - y0) * 0.42)
    _capsule(d, x0 + 2.5 * e, y0 + 1.5 * e, x1 - 2.5 * e, y0 + (y1 - y0) * 0.3,
             light(bun, 0.18), radius=(y1 - y0) * 0.2)


def _sausage(d: ImageDraw.ImageDraw, rng: np.random.Generator, x0: float, x1: float, cy: float,
             t: float, col: RGB) -> None:
    _capsule(d, x0, cy - t / 2 + t * 0.1, x1, cy + t / 2 + t * 0.08, dark(col, 0.4))
    _capsule(d, x0, cy - t / 2, x1, cy + t / 2, col)
    _capsule(d, x0 + t * 0.3, cy - t * 0.34, x1 - t * 0.3, cy - t * 0.12, light(col, 0.28))
    if rng.random() < 0.3:  # grill marks
        n = int(rng.integers(4, 9))
        for x in np.linspace(x0 + t, x1 - t, n):
            d.line([(x - t * 0.2, cy - t * 0.4), (x + t * 0.2, cy + t * 0.4)],
                   fill=dark(col, 0.5), width=max(1, int(t * 0.1)))


def _condiments(d: ImageDraw.ImageDraw, rng: np.random.Generator, tone: Tone, x0: float,
                x1: float, cy: float, t: float) -> None:
    tone = (tone[0] * 0.3, tone[1] * 0.5, tone[2])  # sauces keep their hue
    u = rng.random()
    mustard = u < 0.45 or u > 0.85
    ketchup = 0.45 <= u < 0.7 or u > 0.85
    if ketchup:
        n = 40
        xs = np.linspace(x0 + t * 0.6, x1 - t * 0.6, n)
        ph, k = rng.uniform(0, 6.3), rng.uniform(3, 8)
        ys = cy + t * 0.22 * np.sin(np.linspace(0, k * math.pi, n) + ph) - t * 0.05
        d.line(list(zip(xs.tolist(), ys.tolist())), fill=_col((200, 30, 25), tone, rng),
               width=max(1, int(t * rng.uniform(0.13, 0.2))), joint="curve")
    if mustard:
        n = int(rng.integers(5, 12)) * 2 + 1
        xs = np.linspace(x0 + t * 0.7, x1 - t * 0.7, n)
        ys = cy + t * 0.3 * np.where(np.arange(n) % 2 == 0, -1.0, 1.0)
        d.line(list(zip(xs.tolist(), ys.tolist())), fill=_col((242, 202, 32), tone, rng, 0.02),
               width=max(1, int(t * rng.uniform(0.13, 0.2))), joint="curve")
    if rng.random() < 0.12:  # relish or onions
        c = (90, 150, 40) if rng.random() < 0.5 else (240, 240, 225)
        for _ in range(int(rng.integers(6, 14))):
            dot(d, rng.uniform(x0 + t, x1 - t), cy + rng.uniform(-0.3, 0.3) * t, t * 0.07, c)


def _spec_hotdog(rng: np.random.Generator, tone: Tone):
    side = rng.random() < 0.3
    aspect = rng.uniform(0.34, 0.46) if side else rng.uniform(0.3, 0.42)
    bun = _col(_BUN, tone, rng)
    if rng.random() < 0.3:
        bun = dark(bun, 0.15)  # toasted
    crust = dark(bun, 0.25)
    crumb = mix(bun, (252, 238, 205), 0.55)
    sausage = _col(_SAUSAGES[int(rng.integers(len(_SAUSAGES)))], tone, rng)
    sticks = rng.random() > 0.12
    ins_l = rng.uniform(0.05, 0.14) if sticks else 0.0
    ins_r = rng.uniform(0.05, 0.14) if sticks else 0.0
    tk = rng.uniform(0.38, 0.5)
    dy = rng.uniform(-0.04, 0.04)

    def draw(d: ImageDraw.ImageDraw, w: float, h: float) -> None:
        bx0, bx1 = ins_l * w, w - ins_r * w
        sx0, sx1 = (0.0, w) if sticks else (0.06 * w, 0.94 * w)
        e = h * 0.06
        if side:  # 3/4 view: back half, sausage, front half of the bun
            t = h * (tk - 0.04)
            cy = h * (0.46 + dy * 0.5)
            _capsule(d, bx0, 0, bx1, h * 0.58, crust, radius=h * 0.26)
            _capsule(d, bx0 + e, e, bx1 - e, h * 0.55, light(bun, 0.08), radius=h * 0.24)
            _capsule(d, bx0 + 2 * e, h * 0.28, bx1 - 2 * e, h * 0.6, crumb, radius=h * 0.12)
            _sausage(d, rng, sx0, sx1, cy, t, sausage)
            _condiments(d, rng, tone, sx0, sx1, cy - t * 0.1, t)
            _capsule(d, bx0, h * 0.56, bx1, h, crust, radius=h * 0.22)
            _capsule(d, bx0 + e, h * 0.56 + e * 0.6, bx1 - e, h - e, bun, radius=h * 0.2)
            _capsule(d, bx0 + 3 * e, h * 0.62, bx1 - 3 * e, h * 0.72, light(bun, 0.15))
        else:  # top view: bun halves either side of the sausage
            t = h * tk
            cy = h * (0.5 + dy)
            _bun(d, bx0, bx1, 0, h, bun, crust, e)
            _capsule(d, bx0 + 2 * e, cy - t * 0.78, bx1 - 2 * e, cy + t * 0.78, crumb,
                     radius=t * 0.5)
            _sausage(d, rng, sx0, sx1, cy, t, sausage)
            _condiments(d, rng, tone, sx0, sx1, cy, t)

    return aspect, (25.0 if side else 180.0), draw


def _spec_baguette(rng: np.random.Generator, tone: Tone):
    roll = rng.random() < 0.45  # an empty split bun: the hot dog minus the sausage
    if roll:
        aspect = rng.uniform(0.3, 0.45)
        bun = _col(_BUN, tone, rng)
        crust = dark(bun, 0.25)
        crumb = mix(bun, (252, 238, 205), 0.55)
        split = rng.random() < 0.6
        bw = rng.uniform(0.2, 0.45)

        def draw(d: ImageDraw.ImageDraw, w: float, h: float) -> None:
            e = h * 0.06
            _bun(d, 0, w, 0, h, bun, crust, e)
            if split:
                _capsule(d, 2 * e, h * (0.5 - bw / 2), w - 2 * e, h * (0.5 + bw / 2), crumb)
                _capsule(d, 4 * e, h * 0.49, w - 4 * e, h * 0.53, dark(crumb, 0.12))
            else:
                d.line([(3 * e, h * 0.5), (w - 3 * e, h * 0.5)], fill=dark(crust, 0.2),
                       width=max(1, int(h * 0.05)))
        return aspect, 180.0, draw

    aspect = rng.uniform(0.13, 0.24)
    crust = _col((205, 142, 62), tone, rng)
    score = mix(crust, (245, 220, 165), 0.6)
    n = int(rng.integers(3, 7))
    ang = rng.uniform(0.25, 0.6)

    def draw(d: ImageDraw.ImageDraw, w: float, h: float) -> None:
        _capsule(d, 0, 0, w, h, dark(crust, 0.2))
        _capsule(d, h * 0.05, h * 0.05, w - h * 0.05, h * 0.95, crust)
        _capsule(d, h * 0.3, h * 0.12, w - h * 0.3, h * 0.35, light(crust, 0.18))
        step = (w - h) / n
        for i in range(n):
            cx = h * 0.5 + step * (i + 0.5)
            d.polygon(ellipse_poly(cx, h * 0.5, step * 0.45, h * 0.13, ang), fill=score)

    return aspect, 180.0, draw


def _spec_sub(rng: np.random.Generator, tone: Tone):
    top = rng.random() < 0.45
    bread = _col((228, 185, 120), tone, rng)
    crust = dark(bread, 0.2)
    lettuce = _col((95, 170, 55), tone, rng)
    tomato = _col((215, 45, 35), tone, rng)
    cheese = _col((250, 210, 70), tone, rng)
    meat = _col((225, 140, 145), tone, rng)
    seeds = rng.random() < 0.3
    has_tomato, has_cheese, has_meat = rng.random() < 0.7, rng.random() < 0.5, rng.random() < 0.6
    if top:
        aspect = rng.uniform(0.3, 0.45)

        def draw(d: ImageDraw.ImageDraw, w: float, h: float) -> None:
            e = h * 0.06
            _bun(d, 0, w, 0, h, bread, crust, e)
            d.polygon(_wavy_band(e, w - e, h * 0.28, h * 0.72, rng, h * 0.06, 18), fill=lettuce)
            n = int(rng.integers(3, 7))
            for x in np.linspace(w * 0.15, w * 0.85, n):
                if has_cheese and rng.random() < 0.4:
                    s = h * 0.13
                    d.polygon([(x - s, h * 0.5 - s), (x + s, h * 0.5 - s * 0.6), (x + s * 0.7, h * 0.5 + s),
                               (x - s * 0.8, h * 0.5 + s * 0.8)], fill=cheese)
                elif has_tomato:
                    dot(d, x, h * (0.5 + rng.uniform(-0.06, 0.06)), h * 0.14, tomato)
                    dot(d, x, h * 0.5, h * 0.08, light(tomato, 0.3))
            if has_meat:
                d.polygon(_wavy_band(w * 0.1, w * 0.9, h * 0.44, h * 0.56, rng, h * 0.03), fill=meat)

        return aspect, 180.0, draw

    aspect = rng.uniform(0.36, 0.55)

    def draw(d: ImageDraw.ImageDraw, w: float, h: float) -> None:
        _capsule(d, w * 0.02, h * 0.62, w * 0.98, h, crust, radius=h * 0.15)
        _capsule(d, w * 0.03, h * 0.64, w * 0.97, h * 0.97, bread, radius=h * 0.13)
        if has_meat:
            d.polygon(_wavy_band(w * 0.03, w * 0.97, h * 0.56, h * 0.66, rng, h * 0.02), fill=meat)
        if has_cheese:
            d.polygon(_wavy_band(w * 0.03, w * 0.97, h * 0.52, h * 0.6, rng, h * 0.03), fill=cheese)
        if has_tomato:
            for x in np.linspace(w * 0.1, w * 0.9, int(rng.integers(3, 6))):
                d.chord([x - h * 0.13, h * 0.42, x + h * 0.13, h * 0.66], 0, 180, fill=tomato)
        d.polygon(_wavy_band(0, w, h * 0.44, h * 0.56, rng, h * 0.05, 20), fill=lettuce)
        _capsule(d, w * 0.02, 0, w * 0.98, h * 0.5, crust, radius=h * 0.25)
        _capsule(d, w * 0.03, h * 0.02, w * 0.97, h * 0.48, bread, radius=h * 0.23)
        _capsule(d, w * 0.1, h * 0.07, w * 0.6, h * 0.18, light(bread, 0.2))
        if seeds:
            for _ in range(int(rng.integers(8, 18))):
                x, y = rng.uniform(0.08, 0.92) * w, rng.uniform(0.08, 0.38) * h
                d.polygon(ellipse_poly(x, y, h * 0.03, h * 0.015, rng.uniform(0, 3), 6),
                          fill=(245, 235, 205))

    return aspect, 25.0, draw


def _spec_banana(rng: np.random.Generator, tone: Tone):
    aspect = rng.uniform(0.3, 0.42)
    ripe = rng.random()
    base = (205, 210, 70) if ripe < 0.2 else (246, 214, 62)
    col = _col(base, tone, rng)
    edge = mix(col, (150, 110, 30), 0.45)
    spots = ripe > 0.7
    curve = rng.uniform(0.35, 0.55)
    flip = rng.random() < 0.5

    def draw(d: ImageDraw.ImageDraw, w: float, h: float) -> None:
        t = np.linspace(0.0, 1.0, 26)
        cy = h * (0.72 - curve * np.sin(math.pi * t) * 0.8)
        th = h * 0.5 * np.sin(math.pi * (0.04 + 0.92 * t)) ** 0.5
        xs = t * w * 0.94 + w * 0.03
        if flip:
            xs = w - xs

        def outline(f: float) -> list[tuple[float, float]]:
            up = list(zip(xs.tolist(), (cy - th * f / 2).tolist()))
            lo = list(zip(xs[::-1].tolist(), (cy + th * f / 2)[::-1].tolist()))
            return up + lo

        d.polygon(outline(1.0), fill=edge)
        d.polygon(outline(0.8), fill=col)
        d.line(list(zip(xs[3:-3].tolist(), (cy - th * 0.12)[3:-3].tolist())),
               fill=light(col, 0.25), width=max(1, int(h * 0.05)))
        if spots:
            for _ in range(int(rng.integers(5, 14))):
                i = int(rng.integers(3, 23))
                dot(d, xs[i], cy[i] + rng.uniform(-0.3, 0.3) * th[i], h * 0.025, (110, 75, 30))
        # stem at the start, dark tip at the end
        x0, y0, x1 = xs[0], cy[0], xs[1]
        d.line([(x0, y0), (x0 - (x1 - x0) * 1.5, y0 - h * 0.05)], fill=(105, 110, 40),
               width=max(1, int(h * 0.09)))
        dot(d, xs[-1], cy[-1], h * 0.04, (70, 50, 25))

    return aspect, 180.0, draw


def _spec_carrot(rng: np.random.Generator, tone: Tone):
    aspect = rng.uniform(0.2, 0.3)
    col = _col((236, 122, 34), tone, rng)
    leaves = rng.random() < 0.65
    green = _col((70, 145, 45), tone, rng)
    top = rng.uniform(0.18, 0.28) if leaves else 0.02
    n_ridges = int(rng.integers(5, 10))

    def draw(d: ImageDraw.ImageDraw, w: float, h: float) -> None:
        x0 = top * w
        xs = np.linspace(x0, w, 20)
        half = h * 0.36 * (1.0 - ((xs - x0) / (w - x0)) ** 1.4) + h * 0.02
        body = list(zip(xs.tolist(), (h / 2 - half).tolist())) + \
            list(zip(xs[::-1].tolist(), (h / 2 + half)[::-1].tolist()))
        if leaves:
            for a in np.linspace(-0.55, 0.55, int(rng.integers(4, 8))):
                a = a + rng.normal(0, 0.08)
                ex, ey = x0 - x0 * math.cos(a), h / 2 + x0 * math.sin(a) * 1.5
                d.line([(x0 + h * 0.1, h / 2), (ex, ey)], fill=green, width=max(1, int(h * 0.07)))
                for f in (0.45, 0.75):
                    lx, ly = x0 + (ex - x0) * f, h / 2 + (ey - h / 2) * f
                    d.polygon(ellipse_poly(lx, ly, h * 0.12, h * 0.05, a + rng.normal(0, 0.6), 8),
                              fill=light(green, 0.1))
        d.polygon(body, fill=dark(col, 0.15))
        d.ellipse([x0 - h * 0.1, h * 0.13, x0 + h * 0.12, h * 0.87], fill=dark(col, 0.15))
        inner = list(zip(xs.tolist(), (h / 2 - half * 0.8).tolist())) + \
            list(zip(xs[::-1].tolist(), (h / 2 + half * 0.85)[::-1].tolist()))
        d.polygon(inner, fill=col)
        d.line([(x0 + h * 0.1, h * 0.36), (w * 0.7, h * 0.45)], fill=light(col, 0.2),
               width=max(1, int(h * 0.06)))
        for x in rng.uniform(x0 + h * 0.2, w * 0.85, n_ridges):
            hh = h * 0.36 * (1.0 - ((x - x0) / (w - x0)) ** 1.4) * 0.7
            y = h / 2 + rng.uniform(-0.3, 0.3) * hh
            d.line([(x, y - hh * 0.4), (x + h * 0.03, y + hh * 0.4)], fill=dark(col, 0.25),
                   width=max(1, int(h * 0.035)))

    return aspect, 180.0, draw


def _spec_pizza(rng: np.random.Generator, tone: Tone):
    slice_ = rng.random() < 0.35
    crust = _col((212, 152, 80), tone, rng)
    sauce = _col((192, 48, 28), tone, rng)
    cheese = _col((247, 205, 115), tone, rng)
    pep = _col((168, 38, 32), tone, rng)
    extra = rng.random()

    def toppings(d, pts, r):
        for x, y in pts:
            if extra < 0.25 and rng.random() < 0.35:  # olives
                dot(d, x, y, r * 0.7, (35, 30, 30))
                dot(d, x, y, r * 0.3, cheese)
            elif extra > 0.8 and rng.random() < 0.4:  # green pepper
                d.arc([x - r, y - r, x + r, y + r], rng.uniform(0, 360), rng.uniform(0, 360) + 180,
                      fill=(60, 140, 50), width=max(1, int(r * 0.4)))
            else:
                dot(d, x, y, r, dark(pep, 0.2))
                dot(d, x, y, r * 0.82, pep)

    if slice_:
        aspect = rng.uniform(0.8, 1.0)

        def draw(d: ImageDraw.ImageDraw, w: float, h: float) -> None:
            d.polygon([(w * 0.1, 0), (w * 0.1, h), (w, h / 2)], fill=sauce)
            d.polygon([(w * 0.14, h * 0.08), (w * 0.14, h * 0.92), (w * 0.9, h / 2)], fill=cheese)
            d.chord([-w * 0.08, -h * 0.02, w * 0.3, h * 1.02], 90, 270, fill=dark(crust, 0.2))
            d.chord([-w * 0.05, h * 0.02, w * 0.27, h * 0.98], 90, 270, fill=crust)
            _capsule(d, w * 0.03, h * 0.02, w * 0.2, h * 0.98, crust)
            pts = []
            for _ in range(int(rng.integers(2, 5))):
                x = rng.uniform(0.3, 0.7) * w
                half = (w - x) / (w * 0.9) * h / 2 * 0.8
                pts.append((x, h / 2 + rng.uniform(-0.6, 0.6) * half))
            toppings(d, pts, w * 0.07)

        return aspect, 180.0, draw

    aspect = rng.uniform(0.9, 1.0)
    n = int(rng.integers(4, 11))
    cuts = rng.random() < 0.5

    def draw(d: ImageDraw.ImageDraw, w: float, h: float) -> None:
        d.ellipse([0, 0, w, h], fill=dark(crust, 0.2))
        d.ellipse([w * 0.02, h * 0.02, w * 0.98, h * 0.98], fill=crust)
        d.ellipse([w * 0.09, h * 0.09, w * 0.91, h * 0.91], fill=sauce)
        d.polygon(blob(w / 2, h / 2, w * 0.38, h * 0.38, rng, 0.07), fill=cheese)
        pts = []
        for _ in range(n):
            a, r = rng.uniform(0, 2 * math.pi), math.sqrt(rng.random()) * 0.3
            pts.append((w / 2 + r * w * math.cos(a), h / 2 + r * h * math.sin(a)))
        toppings(d, pts, w * 0.06)
        if cuts:
            a0 = rng.uniform(0, math.pi)
            for k in range(int(rng.integers(2, 5))):
                a = a0 + k * math.pi / 3.5
                dx, dy = math.cos(a) * w * 0.45, math.sin(a) * h * 0.45
                d.line([(w / 2 - dx, h / 2 - dy), (w / 2 + dx, h / 2 + dy)],
                       fill=dark(cheese, 0.35), width=max(1, int(w * 0.012)))

    return aspect, 180.0, draw


def _spec_donut(rng: np.random.Generator, tone: Tone):
    aspect = rng.uniform(0.92, 1.0)
    dough = _col((206, 142, 72), tone, rng)
    kinds = ((242, 150, 185), (96, 56, 36), (246, 240, 228), (140, 190, 235), None)
    ic = kinds[int(rng.integers(len(kinds)))]
    icing = None if ic is None else _col(ic, tone, rng)
    sprinkles = icing is not None and rng.random() < 0.55
    hole = rng.uniform(0.16, 0.22)

    def draw(d: ImageDraw.ImageDraw, w: float, h: float) -> None:
        cx, cy = w / 2, h / 2
        d.ellipse([0, 0, w, h], fill=dark(dough, 0.18))
        d.ellipse([w * 0.03, h * 0.02, w * 0.97, h * 0.95], fill=dough)
        if icing is None:
            d.ellipse([w * 0.1, h * 0.08, w * 0.7, h * 0.45], fill=light(dough, 0.2))
        else:
            d.polygon(blob(cx, cy, w * 0.43, h * 0.42, rng, 0.05, 36), fill=icing)
            d.ellipse([w * 0.18, h * 0.12, w * 0.5, h * 0.3], fill=light(icing, 0.25))
        r = hole + 0.07
        d.ellipse([cx - w * r, cy - h * r, cx + w * r, cy + h * r], fill=dark(dough, 0.1))
        if sprinkles:
            cols = ((240, 60, 60), (60, 120, 230), (250, 230, 60), (80, 200, 90), (255, 255, 255))
            for _ in range(int(rng.integers(14, 30))):
                a, rr = rng.uniform(0, 2 * math.pi), rng.uniform(r + 0.03, 0.4)
                x, y = cx + rr * w * math.cos(a), cy + rr * h * math.sin(a)
                b = rng.uniform(0, math.pi)
                dx, dy = math.cos(b) * w * 0.025, math.sin(b) * w * 0.025
                d.line([(x - dx, y - dy), (x + dx, y + dy)], fill=cols[int(rng.integers(5))],
                       width=max(1, int(w * 0.018)))
        d.ellipse([cx - w * hole, cy - h * hole, cx + w * hole, cy + h * hole], fill=(0, 0, 0, 0))

    return aspect, 180.0, draw


def _spec_burger(rng: np.random.Generator, tone: Tone):
    aspect = rng.uniform(0.72, 0.95)
    bun = _col((215, 150, 70), tone, rng)
    patty = _col((98, 56, 36), tone, rng)
    lettuce = _col((100, 175, 55), tone, rng)
    cheese = _col((250, 190, 40), tone, rng)
    tomato = _col((210, 45, 35), tone, rng)
    has_cheese, has_tomato = rng.random() < 0.7, rng.random() < 0.5
    seeds = rng.random() < 0.65

    def draw(d: ImageDraw.ImageDraw, w: float, h: float) -> None:
        _capsule(d, w * 0.07, h * 0.78, w * 0.93, h, dark(bun, 0.12), radius=h * 0.08)
        _capsule(d, w * 0.02, h * 0.6, w * 0.98, h * 0.84, dark(patty, 0.2), radius=h * 0.08)
        _capsule(d, w * 0.03, h * 0.61, w * 0.97, h * 0.8, patty, radius=h * 0.07)
        for _ in range(12):
            dot(d, rng.uniform(0.08, 0.92) * w, rng.uniform(0.64, 0.78) * h, w * 0.008,
                 light(patty, 0.2))
        if has_cheese:
            pts = [(w * 0.03, h * 0.57), (w * 0.97, h * 0.57), (w * 0.97, h * 0.63)]
            for x in np.linspace(0.85, 0.15, 3):
                pts += [(w * (x + 0.07), h * 0.63), (w * x, h * 0.72), (w * (x - 0.07), h * 0.63)]
            pts.append((w * 0.03, h * 0.63))
            d.polygon(pts, fill=cheese)
        if has_tomato:
            _capsule(d, w * 0.06, h * 0.51, w * 0.94, h * 0.59, tomato, radius=h * 0.03)
        d.polygon(_wavy_band(0, w, h * 0.49, h * 0.58, rng, h * 0.025, 22), fill=lettuce)
        d.chord([w * 0.03, 0, w * 0.97, h * 1.06], 180, 360, fill=dark(bun, 0.15))
        d.chord([w * 0.04, h * 0.02, w * 0.96, h * 1.04], 180, 360, fill=bun)
        d.ellipse([w * 0.2, h * 0.06, w * 0.55, h * 0.2], fill=light(bun, 0.2))
        if seeds:
            for _ in range(int(rng.integers(8, 18))):
                a = rng.uniform(math.pi * 1.1, math.pi * 1.9)
                rr = rng.uniform(0.2, 0.9)
                x, y = w / 2 + rr * w * 0.44 * math.cos(a), h * 0.53 + rr * h * 0.5 * math.sin(a)
                d.polygon(ellipse_poly(x, y, w * 0.018, w * 0.01, rng.uniform(0, 3), 6),
                          fill=(248, 238, 205))

    return aspect, 20.0, draw


def _spec_sushi(rng: np.random.Generator, tone: Tone):
    maki = rng.random() < 0.4
    rice = _col((246, 245, 238), tone, rng, 0.01)
    nori = (32, 38, 30)
    if maki:
        n = int(rng.integers(1, 4))
        aspect = 1.0 / n
        fills = [_col(c, tone, rng) for c in ((240, 120, 80), (120, 190, 80), (200, 40, 60), (245, 205, 70))]

        def draw(d: ImageDraw.ImageDraw, w: float, h: float) -> None:
            for i in range(n):
                cx, cy, r = h * (i + 0.5), h / 2, h * 0.47
                dot(d, cx, cy, r, nori)
                dot(d, cx, cy, r * 0.84, rice)
                for _ in range(8):
                    a, rr = rng.uniform(0, 6.3), rng.uniform(0.4, 0.75) * r
                    dot(d, cx + rr * math.cos(a), cy + rr * math.sin(a), r * 0.05, dark(rice, 0.1))
                for k in range(int(rng.integers(1, 4))):
                    dot(d, cx + rng.uniform(-0.15, 0.15) * r, cy + rng.uniform(-0.15, 0.15) * r,
                         r * rng.uniform(0.18, 0.32), fills[int(rng.integers(4))])

        return aspect, 180.0, draw

    n = int(rng.integers(1, 4))
    aspect = n * rng.uniform(0.4, 0.5)
    fishes = ((246, 128, 80), (196, 36, 56), (240, 214, 190), (246, 206, 64))
    fish = [_col(fishes[int(rng.integers(4))], tone, rng) for _ in range(n)]

    def draw(d: ImageDraw.ImageDraw, w: float, h: float) -> None:
        ph = h / n
        for i in range(n):
            y0 = i * ph
            _capsule(d, w * 0.05, y0 + ph * 0.04, w * 0.95, y0 + ph * 0.96, dark(rice, 0.15))
            _capsule(d, w * 0.06, y0 + ph * 0.06, w * 0.94, y0 + ph * 0.93, rice)
            for _ in range(10):
                dot(d, rng.uniform(0.1, 0.9) * w, y0 + ph * rng.choice([0.12, 0.86]),
                     ph * 0.03, dark(rice, 0.12))
            _capsule(d, 0, y0 + ph * 0.2, w, y0 + ph * 0.76, dark(fish[i], 0.15), radius=ph * 0.2)
            _capsule(d, 0, y0 + ph * 0.18, w, y0 + ph * 0.72, fish[i], radius=ph * 0.2)
            if fish[i][0] > 230 and fish[i][1] < 170:  # salmon stripes
                for x in np.linspace(w * 0.15, w * 0.85, 5):
                    d.line([(x, y0 + ph * 0.22), (x + ph * 0.2, y0 + ph * 0.68)],
                           fill=light(fish[i], 0.45), width=max(1, int(ph * 0.06)))
            elif fish[i][1] > 190 and fish[i][2] < 120:  # tamago with a nori band
                d.rectangle([w * 0.42, y0 + ph * 0.05, w * 0.58, y0 + ph * 0.92], fill=nori)
            else:
                _capsule(d, w * 0.1, y0 + ph * 0.24, w * 0.7, y0 + ph * 0.34, light(fish[i], 0.3))

    return aspect, 180.0, draw


def _spec_egg(rng: np.random.Generator, tone: Tone):
    aspect = rng.uniform(0.75, 1.0)
    white = _col((250, 250, 244), tone, rng, 0.01)
    yolk = _col((250, 172, 22), tone, rng)
    brown = rng.random() < 0.45
    yr = rng.uniform(0.15, 0.22)
    ox, oy = rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1)

    def draw(d: ImageDraw.ImageDraw, w: float, h: float) -> None:
        if brown:
            d.polygon(blob(w / 2, h / 2, w * 0.48, h * 0.48, rng, 0.09), fill=(212, 168, 105))
        d.polygon(blob(w / 2, h / 2, w * 0.44, h * 0.44, rng, 0.09), fill=white)
        cx, cy, r = w * (0.5 + ox), h * (0.5 + oy), yr * w
        dot(d, cx, cy + r * 0.08, r * 1.08, dark(white, 0.08))
        dot(d, cx, cy, r, dark(yolk, 0.1))
        dot(d, cx - r * 0.05, cy - r * 0.05, r * 0.9, yolk)
        d.ellipse([cx - r * 0.55, cy - r * 0.6, cx - r * 0.1, cy - r * 0.3], fill=light(yolk, 0.6))

    return aspect, 180.0, draw


_SPECS = {
    "hotdog": _spec_hotdog,
    "pizza": _spec_pizza,
    "donut": _spec_donut,
    "burger": _spec_burger,
    "baguette": _spec_baguette,
    "banana": _spec_banana,
    "sub_sandwich": _spec_sub,
    "sushi": _spec_sushi,
    "fried_egg": _spec_egg,
    "carrot": _spec_carrot,
}
assert set(_SPECS) == set(FOOD_CLASSES)


def _plate(rng: np.random.Generator, img: np.ndarray, cx: float, cy: float, r: float) -> None:
    """Paints a round (or oval) plate with a rim and a soft shadow into ``img`` in place."""
    h, w = img.shape[:2]
    xx, yy = pixel_grid(w, h)
    rx, ry = r * rng.uniform(0.9, 1.1), r * rng.uniform(0.75, 1.0)
    g = rng.uniform(200, 250)
    col = np.array(mix((g, g, g), random_hsv(rng, (0.2, 0.8), (0.4, 0.9)), rng.uniform(0, 1) ** 3),
                   dtype=np.float32)
    if rng.random() < 0.15:
        col = np.array(random_hsv(rng, (0.0, 0.4), (0.1, 0.3)), dtype=np.float32)
    sx, sy = r * 0.05, r * 0.07
    # work on the plate's bounding box only
    x0, x1 = max(0, int(cx - rx * 1.1)), min(w, int(cx + rx * 1.2) + 2)
    y0, y1 = max(0, int(cy - ry * 1.1)), min(h, int(cy + ry * 1.2) + 2)
    if x0 >= x1 or y0 >= y1:
        return
    xs = (xx[0, x0:x1] - cx)[None, :]
    ys = (yy[y0:y1, 0] - cy)[:, None]
    sub = img[y0:y1, x0:x1]
    rs = np.sqrt(((xs - sx) / rx) ** 2 + ((ys - sy) / ry) ** 2)
    shadow = np.clip((1.05 - rs) * 6.0, 0.0, 1.0) * 0.35
    sub *= (1.0 - shadow)[..., None]
    rr = np.sqrt((xs / rx) ** 2 + (ys / ry) ** 2)
    alpha = np.clip((1.0 - rr) * min(rx, ry) + 0.5, 0.0, 1.0)[..., None]
    rim = np.clip((rr - 0.74) * min(rx, ry) * 0.5, 0.0, 1.0)[..., None]
    sub += (col * (0.93 + 0.07 * rim) - sub) * alpha


def _item(kind: str, rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """The RGBA item sprite at its final size (rotated, anti-aliased, transparent around it)."""
    tone = _tone(rng)
    aspect, max_rot, draw = _SPECS[kind](rng, tone)
    rot = rng.uniform(-max_rot, max_rot)
    if max_rot >= 180 and rng.random() < 0.5:
        rot = float(rng.choice([0.0, 90.0, 180.0, -90.0])) + rng.normal(0, 12)  # mostly axis-aligned
    th = math.radians(rot)
    c, s = abs(math.cos(th)), abs(math.sin(th))
    bw, bh = c + aspect * s, s + aspect * c  # rotated bounding box of a 1 x aspect canvas
    frac = 0.3 + 0.6 * rng.random() ** 0.8
    k = frac * min(w / bw, h / bh)  # item length in final pixels
    cw, ch = max(4, int(round(k * _SS))), max(4, int(round(k * aspect * _SS)))
    sprite = Image.new("RGBA", (cw, ch), (0, 0, 0, 0))
    draw(ImageDraw.Draw(sprite), float(cw), float(ch))
    # Premultiplied alpha for the resampling steps (no dark fringes); bilinear rotation at
    # the supersampled size followed by a 2x2 box reduction is the anti-aliasing.
    sprite = sprite.convert("RGBa")
    if abs(rot) > 0.5:
        sprite = sprite.rotate(rot, resample=Image.BILINEAR, expand=True)
    return sprite.reduce(_SS).convert("RGBA")


def _check_kind(kind: str) -> None:
    if kind not in _SPECS:
        raise ValueError(f"unknown food kind {kind!r}; allowed kinds: {', '.join(FOOD_CLASSES)}")


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be a (width, height) pair of ints, got {size!r}") from None
    if w < 8 or h < 8:
        raise ValueError(f"size must be at least (8, 8), got {size!r}")
    return w, h


def render_food(kind: str, rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """Draws one ``kind`` item on a random scene as an RGB image of ``size`` = (width, height).

    The result depends only on ``kind``, ``size`` and the generator's state (which it
    advances). Raises ValueError for a kind not in :data:`FOOD_CLASSES`.
    """
    _check_kind(kind)
    w, h = _check_size(size)

    sprite = _item(kind, rng, w, h)
    sw, sh = sprite.size
    cut = rng.random() < 0.15  # let the frame border cut the item
    mx, my = (0.3 * sw, 0.3 * sh) if cut else (0.0, 0.0)
    x = int(round(rng.uniform(-mx, max(w - sw, 0) + mx)))
    y = int(round(rng.uniform(-my, max(h - sh, 0) + my)))

    bg = table_background(rng, w, h)
    if rng.random() < 0.4:
        r = 0.5 * math.hypot(sw, sh) * rng.uniform(0.8, 1.15)
        _plate(rng, bg, x + sw / 2 + rng.normal(0, 0.05 * sw), y + sh / 2 + rng.normal(0, 0.05 * sh), r)
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))

    d = ImageDraw.Draw(img)
    n_dis = int(rng.choice(4, p=[0.35, 0.3, 0.2, 0.15]))
    over = [rng.random() < 0.2 for _ in range(n_dis)]
    for i in range(n_dis):
        if not over[i]:
            distractor(rng, d, w, h)

    alpha = sprite.getchannel("A")
    if rng.random() < 0.8:  # soft shadow below the item
        blur = max(1.0, min(sw, sh) * rng.uniform(0.04, 0.1))
        shadow = alpha.filter(ImageFilter.BoxBlur(blur)).point(lambda v, f=rng.uniform(0.25, 0.5): int(v * f))
        off = max(1, int(min(sw, sh) * rng.uniform(0.03, 0.08)))
        img.paste((0, 0, 0), (x + off, y + off, x + off + sw, y + off + sh), shadow)
    img.paste(sprite, (x, y), alpha)

    for i in range(n_dis):
        if over[i]:
            distractor(rng, d, w, h)
    if rng.random() < 0.12:  # a partial occluder (napkin, cup, hand...) from a border
        side = int(rng.integers(4))
        depth = rng.uniform(0.15, 0.35)
        col = random_hsv(rng, (0.0, 0.6), (0.3, 1.0))
        t0, t1 = sorted(rng.uniform(0, 1, 2))
        t1 = min(1.0, t1 + 0.3)
        # (distance from the border, position along it), both as fractions of the frame
        shape = [(0.0, t0), (depth, t0 + 0.1), (depth * 0.8, t1), (0.0, t1)]
        to_xy = (lambda q, t: (q * w, t * h), lambda q, t: ((1 - q) * w, t * h),
                 lambda q, t: (t * w, q * h), lambda q, t: (t * w, (1 - q) * h))[side]
        d.polygon([to_xy(q, t) for q, t in shape], fill=col)

    if rng.random() < 0.3:  # mild defocus (a box blur: a third of the cost of a Gaussian)
        img = img.filter(ImageFilter.BoxBlur(rng.uniform(0.3, 1.0) * min(w, h) / 96.0))

    # global photometry: colour cast, lighting gradient, sensor noise
    # (rows of interleaved RGB: numpy is fast on long inner dimensions)
    out = np.asarray(img, dtype=np.float32).reshape(h, w * 3)
    a = rng.uniform(0, 2 * math.pi)
    g = rng.uniform(0.0, 0.4) / max(w, h)
    gain = (rng.uniform(0.8, 1.15) * (1.0 + rng.normal(0.0, 0.05, 3))).astype(np.float32)
    lx = (np.arange(w, dtype=np.float32) - (w - 1) / 2) * np.float32(g * math.cos(a))
    ly = (np.arange(h, dtype=np.float32) - (h - 1) / 2) * np.float32(g * math.sin(a))
    factor = (1.0 + ly)[:, None] * np.tile(gain, w)[None, :]
    factor += (lx[:, None] * gain[None, :]).reshape(1, w * 3)
    out *= factor
    sigma = rng.uniform(0.0, 7.0)
    if sigma > 1.0:  # uniform per-channel noise with standard deviation sigma
        k = np.float32(sigma / 73.9)
        out += np.multiply(rng.integers(0, 256, (h, w * 3), dtype=np.uint8), k, dtype=np.float32)
        out -= np.float32(127.5) * k
    np.clip(out, 0, 255, out=out)
    return Image.fromarray(out.astype(np.uint8).reshape(h, w, 3))


def render_batch(kinds: Sequence[str], seed: int, size: tuple[int, int]) -> np.ndarray:
    """Renders ``kinds[i]`` as image ``i``: a uint8 array (N, H, W, 3) for ``size`` = (W, H).

    Image ``i`` is drawn from its own generator seeded with ``(seed, i)``, so the batch is
    deterministic for a seed and an image does not change when other entries change.
    """
    for kind in set(kinds):
        _check_kind(kind)
    w, h = _check_size(size)
    out = np.empty((len(kinds), h, w, 3), dtype=np.uint8)
    for i, kind in enumerate(kinds):
        rng = np.random.default_rng([int(seed), i])
        out[i] = np.asarray(render_food(kind, rng, (w, h)))
    return out
