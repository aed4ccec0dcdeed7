"""Banana detection (book 13.6-13.7): the data, TinySSD trained, evaluated (mAP) and drawn."""

from __future__ import annotations

from pathlib import Path

from cvflow.console import info
from cvflow.data.sources.bananas import fetch_bananas
from cvflow.params import Params


def data_dir(root: Path) -> Path:
    return root / "data" / "banana-detection"


def fetch(params: Params, root: Path, source: str | None = None, path: Path | None = None) -> dict:
    cfg = params.task("bananas")
    return fetch_bananas(data_dir(root), source or cfg.data.source, path=path or cfg.data.path,
                         hub_url=params.common.hub_url, downloads=root / "data" / "downloads",
                         n_train=cfg.demo.train, n_val=cfg.demo.test, seed=cfg.demo.seed)


# ----------------------------------------------------------------------------- TinySSD (13.7)

EXPERIMENT = "bananas"
#: Detections per image scored by mAP: COCO's (and torchmetrics') limit, the most confident first.
MAX_DETECTIONS = 100


def model_file(root: Path) -> Path:
    return root / "data" / "models" / "bananas" / "tinyssd.pt"


def checkpoint_file(root: Path) -> Path:
    return root / "data" / "checkpoints" / "bananas" / "tinyssd.pt"


def train_metrics_file(root: Path) -> Path:
    return root / "metrics" / "bananas" / "train.json"


def history_file(root: Path) -> Path:
    return root / "metrics" / "bananas" / "history.csv"


def metrics_file(root: Path) -> Path:
    return root / "metrics" / "bananas.json"


def reports(root: Path) -> Path:
    return root / "data" / "reports" / "bananas"


def _train_set(cfg, root: Path):
    from cvflow.data.readers.bananas import BananasDataset, detection_test_transforms, detection_train_transforms

    size = cfg.image_size
    transforms = detection_train_transforms(size) if cfg.augment else detection_test_transforms(size)
    return BananasDataset(data_dir(root), "train", transforms=transforms)


def _val_set(cfg, root: Path):
    """bananas_val at the training resolution (evaluate and predict decode only this split)."""
    from cvflow.data.readers.bananas import BananasDataset, detection_test_transforms

    return BananasDataset(data_dir(root), "val", transforms=detection_test_transforms(cfg.image_size))


def train(params: Params, root: Path) -> dict:
    """Train TinySSD (the book's recipe) with the engine: checkpoints, resume, DDP, MLflow."""
    import pandas as pd
    import torch

    from cvflow.data.readers.bananas import book_collate
    from cvflow.detection import DetectionTask, TinySSD
    from cvflow.engine import (Precision, Trainer, build_optimizer, build_scheduler, fingerprint,
                               init_distributed, make_loader, resolve_device, seed_everything,
                               shutdown_distributed, use_channels_last, use_pin_memory)
    from cvflow.fileio import atomic_open, atomic_path, write_json
    from cvflow.plots import training_curves
    from cvflow.tracking import Tracker

    cfg = params.task("bananas")
    recipe = cfg.recipe
    device = resolve_device(params.common.device)
    dist_info = init_distributed(device)
    seed_everything(params.common.seed + dist_info.rank)
    train_set, val_set = _train_set(cfg, root), _val_set(cfg, root)
    kwargs = dict(dist_info=dist_info, seed=params.common.seed, num_workers=params.common.num_workers,
                  pin_memory=use_pin_memory(device, params.common.pin_memory), collate_fn=book_collate)
    train_loader = make_loader(train_set, recipe.batch_size, train=True, **kwargs)
    val_loader = make_loader(val_set, recipe.batch_size, train=False, **kwargs)
    net = TinySSD(num_classes=1, prior_prob=cfg.prior_prob)
    optimizer = build_optimizer([{"params": net.parameters()}], recipe.optim)
    config = {"recipe": recipe.model_dump(mode="json"), "augment": cfg.augment, "seed": params.common.seed,
              "image_size": cfg.image_size, "prior_prob": cfg.prior_prob,
              "data": cfg.data.model_dump(mode="json"), "demo": cfg.demo.model_dump(mode="json")}
    trainer = Trainer(net, DetectionTask(), optimizer, recipe.epochs, device, checkpoint_file(root),
                      fingerprint(config),
                      scheduler=build_scheduler(optimizer, recipe.optim, recipe.epochs, len(train_loader)),
                      precision=Precision.resolve(device, params.common.precision),
                      channels_last=use_channels_last(device, params.common.channels_last),
                      dist_info=dist_info, description="tinyssd")
    extra = trainer.resume() or {}
    tracker = None
    if dist_info.is_main:
        tracker = Tracker(root, EXPERIMENT, "tinyssd")
        run_id = tracker.start(extra.get("mlflow_run_id"), tags={"stage": "train-bananas", "profile": params.profile,
                                                                 "device": str(device)})
        tracker.log_params({"profile": params.profile, "run": config})
        tracker.reconcile(trainer.history)
        extra = {"mlflow_run_id": run_id}
    history = trainer.fit(train_loader, val_loader, callbacks=[tracker] if tracker else [], extra=extra)
    if dist_info.is_main:
        with atomic_path(model_file(root)) as tmp:
            torch.save({"state_dict": net.state_dict(), "num_classes": 1,
                        "meta": {"mlflow_run_id": tracker.run_id, "history": history}}, tmp)
        write_json(train_metrics_file(root), history[-1])
        with atomic_open(history_file(root), "w", encoding="utf-8", newline="") as handle:
            pd.DataFrame(history).to_csv(handle, index=False)
        curves = training_curves({"tinyssd": history}, reports(root) / "curves.png", "TinySSD on bananas",
                                 metric="class_err", metric_label="anchor class error")
        tracker.log_artifact(curves, "plots")
        tracker.log_artifact(train_metrics_file(root), "metrics")
        tracker.log_artifact(model_file(root), "model")
        tracker.end()
        trainer.discard_checkpoint()
        last = history[-1]
        info(f"TinySSD: val class error {last['test_class_err']:.2e} (all-background baseline "
             f"{last['test_class_err_baseline']:.2e}), bbox MAE {last['test_bbox_mae']:.2e}")
    shutdown_distributed()
    return history[-1]


