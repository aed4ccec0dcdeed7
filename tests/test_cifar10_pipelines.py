"""CIFAR-10 through the real commands: 13.1 with and without augmentation, 13.13 to a Kaggle submission."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import checkpoint_epoch, run_cvflow, shared

pytestmark = pytest.mark.slow

AUG = ["--set", "cifar10.demo.demo.train=96", "--set", "cifar10.demo.demo.test=40",
       "--set", "cifar10.demo.train_images=null", "--set", "cifar10.demo.net.width=4",
       "--set", "cifar10.demo.recipe.epochs=2", "--set", "cifar10.demo.recipe.batch_size=32"]
KAGGLE = ["--set", "kaggle_cifar10.demo.demo.train=120", "--set", "kaggle_cifar10.demo.demo.test=30",
          "--set", "kaggle_cifar10.demo.net.width=4", "--set", "kaggle_cifar10.demo.recipe.batch_size=32"]


def _ok(*args, cwd, extra=()):
    result = run_cvflow(*args, *extra, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_augmentation_runs_and_their_comparison(project, mlflow_uri):
    _ok("fetch", "cifar10", cwd=project, extra=AUG)
    for variant in ("augment", "no-augment"):
        _ok("train", "cifar10", "--variant", variant, cwd=project, extra=AUG)
    _ok("evaluate", "cifar10", cwd=project, extra=AUG)
    metrics = json.loads((project / "metrics" / "cifar10-augmentation.json").read_text())
    assert metrics["test_images"] == 40
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("cifar10-augmentation")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"augment", "no-augment"}
    for variant in ("augment", "no-augment"):
        run = runs[variant]
        key = variant.replace("-", "_")
        # the evaluation tests the saved model: the same accuracy as the run's last epoch on the same test set
        last = json.loads((project / "metrics" / "cifar10-augmentation" / f"{variant}.json").read_text())
        assert metrics[key]["test_acc"] == pytest.approx(last["test_acc"], abs=1e-6)
        assert run.data.metrics["eval_test_acc"] == pytest.approx(metrics[key]["test_acc"])
        assert [m.step for m in client.get_metric_history(run.info.run_id, "test_acc")] == [1, 2]
    # the two runs differ only in the train transforms
    assert runs["augment"].data.params["run.augment.hflip"] == "True"
    assert runs["no-augment"].data.params["run.augment"] == "None"
    assert runs["augment"].data.params["run.recipe.optim.lr"] == runs["no-augment"].data.params["run.recipe.optim.lr"]


def _submission(project: Path) -> list[list[str]]:
    with (project / "data" / "submissions" / "kaggle-cifar10.csv").open(newline="") as handle:
        return list(csv.reader(handle))


def test_kaggle_cifar10_to_a_checked_submission(project, mlflow_uri):
    for args in (("fetch", "kaggle-cifar10"), ("prepare", "kaggle-cifar10"),
                 ("train", "kaggle-cifar10", "--variant", "train", "--epochs", "1"),
                 ("train", "kaggle-cifar10", "--variant", "train_valid", "--epochs", "1"),
                 ("predict", "kaggle-cifar10"), ("evaluate", "kaggle-cifar10")):
        _ok(*args, cwd=project, extra=KAGGLE)
    rows = _submission(project)
    test_ids = sorted(int(p.stem) for p in (project / "data" / "kaggle-cifar10" / "test").glob("*.png"))
    assert rows[0] == ["id", "label"]
    assert [int(r[0]) for r in rows[1:]] == test_ids  # every test image once, ids in numeric order
    from cvflow.data.readers.cifar import CIFAR10_CLASSES

    assert {r[1] for r in rows[1:]} <= set(CIFAR10_CLASSES)
    metrics = json.loads((project / "metrics" / "kaggle-cifar10.json").read_text())
    assert metrics["submission_rows"] == len(test_ids)
    assert set(metrics["valid_acc_per_class"]) <= set(CIFAR10_CLASSES)
    # the valid accuracy (and per class) is the saved `train` model's, recounted here image by image
    hits = _valid_hits_by_hand(project)
    assert metrics["valid_images"] == sum(len(h) for h in hits.values())
    assert metrics["valid_acc"] == pytest.approx(sum(map(sum, hits.values())) / metrics["valid_images"], abs=1e-6)
    assert metrics["valid_acc_per_class"] == {c: pytest.approx(sum(h) / len(h), abs=1e-6) for c, h in hits.items()}
    # scored against labels: the submission's own labels score 1; flipping half of them scores 0.5
    labels = project / "labels.csv"
    flipped = [[r[0], r[1] if i % 2 else ("cat" if r[1] != "cat" else "dog")] for i, r in enumerate(rows[1:])]
    labels.write_text("id,label\n" + "".join(f"{a},{b}\n" for a, b in flipped))
    _ok("evaluate", "kaggle-cifar10", "--labels", str(labels), cwd=project, extra=KAGGLE)
    scored = json.loads((project / "metrics" / "kaggle-cifar10.json").read_text())
    assert scored["test_scored"] == len(test_ids)
    assert scored["test_acc"] == pytest.approx(sum(1 for i in range(len(test_ids)) if i % 2) / len(test_ids))
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("kaggle-cifar10")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert [a.path for a in client.list_artifacts(runs["train_valid"].info.run_id, "submission")] == \
        ["submission/kaggle-cifar10.csv"]
    assert runs["train"].data.metrics["eval_valid_acc"] == pytest.approx(metrics["valid_acc"])


def _valid_hits_by_hand(project: Path) -> dict[str, list[bool]]:
    """Per class, whether ``data/models/kaggle-cifar10/train.pt`` classifies each image of the prepared valid
    split right: every PNG read with PIL, normalised as the book's transform_test, classified one at a time."""
    import numpy as np
    import yaml
    from PIL import Image

    import cvflow.models.cifar  # noqa: F401  (registers the architecture the file names)
    from cvflow.models.files import load_model

    model, data = load_model(project / "data" / "models" / "kaggle-cifar10" / "train.pt")
    model.eval()
    cfg = yaml.safe_load((project / "params.yaml").read_text())["kaggle_cifar10"]["demo"]["transforms"]
    mean, std = torch.tensor(cfg["mean"]).view(3, 1, 1), torch.tensor(cfg["std"]).view(3, 1, 1)
    hits: dict[str, list[bool]] = {}
    with torch.inference_mode():
        for label, name in enumerate(data["classes"]):
            for path in sorted((project / "data" / "kaggle-cifar10-prepared" / "valid" / name).glob("*.png")):
                x = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255
                hits.setdefault(name, []).append(int(model(((x - mean) / std)[None]).argmax()) == label)
    return hits



