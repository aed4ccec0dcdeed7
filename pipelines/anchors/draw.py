"""The book's anchor-box figures (d2l 13.4 anchor boxes, 13.5 multiscale object detection) as PNGs.

``cvflow figures anchors`` draws, on ``data/photos/catdog.jpg`` (``cvflow fetch photos``), into
``data/reports/anchors/``:

* ``anchors_at_pixel.png``: the five anchors centred on pixel (250, 250) (13.4.1);
* ``anchor_labels.png``: the labelling example, ground truth, five anchors and the class
  :func:`~cvflow.detection.multibox_target` gives each of them (13.4.3);
* ``nms_before_after.png``: the NMS example, every predicted box and what
  :func:`~cvflow.detection.multibox_detection` keeps (13.4.4);
* ``multiscale_anchors.png``: ``display_anchors`` for 4x4, 2x2 and 1x1 feature maps (13.5.1).

Every box comes from the library (``multibox_prior``, ``multibox_target``,
``multibox_detection``); nothing here recomputes them. The numbers behind each figure are
available without drawing (:func:`anchor_boxes_at_pixel`, :func:`labelled_example`,
:func:`nms_example`, :func:`multiscale_boxes`), and each ``draw_*`` function returns its
:class:`matplotlib.figure.Figure`, whose rectangles are exactly those numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from cvflow.detection.boxes import multibox_detection, multibox_prior, multibox_target
from cvflow.data.readers.photos import read_photo
from cvflow.params import ParamsBase as Params
from cvflow.plots import _save, plt

__all__ = [
    "PIXEL",
    "PIXEL_SIZES",
    "PIXEL_RATIOS",
    "PIXEL_LABELS",
    "GROUND_TRUTH",
    "LABEL_ANCHORS",
    "NMS_ANCHORS",
    "NMS_CLS_PROBS",
    "NMS_THRESHOLD",
    "CLASS_NAMES",
    "MULTISCALE",
    "MULTISCALE_RATIOS",
    "FILES",
    "reports_dir",
    "load_catdog",
    "bbox_scale",
    "anchor_boxes_at_pixel",
    "labelled_example",
    "nms_example",
    "multiscale_boxes",
    "draw_anchors_at_pixel",
    "draw_anchor_labels",
    "draw_nms",
    "draw_multiscale",
    "figures",
]

# 13.4.1: the anchors of one pixel (row, column) = (250, 250).
PIXEL = (250, 250)
PIXEL_SIZES = [0.75, 0.5, 0.25]
PIXEL_RATIOS = [1, 2, 0.5]
PIXEL_LABELS = ["s=0.75, r=1", "s=0.5, r=1", "s=0.25, r=1", "s=0.75, r=2", "s=0.75, r=0.5"]

# 13.4.3: labelling anchors with the dog and the cat (class, x1, y1, x2, y2), normalised.
CLASS_NAMES = ("dog", "cat")
GROUND_TRUTH = [[0, 0.1, 0.08, 0.52, 0.92], [1, 0.55, 0.2, 0.9, 0.88]]
LABEL_ANCHORS = [[0, 0.1, 0.2, 0.3], [0.15, 0.2, 0.4, 0.4], [0.63, 0.05, 0.88, 0.98],
                 [0.66, 0.45, 0.8, 0.8], [0.57, 0.3, 0.92, 0.9]]

# 13.4.4: non-maximum suppression; rows of cls_probs are background, dog, cat.
NMS_ANCHORS = [[0.1, 0.08, 0.52, 0.92], [0.08, 0.2, 0.56, 0.95], [0.15, 0.3, 0.62, 0.91], [0.55, 0.2, 0.9, 0.88]]
NMS_CLS_PROBS = [[0] * 4, [0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.9]]
NMS_THRESHOLD = 0.5

# 13.5.1: display_anchors(fmap_w, fmap_h, s) for three feature-map sizes.
MULTISCALE = [(4, 4, [0.15]), (2, 2, [0.4]), (1, 1, [0.8])]  # (fmap_w, fmap_h, sizes)
MULTISCALE_RATIOS = [1, 2, 0.5]

FILES = ("anchors_at_pixel.png", "anchor_labels.png", "nms_before_after.png", "multiscale_anchors.png")

_COLORS = ["b", "g", "r", "m", "c"]  # the book's show_bboxes default colours


def reports_dir(root: Path) -> Path:
    return root / "data" / "reports" / "anchors"


def load_catdog(root: Path) -> np.ndarray:
    """``data/photos/catdog.jpg`` as an ``(h, w, 3)`` uint8 array, or a DataError that says what to run."""
    return np.asarray(read_photo(root, "catdog.jpg"))


def bbox_scale(h: int, w: int) -> torch.Tensor:
    """The book's ``bbox_scale = torch.tensor((w, h, w, h))``: normalised boxes to pixels."""
    return torch.tensor((w, h, w, h), dtype=torch.float32)


