"""``cvflow predict bananas``: the trained TinySSD's boxes drawn on validation images
(``data/reports/bananas/predictions.png``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.console import info
from cvflow.pipelines.bananas.common import cfg as bananas_cfg, load_net, run_paths, val_images

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params


def predictions_file(root: Path) -> Path:
    """The picture of the validation images' predicted (red) and true (green) boxes."""
    return run_paths(root).reports / "predictions.png"


def predict(params: Params, root: Path) -> Path:
    """Draw the boxes above ``conf_threshold`` on validation images (a PNG grid, logged to MLflow)."""
    import torch
    from PIL import Image
    from torchvision.transforms.v2.functional import resize
    from torchvision.utils import draw_bounding_boxes, make_grid

    from cvflow.data.readers.bananas import book_collate
    from cvflow.detection.ssd import detect, detections
    from cvflow.fileio import atomic_path

    cfg = bananas_cfg(params)
    net, _, device, precision, tracker = load_net(params, root)
    val_set = val_images(cfg, root)
    count = min(cfg.grid_images, len(val_set))
    images, _ = book_collate([val_set[i] for i in range(count)])  # the network's input, as in training
    with torch.inference_mode(), precision.autocast():
        outputs = net(images.to(device))
    output = detect(tuple(o.float() for o in outputs), cfg.nms_threshold).cpu()
    drawn = []
    for index, rows in enumerate(output):  # drawn on the stored image, at its own resolution
        original = val_set.images[index]
        kept = detections(rows, cfg.conf_threshold, original.shape[2], original.shape[1])  # as served
        canvas = draw_bounding_boxes(original, val_set.boxes[index], colors="lime", width=1)
        if len(kept):
            canvas = draw_bounding_boxes(canvas, kept[:, 2:], [f"{float(c):.2f}" for c in kept[:, 1]],
                                         colors="red", width=2)
        if drawn and canvas.shape != drawn[0].shape:  # one grid needs one size (a local set may mix them)
            canvas = resize(canvas, list(drawn[0].shape[-2:]), antialias=True)
        drawn.append(canvas)
    grid = make_grid(drawn, nrow=4, padding=4, pad_value=255)
    path = predictions_file(root)
    with atomic_path(path) as tmp:
        Image.fromarray(grid.permute(1, 2, 0).numpy()).save(tmp, format="PNG")
    if tracker is not None:
        tracker.log_artifact(path, "plots")
    info(f"predictions (red: confidence >= {cfg.conf_threshold}; green: ground truth) at {path}")
    return path