def test_retrain_stopped_by_ctrl_c_is_killed_then_resumed(project, mlflow_uri):
    for args in (("fetch", "kaggle-cifar10"), ("prepare", "kaggle-cifar10")):
        _ok(*args, cwd=project, extra=KAGGLE)
    epochs = "50"  # an epoch of the tiny set takes a tenth of a second: room to interrupt on a busy machine
    exe = str(Path(sys.executable).parent / "cvflow")
    args = [exe, "train", "kaggle-cifar10", "--variant", "train_valid", "--epochs", epochs, *KAGGLE]
    checkpoint = project / "data" / "checkpoints" / "kaggle-cifar10" / "train_valid.pt"
    # a job started in the background of a non-interactive shell (as CI may run us) inherits SIGINT ignored;
    # Ctrl-C reaches a terminal's foreground process, so the child gets SIGINT's default back
    process = subprocess.Popen(args, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={**os.environ}, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while not checkpoint.exists() or checkpoint_epoch(checkpoint) < 1:
        assert process.poll() is None, "training ended before it could be interrupted"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)  # Ctrl-C
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert "interrupted; rerun the same command to resume" in stderr and "Traceback" not in stderr
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("kaggle-cifar10")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "KILLED"
    killed_at = checkpoint_epoch(checkpoint)
    result = _ok("train", "kaggle-cifar10", "--variant", "train_valid", "--epochs", epochs, cwd=project, extra=KAGGLE)
    assert f"resuming train_valid from {checkpoint}: {killed_at}/{epochs} epochs done" in result.stderr
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == list(range(1, int(epochs) + 1))


def test_real_kaggle_slice_through_the_local_source(project, mlflow_uri):
    """The shared real slice (4,660 training and 846 test images of the real competition), fetched as
    `--source local`, trained briefly, predicted and scored against its true test labels."""
    real = shared("kaggle-cifar10-real")
    small = ["--set", "kaggle_cifar10.demo.net.width=4", "--set", "kaggle_cifar10.demo.recipe.batch_size=128"]
    for args in (("fetch", "kaggle-cifar10", "--source", "local", "--path", str(real)), ("prepare", "kaggle-cifar10"),
                 ("train", "kaggle-cifar10", "--variant", "train_valid", "--epochs", "1"),
                 ("predict", "kaggle-cifar10")):
        _ok(*args, cwd=project, extra=small)
    _ok("train", "kaggle-cifar10", "--variant", "train", "--epochs", "1", cwd=project, extra=small)
    _ok("evaluate", "kaggle-cifar10", "--labels", str(real / "testLabels.csv"), cwd=project, extra=small)
    metrics = json.loads((project / "metrics" / "kaggle-cifar10.json").read_text())
    assert metrics["submission_rows"] == 846 and metrics["test_scored"] == 846
    # the test accuracy is the submission's agreement with the true labels, counted here by hand
    with (real / "testLabels.csv").open(newline="") as handle:
        truth = {row["id"]: row["label"] for row in csv.DictReader(handle)}
    predicted = {r[0]: r[1] for r in _submission(project)[1:]}
    assert set(predicted) == set(truth)
    right = sum(predicted[i] == truth[i] for i in truth)
    assert metrics["test_acc"] == pytest.approx(right / len(truth), abs=1e-6)
