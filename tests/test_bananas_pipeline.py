"""TinySSD on bananas through the real commands: train, evaluate (mAP), predict (picture), MLflow."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from conftest import run_cvflow

pytestmark = pytest.mark.slow

TINY = ["--set", "bananas.demo.demo.train=16", "--set", "bananas.demo.demo.test=4",
        "--set", "bananas.demo.image_size=64", "--set", "bananas.demo.grid_images=4"]


def test_train_evaluate_predict(project, mlflow_uri):
    for args in (["fetch", "bananas"], ["train", "bananas", "--epochs", "2", "--batch-size", "8"],
                 ["evaluate", "bananas"], ["predict", "bananas"]):
        result = run_cvflow(*args, *TINY, cwd=project)
        assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((project / "metrics" / "bananas.json").read_text())
    assert 0.0 <= metrics["map_50"] <= 1.0 and 0.0 <= metrics["map"] <= metrics["map_50"] + 1e-9
    assert 0.0 <= metrics["val_class_err"] <= 1.0 and metrics["val_images"] == 4
    # 4 images of 64 px: 84 anchors each, a handful of them on the banana
    assert 0.0 < metrics["val_class_err_baseline"] < 0.2
    history = (project / "metrics" / "bananas" / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,") and len(history) == 3
    picture = Image.open(project / "data" / "reports" / "bananas" / "predictions.png")
    assert picture.size[0] > 4 * 64
    client = MlflowClient(mlflow_uri)
    run = client.search_runs([client.get_experiment_by_name("bananas").experiment_id])[0]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "test_class_err")] == [1, 2]
    assert "eval_map_50" in run.data.metrics and "eval_val_class_err_baseline" in run.data.metrics
    assert {a.path for a in client.list_artifacts(run.info.run_id, "metrics")} == {"metrics/train.json",
                                                                                    "metrics/bananas.json"}
    assert {a.path for a in client.list_artifacts(run.info.run_id, "plots")} >= {"plots/predictions.png",
                                                                                  "plots/curves.png"}


def test_evaluate_without_a_model_is_a_user_error(project):
    result = run_cvflow("evaluate", "bananas", cwd=project)
    assert result.returncode == 2 and "cvflow train bananas" in result.stderr
