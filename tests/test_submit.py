"""`cvflow submit`: the default message (git commit + newest finished MLflow run) and the CLI's refusals.

Nothing is ever sent: the Kaggle call is replaced by a recorder (see test_kaggle.py for the
client-level tests with a fake KaggleApi).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cvflow.data.sources import kaggle
from cvflow.competition import Competition, default_message, submit
from conftest import REPO, run_cvflow


CIFAR = Competition("cifar-10", "kaggle-cifar10", "trainLabels.csv", "kaggle_cifar10_tiny", "Kaggle CIFAR-10")


@pytest.fixture
def sent(monkeypatch) -> list[tuple]:
    calls: list[tuple] = []
    monkeypatch.setattr(kaggle, "kaggle_submit", lambda *args, **kw: calls.append((args, kw)) or {"ok": "1"})
    return calls


def _git_repo(root: Path) -> str:
    run = lambda *a: subprocess.run(["git", *a], cwd=root, check=True, capture_output=True, text=True)  # noqa: E731
    run("init", "-q")
    (root / "f").write_text("x")
    run("add", "f")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    return run("rev-parse", "HEAD").stdout.strip()


def test_default_message_names_the_commit_and_the_newest_finished_run(tmp_path, mlflow_uri, sent):
    import mlflow

    commit = _git_repo(tmp_path)
    assert default_message(tmp_path, "kaggle-cifar10") == f"cvflow kaggle-cifar10 git {commit}"
    mlflow.set_tracking_uri(mlflow_uri)
    experiment = mlflow.set_experiment("kaggle-cifar10")
    with mlflow.start_run(experiment_id=experiment.experiment_id) as old:
        pass
    with mlflow.start_run(experiment_id=experiment.experiment_id) as newest:
        pass
    failed = mlflow.start_run(experiment_id=experiment.experiment_id)
    mlflow.end_run(status="FAILED")
    assert newest.info.run_id != old.info.run_id != failed.info.run_id
    submit(CIFAR, tmp_path)
    assert sent == [(("cifar-10", tmp_path / "data/submissions/kaggle-cifar10.csv",
                      f"cvflow kaggle-cifar10 git {commit} mlflow run {newest.info.run_id}"), {})]


def test_an_explicit_file_and_message_are_passed_as_given(tmp_path, mlflow_uri, sent):
    submit(Competition("cifar-10", "none", "x.csv", "x", "x"), tmp_path, file=Path("mine.csv"), message="hi")
    assert sent == [(("cifar-10", Path("mine.csv"), "hi"), {})]


def test_cli_refuses_a_missing_file_in_one_line(tmp_path, mlflow_uri):
    (tmp_path / "params.yaml").write_bytes((REPO / "params.yaml").read_bytes())
    result = run_cvflow("submit", "kaggle-cifar10", "--file", "missing.csv", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "cvflow: error: missing.csv: no such submission file; write it first (cvflow predict ...) or pass --file"]
