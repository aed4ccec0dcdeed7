"""Stand-ins for the book's sample photos (chapter 13), drawn offline, of the real sizes.

On ``catdog.jpg`` a dog-like and a cat-like figure fill exactly the book's boxes
(:data:`cvflow.data.sources.photos.CATDOG_BOXES`), ``rainier.jpg`` is a mountain
landscape, ``autumn-oak.jpg`` a painterly texture of brush strokes and ``cat1.jpg`` a cat
lying on a dark blanket. :func:`render_photo` is deterministic given the seed.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from cvflow.data.readers.photos import CATDOG_BOXES, PHOTOS
from cvflow.twins.raster import value_noise

__all__ = ["render_photo"]


def _fbm(rng: np.random.Generator, w: int, h: int, octaves: Iterable[tuple[int, float]]) -> np.ndarray:
    """A sum of smooth noises (cells, weight), normalised to [0, 1]."""
    out = np.zeros((h, w), np.float32)
    for cells, weight in octaves:
        out += weight * value_noise(rng, w, h, cells)
    out -= out.min()
    return out / max(float(out.max()), 1e-6)


def _ridge(rng: np.random.Generator, w: int, base: float, amp: float, rough: float) -> np.ndarray:
    """A mountain ridge line (y per column): random midpoint-displaced peaks."""
    n = 2 ** int(math.ceil(math.log2(max(w, 2)))) + 1
    y = np.zeros(n)
    y[0], y[-1] = rng.normal(0, amp * 0.3), rng.normal(0, amp * 0.3)
    step, scale = n - 1, amp
    while step > 1:
        half = step // 2
        mids = (y[0:-1:step] + y[step::step]) / 2 + rng.normal(0, scale, len(y[0:-1:step]))
        y[half::step] = mids
        step, scale = half, scale * rough
    return base + y[:w]


def _figure(draw_fn: Callable[[ImageDraw.ImageDraw, float, float], None], box: tuple[float, float, float, float],
            rng: np.random.Generator, texture: Callable[[np.random.Generator, int, int], np.ndarray] | None = None
            ) -> tuple[Image.Image, tuple[int, int]]:
    """Draw a figure on a transparent canvas (2x supersampled), crop to its alpha and stretch
    it to fill ``box`` exactly: returns (RGBA sprite of the box's size, (left, top))."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    w, h = x2 - x1, y2 - y1
    cw, ch = w * 2, h * 2
    canvas = Image.new("RGBA", (cw, ch), (0, 0, 0, 0))
    draw_fn(ImageDraw.Draw(canvas), float(cw), float(ch))
    bbox = canvas.getchannel("A").getbbox()
    canvas = canvas.crop(bbox).resize((w, h), Image.LANCZOS)
    rgba = np.asarray(canvas).astype(np.float32)
    if texture is not None:
        rgba[..., :3] *= texture(rng, w, h)[..., None]
    alpha = rgba[..., 3]
    alpha[alpha < 24] = 0  # no faint resampling halo
    sprite = Image.fromarray(np.clip(rgba, 0, 255).astype(np.uint8), "RGBA")
    return sprite, (x1, y1)


def _fur(strength: float, cells: int = 60) -> Callable[[np.random.Generator, int, int], np.ndarray]:
    def texture(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
        fine = rng.random((h, w), dtype=np.float32)
        fine = np.asarray(Image.fromarray((fine * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.2)),
                          np.float32) / 255.0
        return (1.0 - strength) + strength * 2.0 * (0.5 * fine + 0.5 * value_noise(rng, w, h, cells)) * 0.9

    return texture


# --------------------------------------------------------------------------- the four photos


def _catdog(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    xx = np.arange(w, dtype=np.float32)[None, :, None]
    yy = np.arange(h, dtype=np.float32)[:, None, None]
    bg = np.full((h, w, 3), 250.0, np.float32) - 6.0 * (yy / h) - 2.0 * (xx / w)
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    # a soft contact shadow under both animals
    shadow = Image.new("L", (w, h), 0)
    ImageDraw.Draw(shadow).ellipse([70, 480, 680, 525], fill=40)
    img.paste((170, 165, 160), (0, 0), shadow.filter(ImageFilter.GaussianBlur(14)))

    tan, dark = (214, 158, 92), (70, 48, 32)

    def dog(d: ImageDraw.ImageDraw, W: float, H: float) -> None:
        def P(u, v):
            return (u * W, v * H)

        d.ellipse([*P(0.05, 0.42), *P(0.95, 0.98)], fill=tan)  # body, lying
        d.ellipse([*P(0.0, 0.82), *P(0.32, 1.0)], fill=tan)  # front paws
        d.ellipse([*P(0.55, 0.84), *P(0.9, 1.0)], fill=tan)
        for u in (0.06, 0.14, 0.22, 0.6, 0.68, 0.76):
            d.line([P(u, 0.95), P(u + 0.02, 0.99)], fill=(150, 105, 60), width=max(1, int(W * 0.01)))
        d.ellipse([*P(0.08, 0.0), *P(0.78, 0.48)], fill=tan)  # head
        d.polygon([P(0.62, 0.08), P(1.0, 0.14), P(0.96, 0.4), P(0.74, 0.36)], fill=(150, 95, 50))  # ear
        d.ellipse([*P(0.1, 0.2), *P(0.48, 0.47)], fill=dark)  # muzzle
        d.ellipse([*P(0.2, 0.22), *P(0.32, 0.3)], fill=(20, 18, 16))  # nose
        d.ellipse([*P(0.12, 0.13), *P(0.2, 0.19)], fill=(25, 25, 35))  # eyes
        d.ellipse([*P(0.4, 0.12), *P(0.5, 0.19)], fill=(25, 25, 35))
        d.ellipse([*P(0.3, 0.5), *P(0.62, 0.8)], fill=(236, 200, 150))  # chest

    def cat(d: ImageDraw.ImageDraw, W: float, H: float) -> None:
        grey = (128, 118, 108)

        def P(u, v):
            return (u * W, v * H)

        d.ellipse([*P(0.1, 0.35), *P(1.0, 0.95)], fill=grey)  # body
        d.ellipse([*P(0.28, 0.84), *P(0.55, 1.0)], fill=grey)  # paws
        d.ellipse([*P(0.7, 0.84), *P(0.98, 1.0)], fill=grey)
        d.ellipse([*P(0.0, 0.12), *P(0.62, 0.62)], fill=grey)  # head
        d.polygon([P(0.3, 0.2), P(0.38, 0.0), P(0.5, 0.26)], fill=grey)  # ears
        d.polygon([P(0.5, 0.3), P(0.68, 0.04), P(0.62, 0.38)], fill=grey)
        d.polygon([P(0.34, 0.17), P(0.38, 0.05), P(0.45, 0.22)], fill=(200, 160, 150))
        d.ellipse([*P(0.18, 0.3), *P(0.28, 0.38)], fill=(40, 40, 30))  # eyes
        d.ellipse([*P(0.38, 0.3), *P(0.48, 0.38)], fill=(40, 40, 30))
        d.ellipse([*P(0.06, 0.42), *P(0.26, 0.56)], fill=(205, 80, 90))  # open mouth
        d.ellipse([*P(0.3, 0.5), *P(0.6, 0.8)], fill=(215, 205, 195))  # chest
        for k in range(5):  # tabby stripes
            u = 0.6 + k * 0.06
            d.line([P(u, 0.46), P(u - 0.04, 0.8)], fill=(80, 72, 66), width=max(1, int(W * 0.025)))

    for fn, name, strength in ((dog, "dog", 0.25), (cat, "cat", 0.4)):
        sprite, at = _figure(fn, CATDOG_BOXES[name], rng, _fur(strength))
        img.paste(sprite, at, sprite)
    return img


def _rainier(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    yy = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    sky = np.array([110, 150, 200], np.float32) + (np.array([225, 232, 240], np.float32) - [110, 150, 200]) * yy * 2.2
    img = np.broadcast_to(np.clip(sky, 0, 255), (h, w, 3)).astype(np.float32).copy()
    cloud = _fbm(rng, w, h, ((4, 0.5), (10, 0.3), (30, 0.2)))
    band = np.exp(-((yy[..., 0] - 0.2) / 0.1) ** 2)
    img += ((240 - img) * np.clip((cloud - 0.45) * 2.5, 0, 1)[..., None] * band[..., None])
    rows = np.arange(h, dtype=np.float32)[:, None]
    layers = [  # base height (fraction of h), amplitude, colour, snow
        (0.36, 0.13, (150, 160, 185), True),
        (0.47, 0.1, (95, 105, 120), False),
        (0.57, 0.07, (70, 85, 70), False),
        (0.67, 0.05, (45, 70, 45), False),
    ]
    for base, amp, col, snow in layers:
        ridge = _ridge(rng, w, base * h, amp * h, 0.6)
        inside = rows >= ridge[None, :]
        shade = 0.8 + 0.4 * value_noise(rng, w, h, 40)
        layer = np.array(col, np.float32)[None, None, :] * shade[..., None]
        if snow:
            depth = (rows - ridge[None, :]) / (0.06 * h)
            white = np.clip(1.5 - depth + 1.5 * (value_noise(rng, w, h, 80) - 0.5), 0, 1)
            layer += (245 - layer) * white[..., None]
        img = np.where(inside[..., None], layer, img)
        img = img * 0.97 + np.array([200, 210, 225], np.float32) * 0.03  # aerial haze
    photo = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(photo)
    # conifers: many dark triangles, larger towards the bottom-left
    for _ in range(260):
        x = rng.uniform(-50, w * 0.75) if rng.random() < 0.7 else rng.uniform(0, w)
        y = rng.uniform(0.62, 1.05) * h
        s = (y / h - 0.55) * rng.uniform(120, 260)
        g = rng.uniform(0.5, 1.1)
        colour = (int(30 * g), int(70 * g), int(40 * g))
        for k in range(4):
            ty = y - s * (0.9 - 0.2 * k)
            half = s * (0.3 - 0.05 * k)
            d.polygon([(x - half, ty + s * 0.5), (x, ty - s * 0.3), (x + half, ty + s * 0.5)], fill=colour)
        d.line([(x, y), (x, y - s * 0.3)], fill=(60, 45, 30), width=max(1, int(s * 0.05)))
    # a lodge with a red roof, lower right
    lx, ly = int(w * 0.78), int(h * 0.8)
    d.rectangle([lx, ly, lx + 150, ly + 60], fill=(160, 110, 80))
    d.polygon([(lx - 10, ly), (lx + 75, ly - 45), (lx + 160, ly)], fill=(150, 70, 50))
    return photo.filter(ImageFilter.GaussianBlur(0.7))


def _autumn_oak(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    yy = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    base = np.array([70, 120, 230], np.float32) * (1 - yy) + np.array([235, 120, 40], np.float32) * yy
    photo = Image.fromarray(np.clip(np.broadcast_to(base, (h, w, 3)), 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(photo)
    flow = value_noise(rng, w, h, 6) * 2 * math.pi
    hill = _ridge(rng, w, 0.55 * h, 0.08 * h, 0.5)
    sky = [(60, 110, 230), (90, 150, 240), (40, 80, 200), (120, 170, 245), (70, 130, 210)]
    leaves = [(240, 110, 30), (225, 70, 25), (250, 160, 40), (200, 40, 30), (250, 200, 60), (230, 90, 60)]
    ground = leaves + [(120, 80, 170), (90, 70, 160), (200, 60, 120), (110, 160, 70)]
    crowns = [(w * 0.25, h * 0.3, w * 0.25, h * 0.25), (w * 0.7, h * 0.25, w * 0.3, h * 0.22)]
    for _ in range(7000):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        in_crown = any(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1 for cx, cy, rx, ry in crowns)
        if y > hill[min(int(x), w - 1)]:
            palette = ground
        elif in_crown and rng.random() < 0.85:
            palette = leaves
        else:
            palette = sky
        c = palette[int(rng.integers(len(palette)))]
        c = tuple(int(min(255, max(0, v * rng.uniform(0.85, 1.15)))) for v in c)
        a = float(flow[min(int(y), h - 1), min(int(x), w - 1)])
        length = rng.uniform(12, 40)
        d.line([(x, y), (x + length * math.cos(a), y + length * math.sin(a))], fill=c,
               width=int(rng.integers(5, 13)), joint="curve")
    # trunks and branches in cream and dark brown
    for tx, col in ((w * 0.62, (235, 220, 170)), (w * 0.22, (60, 35, 25))):
        d.line([(tx, h * 0.7), (tx + 10, h * 0.35)], fill=col, width=48)
        for _ in range(9):
            y0 = rng.uniform(0.35, 0.6) * h
            a = rng.uniform(-2.6, -0.5)
            L = rng.uniform(0.15, 0.35) * h
            pts = [(tx, y0)]
            for _ in range(4):
                a += rng.normal(0, 0.3)
                x0, y1 = pts[-1]
                pts.append((x0 + L / 4 * math.cos(a), y1 + L / 4 * math.sin(a)))
            d.line(pts, fill=col, width=int(rng.integers(6, 16)), joint="curve")
    return photo


def _cat1(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    folds = _fbm(rng, w, h, ((3, 0.6), (9, 0.4)))
    bg = np.array([38, 40, 48], np.float32)[None, None, :] * (0.7 + 0.6 * folds[..., None])
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    d.polygon([(0, 0), (0.42 * w, 0), (0.3 * w, 0.22 * h), (0, 0.28 * h)], fill=(92, 60, 38))  # a dresser corner
    fur = (226, 160, 90)

    def cat(dd: ImageDraw.ImageDraw, W: float, H: float) -> None:
        def P(u, v):
            return (u * W, v * H)

        dd.ellipse([*P(0.2, 0.25), *P(0.85, 0.8)], fill=fur)  # belly up
        dd.ellipse([*P(0.02, 0.35), *P(0.25, 0.62)], fill=fur)  # head
        dd.polygon([P(0.04, 0.38), P(0.0, 0.3), P(0.1, 0.36)], fill=fur)
        dd.polygon([P(0.04, 0.56), P(0.0, 0.64), P(0.1, 0.6)], fill=fur)
        width = int(W * 0.07)
        dd.line([P(0.3, 0.3), P(0.18, 0.15), P(0.08, 0.12)], fill=fur, width=width, joint="curve")  # legs
        dd.line([P(0.3, 0.7), P(0.15, 0.8), P(0.06, 0.9)], fill=fur, width=width, joint="curve")
        dd.line([P(0.75, 0.72), P(0.85, 0.82), P(0.9, 0.88)], fill=fur, width=width, joint="curve")
        dd.line([P(0.8, 0.35), P(0.9, 0.2), P(0.86, 0.06), P(0.78, 0.05)], fill=fur, width=int(W * 0.06),
                joint="curve")  # tail
        for k in range(8):  # stripes
            u = 0.32 + k * 0.06
            dd.line([P(u, 0.3), P(u + 0.03, 0.75)], fill=(190, 120, 60), width=int(W * 0.015))

    sprite, at = _figure(cat, (30, 70, 470, 330), rng, _fur(0.3))
    img.paste(sprite, at, sprite)
    return img


_RENDERERS: dict[str, Callable[[np.random.Generator, int, int], Image.Image]] = {
    "catdog.jpg": _catdog,
    "rainier.jpg": _rainier,
    "autumn-oak.jpg": _autumn_oak,
    "cat1.jpg": _cat1,
}


def render_photo(name: str, seed: int = 0) -> Image.Image:
    """The demo stand-in for photo ``name`` (an RGB image of the real photo's size)."""
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; known: {', '.join(PHOTOS)}")
    w, h = PHOTOS[name].size
    rng = np.random.default_rng([int(seed), list(PHOTOS).index(name)])
    image = _RENDERERS[name](rng, w, h).convert("RGB")
    assert image.size == (w, h)
    return image
