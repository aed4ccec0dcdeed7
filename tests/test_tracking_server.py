"""A team's MLflow tracking server, for real: `mlflow server` (sqlite backend, local artifact destination,
artifacts served through the server) on a loopback port; a short pipeline tracks through it, and a second
machine's view (a fresh process with nothing but the server's URI) finds the runs, per-epoch metrics,
evaluation, inputs, artifacts and the logged model, and loads the model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_cvflow

pytestmark = pytest.mark.slow

SMOKE = ["--set", "common.smoke=true"]

SECOND_MACHINE = r"""
import json, sys
import mlflow, mlflow.pytorch, torch
from mlflow.tracking import MlflowClient

client = MlflowClient()  # MLFLOW_TRACKING_URI only
experiment = client.get_experiment_by_name("bananas")
(run,) = client.search_runs([experiment.experiment_id])
run_id = run.info.run_id
found = {
    "name": run.info.run_name, "status": run.info.status, "stage": run.data.tags.get("stage"),
    "train_loss_steps": [m.step for m in client.get_metric_history(run_id, "train_loss")],
    "eval_map_50": run.data.metrics.get("eval_map_50"),
    "inputs": sorted(d.dataset.name for d in run.inputs.dataset_inputs),
    "plots": sorted(a.path for a in client.list_artifacts(run_id, "plots")),
    "artifact_uri": run.info.artifact_uri,
}
curves = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="plots/tinyssd_curves.png")
found["png"] = open(curves, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
models = mlflow.search_logged_models(experiment_ids=[experiment.experiment_id], output_format="list")
found["models"] = len(models)
model = mlflow.pytorch.load_model(f"models:/{models[0].model_id}")
with torch.inference_mode():
    outputs = model(torch.rand(1, 3, 64, 64))
found["model_outputs"] = len(outputs)
print(json.dumps(found))
"""


def test_a_pipeline_tracks_through_a_server_and_a_second_machine_sees_it(tmp_path, mlflow_server):
    project = tmp_path / "project"
    project.mkdir()
    (project / "params.yaml").write_text((REPO / "params.yaml").read_text())
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server.uri}
    for args in (("fetch", "bananas"), ("train", "bananas", "--epochs", "2"), ("evaluate", "bananas"),
                 ("predict", "bananas")):
        result = run_cvflow(*args, *SMOKE, cwd=project, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
    # nothing was tracked locally: runs and artifacts went to the server
    assert not (project / "mlflow.db").exists() and not (project / "mlruns").exists()
    assert any((mlflow_server.root / "artifacts").rglob("tinyssd_curves.png"))

    second = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "MLFLOW_TRACKING_URI": mlflow_server.uri}
    seen = subprocess.run([sys.executable, "-c", SECOND_MACHINE], cwd=tmp_path, env=second, capture_output=True,
                          text=True, timeout=600)
    assert seen.returncode == 0, seen.stderr[-3000:]
    found = json.loads(seen.stdout.strip().splitlines()[-1])
    assert (found["name"], found["status"], found["stage"]) == ("tinyssd", "FINISHED", "train-bananas")
    assert found["train_loss_steps"] == [1, 2]  # every epoch, once
    metrics = json.loads((project / "metrics" / "bananas.json").read_text())
    assert found["eval_map_50"] == pytest.approx(metrics["map_50"])  # the evaluation, on the training run
    assert found["inputs"] == ["banana-detection"]  # the data set folder, with its DVC digest
    assert {"plots/tinyssd_curves.png", "plots/predictions.png"} <= set(found["plots"])
    assert found["artifact_uri"].startswith("mlflow-artifacts:")  # proxied: clients need no shared disk
    assert found["png"] and found["models"] == 1 and found["model_outputs"] == 3  # anchors, classes, boxes
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["profile"] == "demo"
