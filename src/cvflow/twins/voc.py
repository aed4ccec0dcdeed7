"""The Pascal VOC2012 segmentation twin (book 13.9), written in the real files' formats.

:func:`generate_voc` writes ``VOCdevkit/VOC2012`` with ``JPEGImages/<id>.jpg``,
``SegmentationClass/<id>.png`` and ``SegmentationObject/<id>.png`` (palette PNGs) and the
``ImageSets/Segmentation/{train,val,trainval}.txt`` lists: scenes with objects of several
VOC classes (simple shapes in class-typical colours), their masks with a void border a few
pixels wide.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from cvflow.console import progress
from cvflow.data.readers.voc import IGNORE_INDEX, voc_palette
from cvflow.twins.raster import blob, value_noise

__all__ = ["generate_voc", "render_voc_scene"]

_PALETTE = voc_palette()
_LISTS = ("train", "val", "trainval")


# --------------------------------------------------------------------------- the demo twin


class _Painter:
    """Draws an object's parts onto the photo and its instance number onto the object map.

    Part coordinates are in the object's unit box ([0, 1] x [0, 1], y down), mapped to the
    pixel box ``(x, y, w, h)``, mirrored when ``flip``.
    """

    def __init__(self, photo: ImageDraw.ImageDraw, ids: ImageDraw.ImageDraw, inst: int, box, flip: bool,
                 rng: np.random.Generator):
        self.photo, self.ids, self.inst, self.rng = photo, ids, inst, rng
        self.x, self.y, self.w, self.h = box
        self.flip = flip

    def _pt(self, u: float, v: float) -> tuple[float, float]:
        u = 1.0 - u if self.flip else u
        return (self.x + u * self.w, self.y + v * self.h)

    def _jit(self, col) -> tuple[int, int, int]:
        f = 1.0 + self.rng.normal(0.0, 0.05)
        return tuple(int(min(255, max(0, c * f + self.rng.normal(0, 4)))) for c in col)

    def poly(self, pts, col) -> None:
        xy = [self._pt(u, v) for u, v in pts]
        self.photo.polygon(xy, fill=self._jit(col))
        self.ids.polygon(xy, fill=self.inst)

    def rect(self, u0, v0, u1, v1, col) -> None:
        self.poly([(u0, v0), (u1, v0), (u1, v1), (u0, v1)], col)

    def ellipse(self, cu, cv, ru, rv, col) -> None:
        t = np.linspace(0, 2 * math.pi, 40, endpoint=False)
        self.poly(list(zip((cu + ru * np.cos(t)).tolist(), (cv + rv * np.sin(t)).tolist())), col)

    def line(self, pts, col, width: float) -> None:
        xy = [self._pt(u, v) for u, v in pts]
        wpx = max(1, int(round(width * min(self.w, self.h))))
        self.photo.line(xy, fill=self._jit(col), width=wpx, joint="curve")
        self.ids.line(xy, fill=self.inst, width=wpx, joint="curve")

    def ring(self, cu, cv, r, col, width: float) -> None:
        (x0, y0), (x1, y1) = self._pt(cu - r, cv - r * self.w / self.h), self._pt(cu + r, cv + r * self.w / self.h)
        box = [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]
        wpx = max(1, int(round(width * self.w)))
        self.photo.ellipse(box, outline=self._jit(col), width=wpx)
        self.ids.ellipse(box, outline=self.inst, width=wpx)


def _pick(rng: np.random.Generator, *cols):
    return cols[int(rng.integers(len(cols)))]


# Each drawer paints one object in its unit box; ASPECT is the box's width / height.
def _aeroplane(p: _Painter, rng) -> None:
    body = _pick(rng, (225, 228, 232), (200, 205, 215), (235, 235, 235))
    p.ellipse(0.5, 0.55, 0.48, 0.1, body)
    p.poly([(0.4, 0.55), (0.62, 0.55), (0.35, 1.0), (0.22, 1.0)], body)
    p.poly([(0.42, 0.5), (0.58, 0.5), (0.4, 0.15), (0.32, 0.15)], _pick(rng, (170, 175, 185), body))
    p.poly([(0.02, 0.5), (0.1, 0.5), (0.06, 0.0), (0.0, 0.0)], _pick(rng, (180, 30, 40), (30, 60, 140), body))
    p.ellipse(0.86, 0.52, 0.05, 0.04, (60, 70, 90))


def _bicycle(p: _Painter, rng) -> None:
    frame = _pick(rng, (180, 30, 30), (30, 60, 150), (40, 40, 40), (220, 220, 220))
    p.ring(0.22, 0.72, 0.2, (30, 30, 30), 0.06)
    p.ring(0.78, 0.72, 0.2, (30, 30, 30), 0.06)
    p.line([(0.22, 0.72), (0.42, 0.35), (0.7, 0.35), (0.78, 0.72)], frame, 0.055)
    p.line([(0.42, 0.35), (0.5, 0.72), (0.7, 0.35)], frame, 0.05)
    p.line([(0.4, 0.35), (0.36, 0.18)], frame, 0.05)
    p.rect(0.3, 0.12, 0.44, 0.18, (30, 30, 30))
    p.line([(0.7, 0.35), (0.72, 0.12), (0.82, 0.1)], (60, 60, 60), 0.045)


def _bird(p: _Painter, rng) -> None:
    col = _pick(rng, (120, 85, 55), (60, 60, 65), (200, 200, 195), (70, 110, 160))
    p.poly([(0.0, 0.55), (0.3, 0.45), (0.3, 0.65)], col)  # tail
    p.ellipse(0.5, 0.55, 0.28, 0.22, col)
    p.ellipse(0.78, 0.3, 0.14, 0.14, col)
    p.poly([(0.9, 0.26), (1.0, 0.32), (0.9, 0.36)], (220, 160, 40))
    p.ellipse(0.45, 0.5, 0.17, 0.1, tuple(int(c * 0.75) for c in col))  # wing
    p.line([(0.45, 0.75), (0.42, 1.0)], (150, 110, 50), 0.03)
    p.line([(0.55, 0.75), (0.58, 1.0)], (150, 110, 50), 0.03)


def _boat(p: _Painter, rng) -> None:
    hull = _pick(rng, (240, 240, 240), (170, 40, 35), (30, 50, 100), (120, 80, 50))
    p.poly([(0.0, 0.7), (1.0, 0.7), (0.85, 1.0), (0.12, 1.0)], hull)
    p.line([(0.5, 0.7), (0.5, 0.0)], (90, 70, 50), 0.03)
    p.poly([(0.52, 0.04), (0.52, 0.66), (0.92, 0.66)], _pick(rng, (245, 245, 240), (230, 200, 120)))
    p.poly([(0.48, 0.1), (0.48, 0.66), (0.18, 0.66)], (235, 235, 230))


def _bottle(p: _Painter, rng) -> None:
    col = _pick(rng, (40, 110, 50), (110, 60, 25), (170, 200, 210), (200, 40, 40))
    p.rect(0.1, 0.35, 0.9, 1.0, col)
    p.poly([(0.1, 0.35), (0.9, 0.35), (0.62, 0.18), (0.38, 0.18)], col)
    p.rect(0.36, 0.02, 0.64, 0.2, col)
    p.rect(0.33, 0.0, 0.67, 0.05, (200, 170, 60))
    p.rect(0.1, 0.55, 0.9, 0.78, _pick(rng, (235, 230, 210), (200, 40, 40), (240, 200, 80)))


def _bus(p: _Painter, rng) -> None:
    col = _pick(rng, (235, 190, 30), (200, 40, 40), (240, 240, 240), (40, 100, 180))
    p.rect(0.0, 0.0, 1.0, 0.88, col)
    for i in range(6):
        p.rect(0.04 + i * 0.155, 0.1, 0.17 + i * 0.155, 0.42, (60, 80, 100))
    p.rect(0.05, 0.5, 0.16, 0.85, (60, 80, 100))
    p.ellipse(0.22, 0.88, 0.07, 0.12, (25, 25, 25))
    p.ellipse(0.8, 0.88, 0.07, 0.12, (25, 25, 25))


def _car(p: _Painter, rng) -> None:
    col = _pick(rng, (180, 20, 30), (30, 40, 120), (200, 200, 205), (25, 25, 30), (240, 240, 240))
    p.poly([(0.0, 0.45), (0.2, 0.42), (0.32, 0.08), (0.72, 0.08), (0.86, 0.4), (1.0, 0.48), (1.0, 0.82),
            (0.0, 0.82)], col)
    p.poly([(0.36, 0.14), (0.52, 0.14), (0.52, 0.4), (0.28, 0.4)], (70, 90, 110))
    p.poly([(0.56, 0.14), (0.7, 0.14), (0.8, 0.4), (0.56, 0.4)], (70, 90, 110))
    p.ellipse(0.2, 0.82, 0.1, 0.18, (20, 20, 20))
    p.ellipse(0.8, 0.82, 0.1, 0.18, (20, 20, 20))


def _cat(p: _Painter, rng) -> None:
    col = _pick(rng, (215, 140, 60), (120, 115, 110), (40, 38, 36), (230, 225, 215))
    p.line([(0.1, 0.75), (0.02, 0.45), (0.06, 0.2)], col, 0.06)  # tail
    p.ellipse(0.45, 0.65, 0.33, 0.25, col)
    p.ellipse(0.78, 0.35, 0.17, 0.17, col)
    p.poly([(0.64, 0.28), (0.68, 0.0), (0.76, 0.22)], col)
    p.poly([(0.8, 0.22), (0.88, 0.0), (0.93, 0.28)], col)
    p.rect(0.24, 0.75, 0.32, 1.0, col)
    p.rect(0.58, 0.75, 0.66, 1.0, col)
    p.ellipse(0.74, 0.32, 0.025, 0.03, (60, 150, 60))
    p.ellipse(0.84, 0.32, 0.025, 0.03, (60, 150, 60))


def _chair(p: _Painter, rng) -> None:
    col = _pick(rng, (120, 75, 40), (60, 40, 25), (200, 200, 195), (40, 40, 45))
    p.rect(0.1, 0.0, 0.22, 0.95, col)
    p.rect(0.1, 0.0, 0.9, 0.12, col)
    p.rect(0.1, 0.5, 0.95, 0.6, col)
    p.rect(0.85, 0.55, 0.95, 1.0, col)
    p.rect(0.5, 0.55, 0.58, 0.92, col)


def _cow(p: _Painter, rng) -> None:
    col = _pick(rng, (30, 28, 26), (120, 70, 40), (235, 230, 220))
    p.rect(0.15, 0.3, 0.78, 0.7, col)
    p.ellipse(0.47, 0.42, 0.2, 0.12, (240, 240, 235) if col[0] < 100 else (40, 35, 30))
    p.poly([(0.75, 0.3), (0.95, 0.32), (1.0, 0.55), (0.85, 0.6), (0.75, 0.5)], col)
    for u in (0.18, 0.3, 0.62, 0.72):
        p.rect(u, 0.65, u + 0.07, 1.0, col)
    p.line([(0.15, 0.35), (0.08, 0.7)], col, 0.03)


def _diningtable(p: _Painter, rng) -> None:
    col = _pick(rng, (130, 85, 45), (240, 240, 235), (90, 60, 35))
    p.poly([(0.12, 0.0), (0.88, 0.0), (1.0, 0.3), (0.0, 0.3)], col)
    p.rect(0.0, 0.3, 1.0, 0.38, tuple(int(c * 0.8) for c in col))
    p.rect(0.04, 0.36, 0.1, 1.0, col)
    p.rect(0.9, 0.36, 0.96, 1.0, col)
    p.ellipse(0.4, 0.12, 0.1, 0.06, (250, 250, 250))  # a plate on it


def _dog(p: _Painter, rng) -> None:
    col = _pick(rng, (200, 150, 90), (90, 60, 35), (30, 28, 26), (235, 225, 205))
    p.line([(0.08, 0.45), (0.0, 0.2)], col, 0.06)
    p.ellipse(0.42, 0.52, 0.32, 0.2, col)
    p.ellipse(0.8, 0.3, 0.15, 0.16, col)
    p.poly([(0.88, 0.3), (1.0, 0.38), (0.98, 0.46), (0.86, 0.44)], col)  # muzzle
    p.ellipse(0.72, 0.34, 0.05, 0.14, tuple(int(c * 0.6) for c in col))  # ear
    for u in (0.16, 0.28, 0.54, 0.66):
        p.rect(u, 0.6, u + 0.08, 1.0, col)
    p.ellipse(0.99, 0.38, 0.02, 0.03, (15, 15, 15))


def _horse(p: _Painter, rng) -> None:
    col = _pick(rng, (120, 70, 35), (60, 40, 25), (210, 200, 185), (25, 20, 20))
    p.ellipse(0.42, 0.45, 0.3, 0.16, col)
    p.poly([(0.62, 0.38), (0.72, 0.05), (0.82, 0.0), (0.78, 0.42)], col)
    p.poly([(0.72, 0.02), (1.0, 0.16), (0.98, 0.24), (0.75, 0.18)], col)
    p.line([(0.72, 0.05), (0.64, 0.36)], (30, 20, 15), 0.03)  # mane
    for u in (0.16, 0.26, 0.56, 0.64):
        p.rect(u, 0.5, u + 0.05, 1.0, col)
    p.line([(0.12, 0.42), (0.02, 0.75)], (40, 30, 20), 0.035)


def _motorbike(p: _Painter, rng) -> None:
    col = _pick(rng, (200, 30, 30), (30, 30, 35), (30, 80, 170), (230, 130, 20))
    p.ellipse(0.2, 0.75, 0.18, 0.25, (25, 25, 25))
    p.ellipse(0.8, 0.75, 0.18, 0.25, (25, 25, 25))
    p.poly([(0.25, 0.6), (0.35, 0.35), (0.68, 0.3), (0.8, 0.55), (0.6, 0.7)], col)
    p.rect(0.3, 0.28, 0.55, 0.36, (20, 20, 20))
    p.line([(0.75, 0.35), (0.82, 0.05), (0.92, 0.02)], (90, 90, 95), 0.035)


def _person(p: _Painter, rng) -> None:
    skin = _pick(rng, (230, 190, 160), (190, 140, 100), (120, 80, 55), (245, 210, 185))
    shirt = _pick(rng, (200, 40, 40), (40, 80, 170), (240, 240, 240), (40, 40, 40), (60, 140, 70))
    legs = _pick(rng, (40, 50, 90), (30, 30, 30), (120, 100, 80))
    p.ellipse(0.5, 0.09, 0.16, 0.09, skin)
    p.ellipse(0.5, 0.04, 0.17, 0.05, _pick(rng, (40, 25, 15), (90, 60, 30), (20, 20, 20), (200, 170, 90)))
    p.rect(0.46, 0.16, 0.54, 0.2, skin)
    p.poly([(0.18, 0.2), (0.82, 0.2), (0.76, 0.58), (0.24, 0.58)], shirt)
    p.line([(0.2, 0.22), (0.06, 0.5), (0.1, 0.6)], shirt, 0.1)
    p.line([(0.8, 0.22), (0.94, 0.5), (0.9, 0.6)], shirt, 0.1)
    p.rect(0.26, 0.56, 0.48, 0.98, legs)
    p.rect(0.52, 0.56, 0.74, 0.98, legs)
    p.rect(0.22, 0.96, 0.48, 1.0, (30, 25, 20))
    p.rect(0.52, 0.96, 0.78, 1.0, (30, 25, 20))


def _pottedplant(p: _Painter, rng) -> None:
    p.poly([(0.22, 0.62), (0.78, 0.62), (0.68, 1.0), (0.32, 1.0)], _pick(rng, (180, 90, 50), (230, 230, 225)))
    green = _pick(rng, (50, 120, 45), (70, 140, 60), (35, 90, 40))
    for _ in range(9):
        cu, cv = rng.uniform(0.2, 0.8), rng.uniform(0.12, 0.55)
        p.ellipse(cu, cv, rng.uniform(0.1, 0.2), rng.uniform(0.06, 0.12), green)
    p.ellipse(0.5, 0.35, 0.3, 0.3, green)


def _sheep(p: _Painter, rng) -> None:
    wool = _pick(rng, (235, 232, 220), (215, 210, 195), (245, 245, 240))
    pts = blob(0.45, 0.45, 0.38, 0.3, rng, rough=0.08)
    p.poly(pts, wool)
    p.ellipse(0.85, 0.38, 0.12, 0.13, (40, 35, 30))
    for u in (0.2, 0.32, 0.56, 0.66):
        p.rect(u, 0.65, u + 0.06, 1.0, (40, 35, 30))


def _sofa(p: _Painter, rng) -> None:
    col = _pick(rng, (120, 40, 40), (70, 90, 120), (150, 130, 110), (60, 60, 60), (200, 190, 170))
    p.rect(0.05, 0.0, 0.95, 0.55, col)
    p.rect(0.0, 0.3, 0.14, 0.92, tuple(int(c * 0.85) for c in col))
    p.rect(0.86, 0.3, 1.0, 0.92, tuple(int(c * 0.85) for c in col))
    p.rect(0.12, 0.5, 0.88, 0.85, tuple(int(min(255, c * 1.1)) for c in col))
    p.rect(0.04, 0.9, 0.1, 1.0, (40, 30, 20))
    p.rect(0.9, 0.9, 0.96, 1.0, (40, 30, 20))


def _train(p: _Painter, rng) -> None:
    col = _pick(rng, (30, 80, 160), (200, 40, 40), (230, 230, 230), (40, 120, 70), (230, 180, 30))
    p.rect(0.0, 0.1, 0.86, 0.9, col)
    p.poly([(0.86, 0.1), (0.95, 0.2), (1.0, 0.9), (0.86, 0.9)], col)
    for i in range(5):
        p.rect(0.04 + i * 0.16, 0.22, 0.15 + i * 0.16, 0.48, (50, 60, 80))
    p.rect(0.0, 0.7, 1.0, 0.76, (240, 240, 240))
    p.rect(0.0, 0.9, 1.0, 1.0, (40, 40, 40))


def _tvmonitor(p: _Painter, rng) -> None:
    p.rect(0.0, 0.0, 1.0, 0.82, _pick(rng, (25, 25, 28), (200, 200, 205), (60, 60, 65)))
    p.rect(0.06, 0.07, 0.94, 0.75, _pick(rng, (40, 70, 140), (20, 25, 30), (90, 150, 200), (200, 210, 220)))
    p.rect(0.44, 0.82, 0.56, 0.94, (40, 40, 45))
    p.rect(0.3, 0.93, 0.7, 1.0, (40, 40, 45))


# an object's size (a multiple of its typical height) in a scene of 1, 2, 3 or more objects
_SCALE = (1.9, 1.5, 1.25)

# class index -> (drawer, width / height, typical height as a fraction of the image height)
_OBJECTS: dict[int, tuple[Callable, float, tuple[float, float]]] = {
    1: (_aeroplane, 2.2, (0.2, 0.45)),
    2: (_bicycle, 1.6, (0.3, 0.55)),
    3: (_bird, 1.1, (0.15, 0.35)),
    4: (_boat, 1.3, (0.25, 0.55)),
    5: (_bottle, 0.35, (0.25, 0.5)),
    6: (_bus, 2.2, (0.3, 0.55)),
    7: (_car, 2.0, (0.2, 0.45)),
    8: (_cat, 1.2, (0.25, 0.5)),
    9: (_chair, 0.7, (0.3, 0.6)),
    10: (_cow, 1.5, (0.25, 0.5)),
    11: (_diningtable, 1.8, (0.25, 0.45)),
    12: (_dog, 1.3, (0.25, 0.5)),
    13: (_horse, 1.3, (0.35, 0.6)),
    14: (_motorbike, 1.5, (0.25, 0.5)),
    15: (_person, 0.42, (0.45, 0.85)),
    16: (_pottedplant, 0.8, (0.25, 0.5)),
    17: (_sheep, 1.4, (0.2, 0.4)),
    18: (_sofa, 1.9, (0.3, 0.5)),
    19: (_train, 3.0, (0.25, 0.45)),
    20: (_tvmonitor, 1.3, (0.2, 0.4)),
}


def _scene_background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Sky over ground, water, or a wall over a floor (float32 HxWx3), textured."""
    kind = rng.random()
    if kind < 0.45:  # outdoors: sky, ground
        top = _pick(rng, (125, 165, 215), (185, 200, 220), (215, 215, 210), (150, 185, 225))
        bottom = _pick(rng, (80, 125, 50), (110, 140, 70), (120, 115, 105), (150, 130, 100))
    elif kind < 0.6:  # water
        top = _pick(rng, (140, 180, 225), (200, 205, 215))
        bottom = _pick(rng, (40, 80, 120), (60, 100, 130), (30, 60, 90))
    else:  # indoors: wall, floor
        top = _pick(rng, (225, 215, 195), (190, 200, 205), (200, 170, 140), (240, 240, 235), (150, 160, 120))
        bottom = _pick(rng, (130, 90, 55), (160, 150, 140), (90, 70, 60), (200, 190, 170))
    top = np.array(top, np.float32) * (1 + rng.normal(0, 0.06, 3)).astype(np.float32)
    bottom = np.array(bottom, np.float32) * (1 + rng.normal(0, 0.08, 3)).astype(np.float32)
    horizon = rng.uniform(0.3, 0.65) * h
    yy = np.arange(h, dtype=np.float32)[:, None, None]
    m = np.clip((yy - horizon) / 3.0, 0.0, 1.0)
    grad = (1.0 + 0.15 * (yy / h - 0.5)).astype(np.float32)
    img = (top + (bottom - top) * m) * grad
    tex = value_noise(rng, w, h, int(rng.integers(8, 30)))[..., None]
    img = img * (0.85 + 0.3 * tex)
    return np.broadcast_to(img, (h, w, 3)).astype(np.float32)


