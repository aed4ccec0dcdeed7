"""The book's sample photos (chapter 13): fetched from d2l-en, copied from a folder, or drawn.

=================  ==========  ==============================================
file               size        used for
=================  ==========  ==============================================
``catdog.jpg``     728 x 561   anchor boxes, bounding boxes (13.3, 13.4)
``cat1.jpg``       500 x 400   image augmentation (13.1)
``rainier.jpg``    2048 x 1365 style transfer, content image (13.12)
``autumn-oak.jpg`` 1717 x 1200 style transfer, style image (13.12)
=================  ==========  ==============================================

:func:`fetch_photos` gets them from one of three sources, all giving the same file names
in one flat folder:

* ``d2l``: downloaded from the ``img/`` folder of the d2l-en repository (a base URL that
  ``CVFLOW_PHOTOS_URL`` or ``base_url`` can point at a mirror or a local folder), each
  verified by the SHA-1 of its bytes;
* ``local``: copied from a folder that holds them (flat, or a d2l-en checkout with
  ``img/``), each SHA-1 checked first;
* ``demo``: stand-ins drawn here, deterministic, as JPEGs of the real sizes: on
  ``catdog.jpg`` a dog-like and a cat-like figure fill exactly the book's boxes
  (:data:`CATDOG_BOXES`), ``rainier.jpg`` is a mountain landscape, ``autumn-oak.jpg`` a
  painterly texture of brush strokes and ``cat1.jpg`` a cat lying on a dark blanket.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from cvflow.console import info
from cvflow.errors import DataError
from cvflow.fileio import atomic_path

__all__ = [
    "CATDOG_BOXES",
    "DEFAULT_PHOTOS_URL",
    "PHOTOS",
    "PHOTOS_URL_ENV",
    "Photo",
    "fetch_photos",
    "photos_base_url",
    "render_photo",
]

DEFAULT_PHOTOS_URL = "https://raw.githubusercontent.com/d2l-ai/d2l-en/master/img/"
PHOTOS_URL_ENV = "CVFLOW_PHOTOS_URL"


@dataclass(frozen=True)
class Photo:
    """One of the book's photos: its SHA-1 and its size (width, height)."""

    sha1: str
    size: tuple[int, int]


PHOTOS: dict[str, Photo] = {
    "catdog.jpg": Photo("60b7d540db03eef6b9834329bccc4417ef349bf6", (728, 561)),
    "rainier.jpg": Photo("b0193ffd8ecea1631ac1092130017b884faafa30", (2048, 1365)),
    "autumn-oak.jpg": Photo("bbe11f01403b9726bbc625589550e574fc45980a", (1717, 1200)),
    "cat1.jpg": Photo("f9c5b905d908b97eeeb64ff34a46fa8b143f88f8", (500, 400)),
}

# The book's boxes on catdog.jpg (13.3): (x1, y1, x2, y2) in pixels.
CATDOG_BOXES: dict[str, tuple[float, float, float, float]] = {
    "dog": (60.0, 45.0, 378.0, 516.0),
    "cat": (400.0, 112.0, 655.0, 493.0),
}


def photos_base_url(base_url: str | None = None) -> str:
    """``CVFLOW_PHOTOS_URL``, then ``base_url``, then :data:`DEFAULT_PHOTOS_URL`; ends with '/'.

    A plain folder path becomes a ``file://`` URL (as for the data hub).
    """
    from cvflow.data.hub import _as_url

    for candidate in (os.environ.get(PHOTOS_URL_ENV), base_url):
        if candidate is not None and candidate.strip():
            url = _as_url(candidate.strip())
            break
    else:
        url = DEFAULT_PHOTOS_URL
    return url if url.endswith("/") else url + "/"


# --------------------------------------------------------------------------- drawing helpers


def _noise(rng: np.random.Generator, w: int, h: int, cells: int) -> np.ndarray:
    from cvflow.data.synth import _noise as noise

    return noise(rng, w, h, cells)