# ------------------------------------------------------------------ the numbers


def anchor_boxes_at_pixel(h: int, w: int, pixel: tuple[int, int] = PIXEL) -> torch.Tensor:
    """The five anchors of pixel ``(row, column)`` on an ``h x w`` image, in pixels ``(5, 4)``.

    ``multibox_prior`` on an ``(1, 3, h, w)`` input, ``Y.reshape(h, w, 5, 4)[row, col] * (w, h, w, h)``.
    """
    row, col = pixel
    if not (0 <= row < h and 0 <= col < w):
        raise ValueError(f"pixel {pixel} is outside a {h} x {w} image")
    anchors = multibox_prior(torch.zeros((1, 3, h, w)), sizes=PIXEL_SIZES, ratios=PIXEL_RATIOS)
    boxes = anchors.reshape(h, w, len(PIXEL_SIZES) + len(PIXEL_RATIOS) - 1, 4)
    return boxes[row, col] * bbox_scale(h, w)


def labelled_example() -> dict[str, torch.Tensor]:
    """13.4.3's example through ``multibox_target``: normalised boxes and the anchors' classes.

    Returns ``ground_truth`` ``(2, 5)``, ``anchors`` ``(5, 4)``, ``class_labels`` ``(5,)``
    (0 background, 1 dog, 2 cat; the book prints ``[0, 1, 2, 0, 2]``), ``bbox_mask`` and
    ``bbox_offset`` ``(20,)``.
    """
    ground_truth = torch.tensor(GROUND_TRUTH, dtype=torch.float32)
    anchors = torch.tensor(LABEL_ANCHORS, dtype=torch.float32)
    offset, mask, classes = multibox_target(anchors.unsqueeze(0), ground_truth.unsqueeze(0))
    return {"ground_truth": ground_truth, "anchors": anchors, "class_labels": classes[0],
            "bbox_mask": mask[0], "bbox_offset": offset[0]}


def _class_name(label: int) -> str:
    """Anchor class label (0 background, c + 1 for class c) as a word."""
    return "background" if label == 0 else CLASS_NAMES[label - 1]


def nms_example() -> dict[str, torch.Tensor]:
    """13.4.4's example: ``anchors`` ``(4, 4)``, ``cls_probs`` ``(3, 4)`` and ``output``
    ``(4, 6)`` from ``multibox_detection`` (zero offsets, NMS threshold 0.5); the kept rows
    (class >= 0) are ``kept`` ``(K, 6)``."""
    anchors = torch.tensor(NMS_ANCHORS, dtype=torch.float32)
    cls_probs = torch.tensor(NMS_CLS_PROBS, dtype=torch.float32)
    offset_preds = torch.zeros(anchors.numel())
    output = multibox_detection(cls_probs.unsqueeze(0), offset_preds.unsqueeze(0), anchors.unsqueeze(0),
                                nms_threshold=NMS_THRESHOLD)[0]
    return {"anchors": anchors, "cls_probs": cls_probs, "output": output, "kept": output[output[:, 0] >= 0]}


def _score_label(class_id: int, confidence: float) -> str:
    return f"{CLASS_NAMES[class_id]}={confidence:.1f}"


def multiscale_boxes(h: int, w: int) -> list[tuple[str, torch.Tensor]]:
    """13.5's ``display_anchors`` boxes: one ``(title, pixel boxes (A, 4))`` per feature map."""
    panels = []
    for fmap_w, fmap_h, sizes in MULTISCALE:
        fmap = torch.zeros((1, 10, fmap_h, fmap_w))
        anchors = multibox_prior(fmap, sizes=sizes, ratios=MULTISCALE_RATIOS)
        title = f"{fmap_h}x{fmap_w} feature map, s={sizes}, r={MULTISCALE_RATIOS}"
        panels.append((title, anchors[0] * bbox_scale(h, w)))
    return panels


# ------------------------------------------------------------------ the drawings


