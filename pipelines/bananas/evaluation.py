"""``cvflow evaluate bananas``: the trained TinySSD scored on bananas_val (mAP, the book's class error and bbox MAE)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.console import info
from cvflow.pipelines.bananas.common import cfg as bananas_cfg, load_net, val_images

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params

#: Detections per image scored by mAP: COCO's (and torchmetrics') limit, the most confident first.
MAX_DETECTIONS = 100


def metrics_file(root: Path) -> Path:
    return root / "metrics" / "bananas.json"


def evaluate(params: Params, root: Path) -> dict:
    """mAP@0.5 and mAP@[0.5:0.95] (torchmetrics) plus the book's class error and bbox MAE on bananas_val."""
    import torch
    from torchmetrics.detection import MeanAveragePrecision

    from cvflow.data.readers.bananas import book_collate
    from cvflow.detection.ssd import DetectionTask, detect
    from cvflow.engine.trainer import make_loader, move_to
    from cvflow.fileio import write_json

    cfg = bananas_cfg(params)
    net, data, device, precision, tracker = load_net(params, root)
    val_set = val_images(cfg, root)
    loader = make_loader(val_set, 32, train=False, collate_fn=book_collate, pin_memory=device.type == "cuda")
    task = DetectionTask()
    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox").to(device)
    sums: dict = {}
    with torch.inference_mode():
        for images, labels in loader:
            images, labels = move_to((images, labels), device)
            with precision.autocast():
                outputs = net(images)
            outputs = tuple(o.float() for o in outputs)
            for key, value in task.loss_and_sums(outputs, labels)[1].items():
                sums[key] = sums.get(key, 0.0) + value  # device tensors: read once, after the loop
            output = detect(outputs, cfg.nms_threshold)
            scale = torch.tensor([images.shape[3], images.shape[2]] * 2, dtype=torch.float32, device=device)
            preds, targets = [], []
            for rows, truth in zip(output, labels):
                kept = rows[rows[:, 0] >= 0][:MAX_DETECTIONS]  # rows come sorted by confidence
                preds.append({"boxes": kept[:, 2:] * scale, "scores": kept[:, 1], "labels": kept[:, 0].long()})
                real = truth[truth[:, 0] >= 0]
                targets.append({"boxes": real[:, 1:] * scale, "labels": real[:, 0].long()})
            metric.update(preds, targets)
    found = metric.compute()
    summary = task.summarize({key: float(value) for key, value in sums.items()}, "val")
    results = {"map_50": float(found["map_50"]), "map": float(found["map"]),
               "val_class_err": summary["val_class_err"],
               "val_class_err_baseline": summary["val_class_err_baseline"],
               "val_bbox_mae": summary["val_bbox_mae"], "val_images": len(val_set)}
    write_json(metrics_file(root), results)
    if tracker is not None:
        tracker.log_evaluation(results, step=int(data["meta"].get("epochs", 0)))
        tracker.log_artifact(metrics_file(root), "metrics")
    info(f"TinySSD on bananas_val: mAP@0.5 {results['map_50']:.3f}, mAP@[0.5:0.95] {results['map']:.3f}, "
         f"class error {results['val_class_err']:.2e} (all-background "
         f"{results['val_class_err_baseline']:.2e}), bbox MAE {results['val_bbox_mae']:.2e}")
    return results