def _fbm(rng: np.random.Generator, w: int, h: int, octaves: Iterable[tuple[int, float]]) -> np.ndarray:
    """A sum of smooth noises (cells, weight), normalised to [0, 1]."""
    out = np.zeros((h, w), np.float32)
    for cells, weight in octaves:
        out += weight * _noise(rng, w, h, cells)
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
        return (1.0 - strength) + strength * 2.0 * (0.5 * fine + 0.5 * _noise(rng, w, h, cells)) * 0.9

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
        shade = 0.8 + 0.4 * _noise(rng, w, h, 40)
        layer = np.array(col, np.float32)[None, None, :] * shade[..., None]
        if snow:
            depth = (rows - ridge[None, :]) / (0.06 * h)
            white = np.clip(1.5 - depth + 1.5 * (_noise(rng, w, h, 80) - 0.5), 0, 1)
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
    flow = _noise(rng, w, h, 6) * 2 * math.pi
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


# --------------------------------------------------------------------------- sources


def _names(names: Iterable[str] | None) -> list[str]:
    chosen = list(PHOTOS) if names is None else list(names)
    unknown = [n for n in chosen if n not in PHOTOS]
    if unknown:
        raise DataError(f"unknown photo(s) {', '.join(unknown)}; known: {', '.join(PHOTOS)}")
    return chosen


def _local_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / "img" / name):
        if candidate.is_file():
            return candidate
    return None


def fetch_photos(dest: str | os.PathLike, source: str = "demo", path: str | os.PathLike | None = None,
                 base_url: str | None = None, *, names: Iterable[str] | None = None, seed: int = 0,
                 **download_kwargs) -> dict[str, Path]:
    """Put the book's photos into folder ``dest`` (flat, real file names); return ``{name: path}``.

    * ``d2l``: download ``<base>/<name>`` for each (base: :func:`photos_base_url`), SHA-1
      verified by :func:`cvflow.data.download.download` (a verified file is not fetched again);
      ``download_kwargs`` go to it.
    * ``local``: copy from folder ``path`` (or ``path/img``) after checking each SHA-1; a
      mismatch raises :class:`DataError` naming the file, the expected and the actual SHA-1.
    * ``demo``: draw deterministic stand-ins (:func:`render_photo`) of the real sizes.

    ``names`` picks a subset of :data:`PHOTOS`. Every file is written atomically.
    """
    from cvflow.data.download import download, sha1sum

    dest = Path(dest)
    chosen = _names(names)
    dest.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    if source == "d2l":
        base = photos_base_url(base_url)
        hint = (f"Ways out: point {PHOTOS_URL_ENV} at a mirror of d2l-en's img/ folder, use --source local "
                "--path FOLDER, or run the offline demo (source: demo)")
        for name in chosen:
            out[name] = download(base + name, dest / name, sha1=PHOTOS[name].sha1, hint=hint, **download_kwargs)
    elif source == "local":
        if path is None:
            raise DataError("source local needs --path FOLDER holding the photos (catdog.jpg, ...)")
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise DataError(f"{folder}: no such folder (source local: --path FOLDER)")
        found = {name: _local_file(folder, name) for name in chosen}
        missing = [name for name, file in found.items() if file is None]
        if missing:
            raise DataError(f"{folder}: missing {', '.join(missing)} (looked in {folder} and {folder / 'img'})")
        for name, file in found.items():
            actual = sha1sum(file)
            if actual != PHOTOS[name].sha1:
                raise DataError(f"{file}: SHA-1 mismatch for {name}: expected {PHOTOS[name].sha1}, got {actual}; "
                                "this is not the book's photo (replace it, or use source d2l or demo)")
        for name, file in found.items():
            target = dest / name
            if target.resolve() != file.resolve():
                with atomic_path(target) as tmp:
                    shutil.copyfile(file, tmp)
            out[name] = target
    elif source == "demo":
        for name in chosen:
            image = render_photo(name, seed)
            with atomic_path(dest / name) as tmp:
                image.save(tmp, format="JPEG", quality=92)
            out[name] = dest / name
    else:
        raise DataError(f"unknown source {source!r}: use demo, d2l or local")
    info(f"photos ({source}) in {dest}: {', '.join(chosen)}")
    return out
