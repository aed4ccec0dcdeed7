"""TinySSD on bananas through the real commands: train, evaluate (mAP), predict (picture), MLflow.

The evaluation's numbers are checked against an independent computation with the book's own
per-image code (:mod:`cvflow.detection.reference`) on the trained model, so a miscounted class
error, a wrong baseline or metrics logged to the wrong place fail here.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from PIL import Image

from conftest import run_cvflow

pytestmark = pytest.mark.slow

TINY = ["--set", "bananas.demo.demo.train=16", "--set", "bananas.demo.demo.test=4",
        "--set", "bananas.demo.image_size=64", "--set", "bananas.demo.grid_images=4"]


def _book_statistics(project):
    """Class error, its all-background baseline and bbox MAE of the trained model on bananas_val,
    computed with the book's per-image ``multibox_target`` and ``cls_eval`` / ``bbox_eval``."""
    from cvflow.data.readers.bananas import BananasDataset, book_collate, detection_test_transforms
    from cvflow.detection import reference
    import cvflow.detection.ssd  # noqa: F401  (registers the architecture the file names)
    from cvflow.models.files import load_model

    net, _ = load_model(project / "data" / "models" / "bananas" / "tinyssd.pt")
    val = BananasDataset(project / "data" / "banana-detection", "val", transforms=detection_test_transforms(64))
    images, labels = book_collate([val[i] for i in range(len(val))])
    with torch.inference_mode():
        anchors, cls_preds, bbox_preds = net.eval()(images)
    bbox_labels, bbox_masks, cls_labels = reference.multibox_target(anchors, labels)
    wrong = float((cls_preds.argmax(dim=-1).type(cls_labels.dtype) != cls_labels).sum())  # the book's cls_eval
    bbox_abs = float((torch.abs((bbox_labels - bbox_preds) * bbox_masks)).sum())          # the book's bbox_eval
    detections = reference.multibox_detection(torch.softmax(cls_preds, dim=2).permute(0, 2, 1), bbox_preds, anchors,
                                              nms_threshold=_params(project)["nms_threshold"])  # the book's predict
    loss = float(reference.calc_loss(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks).mean())
    return {"val_class_err": wrong / cls_labels.numel(),
            "val_class_err_baseline": float((cls_labels > 0).sum()) / cls_labels.numel(),
            "val_bbox_mae": bbox_abs / bbox_labels.numel()}, detections, labels, images, loss


def _params(project) -> dict:
    return yaml.safe_load((project / "params.yaml").read_text())["bananas"]["demo"]


def _iou(box, boxes):
    """IoU of one (x1, y1, x2, y2) box with each of ``boxes`` (COCO: areas without +1)."""
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = w * h
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / (area(box) + area(boxes) - inter)


def _coco_map(detections, labels, size: int) -> dict:
    """mAP@0.5 and mAP@[0.5:0.95] by hand, as COCO's evaluation defines them (one class, at most 100
    detections per image, greedy matching in descending score, 101-point interpolated precision)."""
    dets, truths = [], []
    for rows, truth in zip(detections.numpy().astype(np.float64), labels.numpy().astype(np.float64)):
        rows = rows[rows[:, 0] >= 0]
        rows = rows[np.argsort(-rows[:, 1], kind="mergesort")][:100]
        dets.append((rows[:, 1], rows[:, 2:] * size))
        truths.append(truth[truth[:, 0] >= 0][:, 1:] * size)
    n_truth = sum(len(t) for t in truths)
    recall_points = np.linspace(0, 1, 101)
    aps = []
    for threshold in np.linspace(0.5, 0.95, 10):
        scores, hits = [], []
        for (score, boxes), truth in zip(dets, truths):
            taken = np.zeros(len(truth), dtype=bool)
            for box in boxes:
                iou = _iou(box, truth) if len(truth) else np.zeros(0)
                iou[taken] = -1
                best = int(np.argmax(iou)) if len(iou) else -1
                hit = best >= 0 and iou[best] >= threshold
                if hit:
                    taken[best] = True
                hits.append(hit)
            scores.append(score)
        order = np.argsort(-np.concatenate(scores), kind="mergesort")
        hit = np.array(hits, dtype=bool)[order]
        tp, fp = np.cumsum(hit), np.cumsum(~hit)
        recall = tp / n_truth
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        precision = np.maximum.accumulate(precision[::-1])[::-1]  # the precision envelope
        at = np.searchsorted(recall, recall_points, side="left")
        aps.append(np.mean([precision[i] if i < len(precision) else 0.0 for i in at]))
    return {"map_50": aps[0], "map": float(np.mean(aps))}