def _show_bboxes(ax, bboxes: torch.Tensor | Sequence, labels: Sequence[str] | None = None,
                 colors: Sequence[str] | str | None = None) -> None:
    """The book's ``show_bboxes``: one rectangle per pixel box, its label on its top-left corner."""
    if isinstance(colors, str):
        colors = [colors]
    colors = list(colors or _COLORS)
    for i, bbox in enumerate(bboxes):
        x1, y1, x2, y2 = (float(v) for v in bbox)
        color = colors[i % len(colors)]
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, linewidth=2))
        if labels and i < len(labels):
            ax.text(x1, y1, labels[i], va="center", ha="center", fontsize=9,
                    color="k" if color == "w" else "w", bbox=dict(facecolor=color, lw=0))


def _photo_axes(ax, img: np.ndarray, title: str = "", pad: float = 6.0) -> None:
    ax.imshow(img)
    h, w = img.shape[:2]
    # Labels sit on box corners and may overhang; keep the view on the photo.
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    if title:
        ax.set_title(title, fontsize=10, pad=pad)


def draw_anchors_at_pixel(img: np.ndarray):
    """Figure: the five anchors of pixel (250, 250), labelled as in the book."""
    h, w = img.shape[:2]
    fig, ax = plt.subplots(figsize=(6, 4.8))
    _photo_axes(ax, img, f"anchors centred on pixel {PIXEL} (sizes {PIXEL_SIZES}, ratios {PIXEL_RATIOS})",
                 pad=40)  # room for the labels of the anchors that stick out above the photo
    _show_bboxes(ax, anchor_boxes_at_pixel(h, w), PIXEL_LABELS)
    return fig


def draw_anchor_labels(img: np.ndarray):
    """Figure: ground truth (black) and anchors 0-4, with the class each anchor is labelled."""
    h, w = img.shape[:2]
    example = labelled_example()
    scale = bbox_scale(h, w)
    fig, ax = plt.subplots(figsize=(6, 5.4))
    _photo_axes(ax, img, "labelling anchors (multibox_target)")
    _show_bboxes(ax, example["ground_truth"][:, 1:] * scale, list(CLASS_NAMES), "k")
    _show_bboxes(ax, example["anchors"] * scale, [str(i) for i in range(len(example["anchors"]))])
    assigned = ", ".join(f"{i}: {_class_name(int(c))}" for i, c in enumerate(example["class_labels"]))
    fig.text(0.5, 0.02, f"anchor classes: {assigned}", ha="center", fontsize=9)
    return fig


def draw_nms(img: np.ndarray):
    """Figure: left, every predicted box with its best class and confidence; right, what NMS keeps."""
    h, w = img.shape[:2]
    example = nms_example()
    scale = bbox_scale(h, w)
    conf, class_id = example["cls_probs"][1:].max(dim=0)
    before = [_score_label(int(c), float(p)) for c, p in zip(class_id, conf)]
    kept = example["kept"]
    after = [_score_label(int(row[0]), float(row[1])) for row in kept]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6))
    _photo_axes(left, img, "before NMS: all predictions")
    _show_bboxes(left, example["anchors"] * scale, before)
    _photo_axes(right, img, f"after NMS (multibox_detection, threshold {NMS_THRESHOLD})")
    for row, label in zip(kept, after):  # one call per box, as in the book: each starts at blue
        _show_bboxes(right, [row[2:] * scale], [label])
    return fig


def draw_multiscale(img: np.ndarray):
    """Figure: 13.5's display_anchors for 4x4, 2x2 and 1x1 feature maps, one panel each."""
    h, w = img.shape[:2]
    panels = multiscale_boxes(h, w)
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2))
    for ax, (title, boxes) in zip(axes, panels):
        _photo_axes(ax, img, title)
        _show_bboxes(ax, boxes)
    return fig


_DRAW = {
    "anchors_at_pixel.png": draw_anchors_at_pixel,
    "anchor_labels.png": draw_anchor_labels,
    "nms_before_after.png": draw_nms,
    "multiscale_anchors.png": draw_multiscale,
}


def figures(params: Params, root: Path) -> dict[str, Path]:
    """Draw the four figures from ``root/data/photos/catdog.jpg`` into ``root/data/reports/anchors/``.

    Returns ``{file name: path}`` in :data:`FILES` order. Each PNG is written atomically.
    ``params`` is accepted like every pipeline's (nothing in it changes these figures).
    """
    del params
    img = load_catdog(root)
    out = reports_dir(root)
    return {name: _save(_DRAW[name](img), out / name) for name in FILES}