def _load_net(root: Path):
    import torch

    from cvflow.detection import TinySSD
    from cvflow.errors import UserError

    if not model_file(root).exists():
        raise UserError(f"{model_file(root)}: missing; run `cvflow train bananas` first")
    data = torch.load(model_file(root), map_location="cpu", weights_only=True)
    net = TinySSD(num_classes=int(data["num_classes"]))
    net.load_state_dict(data["state_dict"])
    return net.eval(), data["meta"]


def _detect(outputs, nms_threshold: float):
    """The book's predict on ``net(images)``: softmax, then multibox_detection -> (B, A, 6) rows."""
    import torch

    from cvflow.detection import multibox_detection

    anchors, cls_preds, bbox_preds = outputs
    cls_probs = torch.softmax(cls_preds, dim=2).permute(0, 2, 1)
    return multibox_detection(cls_probs, bbox_preds, anchors, nms_threshold=nms_threshold)


def evaluate(params: Params, root: Path) -> dict:
    """mAP@0.5 and mAP@[0.5:0.95] (torchmetrics) plus the book's class error and bbox MAE on bananas_val."""
    import torch
    from torch.utils.data import DataLoader
    from torchmetrics.detection import MeanAveragePrecision

    from cvflow.data.readers.bananas import book_collate
    from cvflow.detection import DetectionTask
    from cvflow.fileio import write_json
    from cvflow.tracking import reopen

    cfg = params.task("bananas")
    net, meta = _load_net(root)
    val_set = _val_set(cfg, root)
    loader = DataLoader(val_set, batch_size=32, shuffle=False, collate_fn=book_collate)
    task = DetectionTask()
    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox")
    sums: dict = {}
    with torch.inference_mode():
        for images, labels in loader:
            outputs = net(images)
            for key, value in task.loss_and_sums(outputs, labels)[1].items():
                sums[key] = sums.get(key, 0.0) + value  # tensors: read once, after the loop
            output = _detect(outputs, cfg.nms_threshold)
            scale = torch.tensor([images.shape[3], images.shape[2]] * 2, dtype=torch.float32)
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
    tracker = reopen(root, meta.get("mlflow_run_id", "")) if meta.get("mlflow_run_id") else None
    if tracker is not None:
        tracker.log_metrics({f"eval_{k}": v for k, v in results.items()})
        tracker.log_artifact(metrics_file(root), "metrics")
    info(f"TinySSD on bananas_val: mAP@0.5 {results['map_50']:.3f}, mAP@[0.5:0.95] {results['map']:.3f}, "
         f"class error {results['val_class_err']:.2e} (all-background "
         f"{results['val_class_err_baseline']:.2e}), bbox MAE {results['val_bbox_mae']:.2e}")
    return results


def predict(params: Params, root: Path) -> Path:
    """Draw the boxes above ``conf_threshold`` on validation images (a PNG grid, logged to MLflow)."""
    import torch
    from torchvision.transforms.v2.functional import resize
    from torchvision.utils import draw_bounding_boxes, make_grid

    from cvflow.fileio import atomic_path
    from cvflow.tracking import reopen

    cfg = params.task("bananas")
    net, meta = _load_net(root)
    val_set = _val_set(cfg, root)
    count = min(cfg.grid_images, len(val_set))
    images = torch.stack([val_set[i][0] for i in range(count)])  # the network's input, transformed once
    with torch.inference_mode():
        output = _detect(net(images.float() / 255), cfg.nms_threshold)
    drawn = []
    for index, rows in enumerate(output):  # drawn on the stored image, at its own resolution
        original = val_set.images[index]
        kept = rows[(rows[:, 0] >= 0) & (rows[:, 1] >= cfg.conf_threshold)]
        scale = torch.tensor([original.shape[2], original.shape[1]] * 2, dtype=torch.float32)
        canvas = draw_bounding_boxes(original, val_set.boxes[index], colors="lime", width=1)
        if len(kept):
            canvas = draw_bounding_boxes(canvas, kept[:, 2:] * scale, [f"{float(c):.2f}" for c in kept[:, 1]],
                                         colors="red", width=2)
        if drawn and canvas.shape != drawn[0].shape:  # one grid needs one size (a local set may mix them)
            canvas = resize(canvas, list(drawn[0].shape[-2:]), antialias=True)
        drawn.append(canvas)
    grid = make_grid(drawn, nrow=4, padding=4, pad_value=255)
    path = reports(root) / "predictions.png"
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(grid.permute(1, 2, 0).numpy()).save(tmp, format="PNG")
    tracker = reopen(root, meta.get("mlflow_run_id", "")) if meta.get("mlflow_run_id") else None
    if tracker is not None:
        tracker.log_artifact(path, "plots")
    info(f"predictions (red: confidence >= {cfg.conf_threshold}; green: ground truth) at {path}")
    return path