def _void_border(inst: np.ndarray, radius: int) -> np.ndarray:
    """Pixels within ``radius`` of a boundary between two different object numbers."""
    hi = inst.copy()
    lo = inst.copy()
    h, w = inst.shape
    for axis in (0, 1):  # separable max / min filter of width 2 * radius + 1
        src_hi, src_lo = hi.copy(), lo.copy()
        for k in range(1, radius + 1):
            if axis == 0:
                np.maximum(hi[k:], src_hi[:-k], out=hi[k:])
                np.maximum(hi[:-k], src_hi[k:], out=hi[:-k])
                np.minimum(lo[k:], src_lo[:-k], out=lo[k:])
                np.minimum(lo[:-k], src_lo[k:], out=lo[:-k])
            else:
                np.maximum(hi[:, k:], src_hi[:, :-k], out=hi[:, k:])
                np.maximum(hi[:, :-k], src_hi[:, k:], out=hi[:, :-k])
                np.minimum(lo[:, k:], src_lo[:, :-k], out=lo[:, k:])
                np.minimum(lo[:, :-k], src_lo[:, k:], out=lo[:, :-k])
    return hi != lo


def _band_radius(w: int, h: int) -> int:
    """The void band's half-width: VOC's band is about 5 pixels wide on its ~500x375 photos, so
    ``2 * radius`` pixels wide, scaled with the scene (1 below 225 pixels, 2 at VOC's sizes)."""
    return max(1, int(round(min(w, h) / 150)))


