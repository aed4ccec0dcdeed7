"""A team's MLflow tracking server, for real: `mlflow server` (sqlite backend, local artifact destination,
artifacts served through the server) on a loopback port; a short pipeline tracks through it, and a second
machine's view (a fresh process with nothing but the server's URI) finds the runs, per-epoch metrics,
evaluation, inputs, artifacts and the logged model, and loads the model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, MlflowServer, checkpoint_epoch, free_port, run_cvflow

pytestmark = pytest.mark.slow

SMOKE = ["--set", "common.smoke=true"]

SECOND_MACHINE = r"""
import json, sys
import mlflow, mlflow.pyfunc, numpy as np
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
found["models"] = [m.name for m in models]
found["versions"] = [int(v.version) for v in client.search_model_versions("name = 'bananas-tinyssd'")]
model = mlflow.pyfunc.load_model("models:/bananas-tinyssd/latest")  # from the registry, through the server
boxes = model.predict(np.zeros((1, 90, 120, 3), np.uint8), params={"conf_threshold": 0.0})
found["box_columns"] = list(boxes.columns)
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
    assert found["png"] and found["models"] == ["bananas-tinyssd"] and found["versions"] == [1]
    assert found["box_columns"] == ["image", "label", "score", "xmin", "ymin", "xmax", "ymax"]
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["profile"] == "demo"



def test_a_server_that_dies_mid_training_stops_the_stage_then_the_rerun_resumes_the_run(tmp_path):
    """19.2: the server is killed while a stage trains. The stage stops within a bounded time with one line
    (exit 2) and keeps its checkpoint; once the server is back, the same command resumes the same run,
    which ends FINISHED with every epoch logged exactly once."""
    from mlflow.tracking import MlflowClient

    server = MlflowServer(tmp_path / "server", free_port())
    server.root.mkdir()
    server.start()
    project = tmp_path / "project"
    project.mkdir()
    (project / "params.yaml").write_text((REPO / "params.yaml").read_text())
    env = {**os.environ, "MLFLOW_TRACKING_URI": server.uri}
    try:
        assert run_cvflow("fetch", "bananas", *SMOKE, cwd=project, env=env).returncode == 0
        epochs = "16"  # the stage stops at the first epoch it cannot log (it was 3 of 16 here): 13 to spare
        command = [str(Path(sys.executable).parent / "cvflow"), "train", "bananas", "--epochs", epochs, *SMOKE]
        checkpoint = project / "data" / "checkpoints" / "bananas" / "tinyssd.pt"
        process = subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 300
        while checkpoint_epoch(checkpoint) < 2:
            assert process.poll() is None, "training ended before the server could be killed: " + process.stderr.read()
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
        server.kill()
        killed = time.monotonic()
        _, stderr = process.communicate(timeout=300)
        waited = time.monotonic() - killed
        assert process.returncode == 2, stderr[-3000:]
        lines = stderr.strip().splitlines()
        assert lines[-1].startswith(f"cvflow: error: MLflow store {server.uri} stopped answering"), lines[-3:]
        assert "rerun the same command" in lines[-1] and "Traceback" not in stderr
        assert waited < 60, f"the stage waited {waited:.0f} s on a dead store"
        kept = checkpoint_epoch(checkpoint)
        assert 2 <= kept < int(epochs)  # the finished epochs are kept

        server.start()  # the same store, back on the same port
        result = run_cvflow("train", "bananas", "--epochs", epochs, *SMOKE, cwd=project, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"resuming tinyssd from {checkpoint}: {kept}/{epochs} epochs done" in result.stderr
        client = MlflowClient(server.uri)
        experiment = client.get_experiment_by_name("bananas")
        (run,) = client.search_runs([experiment.experiment_id])  # reopened, not duplicated
        assert run.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")]
        assert steps == list(range(1, int(epochs) + 1))  # every epoch exactly once
        print(f"dead server -> one-line error after {waited:.1f} s; checkpoint at epoch {kept}; resumed to "
              f"{epochs} epochs, FINISHED")
    finally:
        server.kill()
