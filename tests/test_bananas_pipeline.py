"""TinySSD on bananas through the real commands: train, evaluate (mAP), predict (picture), MLflow.

The evaluation's numbers are checked against an independent computation with the book's own
per-image code (:mod:`cvflow.detection.reference`) on the trained model, so a miscounted class
error, a wrong baseline or metrics logged to the wrong place fail here.
"""

from __future__ import annotations

import json

import pytest
import torch
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
    from cvflow.models.files import load_model

    net, _ = load_model(project / "data" / "models" / "bananas" / "tinyssd.pt")
    val = BananasDataset(project / "data" / "banana-detection", "val", transforms=detection_test_transforms(64))
    images, labels = book_collate([val[i] for i in range(len(val))])
    with torch.inference_mode():
        anchors, cls_preds, bbox_preds = net.eval()(images)
    bbox_labels, bbox_masks, cls_labels = reference.multibox_target(anchors, labels)
    wrong = float((cls_preds.argmax(dim=-1).type(cls_labels.dtype) != cls_labels).sum())  # the book's cls_eval
    bbox_abs = float((torch.abs((bbox_labels - bbox_preds) * bbox_masks)).sum())          # the book's bbox_eval
    return {"val_class_err": wrong / cls_labels.numel(),
            "val_class_err_baseline": float((cls_labels > 0).sum()) / cls_labels.numel(),
            "val_bbox_mae": bbox_abs / bbox_labels.numel()}


def test_train_evaluate_predict(project, mlflow_uri):
    for args in (["fetch", "bananas"], ["train", "bananas", "--epochs", "2", "--batch-size", "8"],
                 ["evaluate", "bananas"], ["predict", "bananas"], ["evaluate", "bananas"]):
        result = run_cvflow(*args, *TINY, cwd=project)
        assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((project / "metrics" / "bananas.json").read_text())
    book = _book_statistics(project)
    for key, value in book.items():
        assert metrics[key] == pytest.approx(value, rel=1e-5, abs=1e-9), key
    assert metrics["val_images"] == 4 and 0.0 < metrics["map"] <= metrics["map_50"] + 1e-9 or metrics["map_50"] == 0
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
