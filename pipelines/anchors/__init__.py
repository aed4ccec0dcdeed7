"""Anchor boxes (13.4) and multiscale anchors (13.5): the book's figures, drawn by :mod:`.draw`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cvflow.pipelines.task import Section, Stage, Task


def figures(params: Any, root: Path) -> dict[str, Path]:
    """The stage's function: :func:`.draw.figures`, imported when it runs (it imports torch; the declaration, read
    by every command, stays cheap)."""
    from cvflow.pipelines.anchors.draw import figures as draw

    return draw(params, root)

OUT = "data/reports/anchors"

TASK: Task[None] = Task(
    name="anchors", title="13.4-13.5 anchor boxes",
    stages=(Stage("figures", figures, "Anchor boxes (13.4) and multiscale anchors (13.5) on data/photos/catdog.jpg "
                  "into data/reports/anchors/.", deps=("data/photos",), outs=("data/reports/anchors",),
                  echo_paths=True),),
    report=(
        Section("13.3", "Object detection and bounding boxes",
                "Detection finds where objects are, not only what they are: each object gets a bounding box, written "
                "as corners (x1, y1, x2, y2) or as centre, width and height. The book's dog and cat boxes on "
                "catdog.jpg are the ground truth of the labelling figure in 13.4 (cvflow.detection.boxes converts "
                "between the forms, with torchvision.ops)."),
        Section("13.4", "Anchor boxes",
                "Many boxes of several sizes and ratios are centred on every pixel; each is labelled with the class "
                "and offset of the ground-truth box it overlaps most (IoU), or background; non-maximum suppression "
                "keeps the most confident of overlapping predictions.",
                pictures=(f"{OUT}/anchors_at_pixel.png", f"{OUT}/anchor_labels.png", f"{OUT}/nms_before_after.png")),
        Section("13.5", "Multiscale object detection",
                "Anchors centred on the cells of smaller feature maps are larger: a 4 x 4 map finds small objects, a "
                "1 x 1 map one large object, the idea of SSD's five scales.",
                pictures=(f"{OUT}/multiscale_anchors.png",)),
        Section("13.8", "Region-based CNNs (R-CNNs)",
                "R-CNN, Fast R-CNN, Faster R-CNN and Mask R-CNN propose regions and classify them; Fast R-CNN's "
                "region of interest pooling turns any region into a fixed-size feature. The book trains none of them; "
                "cvflow.detection.roi pools the book's RoI example, checked against torchvision.ops.roi_pool in the "
                "tests."),
    ),
)