# objects per scene (1, 2, 3, ...): VOC's segmentation scenes hold 1.5 classes on average
_COUNT_WEIGHTS = (0.5, 0.32, 0.18)


def render_voc_scene(rng: np.random.Generator, size: tuple[int, int], max_objects: int = 3
                     ) -> tuple[Image.Image, np.ndarray, np.ndarray, list[int]]:
    """One scene of ``size = (width, height)``.

    Returns ``(photo RGB, class indices (H, W) uint8, object numbers (H, W) uint8, classes)``:
    background 0, objects 1..n in drawing order (``classes[k - 1]`` is object k's class),
    and 255 on a void band a few pixels wide along every object outline, as VOC marks it.
    As in VOC2012, the objects are large (together about a quarter of the pixels; one is often
    the photo's subject, cut by the frame) and the band covers about 5% of the pixels.
    """
    w, h = (int(v) for v in size)
    bg = _scene_background(rng, w, h)
    photo = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    ids = Image.new("L", (w, h), 0)
    dp, di = ImageDraw.Draw(photo), ImageDraw.Draw(ids)
    weights = np.array(_COUNT_WEIGHTS[: max(1, max_objects)] + (0.18,) * max(0, max_objects - len(_COUNT_WEIGHTS)))
    n = 1 + int(rng.choice(len(weights), p=weights / weights.sum()))
    classes = [int(c) for c in rng.choice(np.arange(1, 21), size=n, replace=True)]
    placed = []
    for cls in classes:
        _, aspect, (lo, hi) = _OBJECTS[cls]
        oh = h * rng.uniform(lo, hi) * _SCALE[min(n, len(_SCALE)) - 1]
        ow = oh * aspect * rng.uniform(0.85, 1.15)
        if ow > w * 1.1:
            oh, ow = oh * w * 1.1 / ow, w * 1.1
        if oh > h * 1.05:
            oh, ow = h * 1.05, ow * h * 1.05 / oh
        x = rng.uniform(-0.15 * ow, w - 0.85 * ow)  # objects may be cut by the frame
        y = rng.uniform(max(-0.1 * oh, h * 0.3 - oh * 0.5), max(h * 0.3 - oh * 0.5 + 1, h - 0.85 * oh))
        placed.append((y + oh, cls, (x, y, ow, oh)))
    placed.sort(key=lambda t: t[0])  # nearer (lower in the frame) objects are drawn last
    classes = []
    for k, (_, cls, box) in enumerate(placed, start=1):
        drawer = _OBJECTS[cls][0]
        drawer(_Painter(dp, di, k, box, bool(rng.random() < 0.5), rng), rng)
        classes.append(cls)
    inst = np.array(ids)
    present = sorted(set(np.unique(inst).tolist()) - {0})
    if len(present) < len(classes):  # an object hidden entirely: renumber the visible ones
        remap = np.zeros(256, np.uint8)
        for new, old in enumerate(present, start=1):
            remap[old] = new
        inst = remap[inst]
        classes = [classes[old - 1] for old in present]
    lut = np.zeros(256, np.uint8)
    lut[1 : len(classes) + 1] = classes
    cls_map = lut[inst]
    void = _void_border(inst, _band_radius(w, h))
    cls_map[void] = IGNORE_INDEX
    inst = inst.copy()
    inst[void] = IGNORE_INDEX
    # the photo: a touch of defocus and sensor noise (the masks stay hard-edged)
    photo = photo.filter(ImageFilter.BoxBlur(float(rng.uniform(0.3, 0.9))))
    arr = np.asarray(photo, dtype=np.float32)
    arr += rng.normal(0.0, rng.uniform(1.0, 4.0), arr.shape).astype(np.float32)
    photo = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return photo, cls_map, inst, classes