def _untrained_loss(project, images, labels) -> float:
    """The book's loss on bananas_val of the TinySSD training started from: the same seed, the same init."""
    from cvflow.detection.ssd import TinySSD
    from cvflow.detection import reference

    torch.manual_seed(yaml.safe_load((project / "params.yaml").read_text())["common"]["seed"])
    net = TinySSD(num_classes=1, prior_prob=_params(project)["prior_prob"])
    with torch.inference_mode():
        anchors, cls_preds, bbox_preds = net.eval()(images)
    bbox_labels, bbox_masks, cls_labels = reference.multibox_target(anchors, labels)
    return float(reference.calc_loss(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks).mean())


def test_train_evaluate_predict(project, mlflow_uri):
    for args in (["fetch", "bananas"], ["train", "bananas", "--epochs", "2", "--batch-size", "8"],
                 ["evaluate", "bananas"], ["predict", "bananas"], ["evaluate", "bananas"]):
        result = run_cvflow(*args, *TINY, cwd=project)
        assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((project / "metrics" / "bananas.json").read_text())
    book, detections, labels, images, loss = _book_statistics(project)
    for key, value in book.items():
        assert metrics[key] == pytest.approx(value, rel=1e-5, abs=1e-9), key
    assert metrics["val_images"] == 4
    # the mAPs equal COCO's definition computed by hand on the book's own detections of the same model
    by_hand = _coco_map(detections, labels, 64)
    for key in ("map_50", "map"):
        assert metrics[key] == pytest.approx(by_hand[key], abs=1e-6), (key, metrics[key], by_hand[key])
    # the model learned: its loss on bananas_val is below the loss of the initial weights it started from
    assert loss < _untrained_loss(project, images, labels)
    history = (project / "metrics" / "bananas" / "tinyssd_history.csv").read_text().splitlines()
    assert history[0].split(",") == ["epoch", "train_loss", "train_class_err", "train_class_err_baseline",
                                     "train_bbox_mae", "test_loss", "test_class_err", "test_class_err_baseline",
                                     "test_bbox_mae", "lr"]
    assert [row.split(",")[0] for row in history[1:]] == ["1", "2"]
    picture = Image.open(project / "data" / "reports" / "bananas" / "predictions.png")
    assert picture.size[0] > 4 * 64
    client = MlflowClient(mlflow_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("bananas").experiment_id])
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "test_class_err")] == [1, 2]
    # evaluate ran twice: one value per key, at the step of the epochs the model was trained for
    for key in ("map_50", "val_class_err", "val_class_err_baseline", "val_bbox_mae"):
        points = client.get_metric_history(run.info.run_id, f"eval_{key}")
        assert [(m.step, m.value) for m in points] == [(2, pytest.approx(metrics[key]))], key
    assert {a.path for a in client.list_artifacts(run.info.run_id, "metrics")} == {"metrics/tinyssd.json",
                                                                                    "metrics/bananas.json"}
    assert {a.path for a in client.list_artifacts(run.info.run_id, "plots")} == {"plots/predictions.png",
                                                                                 "plots/tinyssd_curves.png"}


def test_evaluate_without_a_model_is_a_user_error(project):
    result = run_cvflow("evaluate", "bananas", cwd=project)
    assert result.returncode == 2 and "cvflow train bananas" in result.stderr
