"""Real processes: a killed training resumes from its checkpoint; two-process DDP (gloo) on CPU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import run_cvflow

pytestmark = pytest.mark.slow


def _checkpoint_epoch(path: Path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=False)["epoch"])
    except Exception:  # noqa: BLE001 - not written yet
        return 0


def _fetched(project: Path) -> Path:
    result = run_cvflow("fetch", "hotdog", cwd=project)
    assert result.returncode == 0, result.stderr
    return project


def test_killed_training_resumes_without_losing_or_repeating_epochs(project, mlflow_uri):
    _fetched(project)
    epochs = "20"
    exe = str(Path(sys.executable).parent / "cvflow")
    args = [exe, "train", "hotdog", "--variant", "scratch", "--epochs", epochs]
    checkpoint = project / "data" / "checkpoints" / "hotdog" / "scratch.pt"
    process = subprocess.Popen(args, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while _checkpoint_epoch(checkpoint) < 2:
        assert process.poll() is None, "training ended before it could be interrupted"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # no clean-up of any kind
    process.wait()
    killed_at = _checkpoint_epoch(checkpoint)
    assert 2 <= killed_at < int(epochs)

    result = run_cvflow("train", "hotdog", "--variant", "scratch", "--epochs", epochs, cwd=project)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming scratch from {checkpoint}: {killed_at}/{epochs} epochs done" in result.stderr
    assert f"scratch epoch {killed_at}/{epochs}:" not in result.stderr  # done epochs are not redone
    assert f"scratch epoch {killed_at + 1}/{epochs}:" in result.stderr
    assert not checkpoint.exists()  # removed once the outputs are written

    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("hotdog")
    runs = client.search_runs([experiment.experiment_id], "attributes.run_name = 'scratch'")
    assert len(runs) == 1  # the killed run was reopened, not duplicated
    steps = [m.step for m in client.get_metric_history(runs[0].info.run_id, "train_loss")]
    assert steps == list(range(1, int(epochs) + 1))  # every epoch exactly once
    assert runs[0].info.status == "FINISHED"


def test_two_process_ddp_training_on_cpu(project, mlflow_uri):
    _fetched(project)
    exe = str(Path(sys.executable).parent / "cvflow")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", exe,
         "train", "hotdog", "--variant", "scratch", "--epochs", "2", "--batch-size", "8"],
        cwd=project, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("scratch epoch 2/2:") == 1  # only rank 0 reports and writes
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("hotdog")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.tags["world_size"] == "2"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "test_acc")] == [1, 2]
    # every one of the 12 test images counted exactly once across the two ranks
    accuracy = run.data.metrics["test_acc"]
    assert abs(accuracy * 12 - round(accuracy * 12)) < 1e-6
    assert (project / "data" / "models" / "hotdog" / "scratch.pt").exists()