def _save_palette_png(array: np.ndarray, path: Path) -> None:
    image = Image.frombytes("P", (array.shape[1], array.shape[0]), np.ascontiguousarray(array, np.uint8).tobytes())
    image.putpalette(_PALETTE)
    image.save(path, optimize=False)


def generate_voc(root: str | Path, n_train: int = 40, n_val: int = 20, seed: int = 0,
                 size: tuple[tuple[int, int], tuple[int, int]] = ((480, 500), (320, 500)),
                 max_objects: int = 3) -> Path:
    """Write the VOC2012 segmentation demo twin under ``root``; return ``root/VOCdevkit/VOC2012``.

    ``size = ((min width, max width), (min height, max height))``: the default keeps every
    image at least 320x480 (height x width), so the book's crop never drops one. Images
    are named ``2012_000000`` ...; image ``i`` depends only on ``(seed, i)``.
    """
    (wmin, wmax), (hmin, hmax) = size
    if not (0 < wmin <= wmax and 0 < hmin <= hmax):
        raise ValueError(f"size must be ((min_w, max_w), (min_h, max_h)) with 0 < min <= max, got {size!r}")
    if min(n_train, n_val) < 0:
        raise ValueError(f"image counts must be >= 0, got n_train={n_train}, n_val={n_val}")
    voc = Path(root) / "VOCdevkit" / "VOC2012"
    folders = {name: voc / name for name in ("JPEGImages", "SegmentationClass", "SegmentationObject")}
    for folder in [*folders.values(), voc / "ImageSets" / "Segmentation"]:
        folder.mkdir(parents=True, exist_ok=True)
    ids = {"train": [], "val": []}
    total = int(n_train) + int(n_val)

    def one(i: int) -> str:
        rng = np.random.default_rng([int(seed), i])
        w = int(rng.integers(wmin, wmax + 1))
        h = int(rng.integers(hmin, hmax + 1))
        photo, cls_map, inst, _ = render_voc_scene(rng, (w, h), max_objects)
        name = f"2012_{i:06d}"
        photo.save(folders["JPEGImages"] / f"{name}.jpg", quality=int(rng.integers(85, 96)))
        _save_palette_png(cls_map, folders["SegmentationClass"] / f"{name}.png")
        _save_palette_png(inst, folders["SegmentationObject"] / f"{name}.png")
        return name

    with progress("generating the VOC2012 demo twin", total=total, unit="images") as bar, \
            ThreadPoolExecutor(max_workers=2) as pool:
        for i, name in enumerate(pool.map(one, range(total))):
            ids["train" if i < n_train else "val"].append(name)
            bar.advance()
    ids["trainval"] = ids["train"] + ids["val"]
    for split in _LISTS:
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text(
            "".join(f"{name}\n" for name in sorted(ids[split])), encoding="utf-8")
    return voc
