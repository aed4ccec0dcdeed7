"""MLflow tracking in a temporary store: runs, params, per-epoch histories, artifacts, exactly-once on resume."""

from __future__ import annotations

import json

from mlflow.tracking import MlflowClient

from cvflow.tracking import ENV_URI, STAGE, Tracker, find_run, flatten, tracking_uri


def test_default_store_is_inside_the_project(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_URI, raising=False)
    assert tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    monkeypatch.setenv(ENV_URI, "http://127.0.0.1:5000")
    assert tracking_uri(tmp_path) == "http://127.0.0.1:5000"


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": "x"}}, "e": [1, 2]}) == {"a.b": "1", "a.c.d": "x", "e": "[1, 2]"}


def test_run_params_metrics_artifacts(tmp_path, mlflow_uri, monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "exp-lr-sweep")
    tracker = Tracker(tmp_path, "hotdog", "finetune")
    token = STAGE.set("train-hotdog-finetune")  # what `cvflow train hotdog --variant finetune` sets
    try:
        run_id = tracker.start()
    finally:
        STAGE.reset(token)
    tracker.log_params({"run": {"recipe": {"lr": 0.01, "epochs": 3}}})
    for epoch in (1, 2, 3):
        tracker.on_epoch_end({"epoch": epoch, "train_loss": 1.0 / epoch, "test_acc": 0.5 + epoch / 10})
    artifact = tmp_path / "finetune.json"
    artifact.write_text(json.dumps({"test_acc": 0.8}))
    tracker.log_artifact(artifact, "metrics")
    tracker.end()

    client = MlflowClient(mlflow_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "finetune"
    assert client.get_experiment(run.info.experiment_id).name == "hotdog"
    assert run.data.params["run.recipe.lr"] == "0.01"
    assert run.data.tags["stage"] == "train-hotdog-finetune"
    assert run.data.tags["dvc_exp_name"] == "exp-lr-sweep"
    history = client.get_metric_history(run_id, "test_acc")
    assert [(m.step, round(m.value, 3)) for m in history] == [(1, 0.6), (2, 0.7), (3, 0.8)]
    assert [a.path for a in client.list_artifacts(run_id, "metrics")] == ["metrics/finetune.json"]


def test_resumed_run_logs_each_epoch_exactly_once(tmp_path, mlflow_uri):
    history = [{"epoch": e, "train_loss": 1.0 / e} for e in (1, 2, 3)]
    first = Tracker(tmp_path, "hotdog", "scratch")
    run_id = first.start()
    first.on_epoch_end(history[0])  # epoch 2's checkpoint was written, then the process died
    # the next process reopens the same run and fills the gap from the checkpoint's history
    second = Tracker(tmp_path, "hotdog", "scratch")
    assert second.start(run_id) == run_id
    assert second.reconcile(history[:2]) == 1
    second.on_epoch_end(history[2])
    assert second.reconcile(history) == 0
    steps = [m.step for m in MlflowClient(mlflow_uri).get_metric_history(run_id, "train_loss")]
    assert steps == [1, 2, 3]


def test_params_are_not_logged_twice_on_resume(tmp_path, mlflow_uri):
    tracker = Tracker(tmp_path, "hotdog", "x")
    run_id = tracker.start()
    tracker.log_params({"a": 1})
    again = Tracker(tmp_path, "hotdog", "x")
    again.start(run_id)
    again.log_params({"a": 1, "b": 2})  # MLflow forbids re-logging; we only add what is new
    assert MlflowClient(mlflow_uri).get_run(run_id).data.params == {"a": "1", "b": "2"}


def test_deleted_run_starts_a_new_one(tmp_path, mlflow_uri):
    tracker = Tracker(tmp_path, "hotdog", "x")
    old = tracker.start()
    MlflowClient(mlflow_uri).delete_run(old)
    assert Tracker(tmp_path, "hotdog", "x").start(old) != old


def test_find_run_by_model_hash_and_one_evaluation_per_model(tmp_path, mlflow_uri):
    tracker = Tracker(tmp_path, "hotdog", "x")
    run_id = tracker.start(tags={"model_sha1": "abc"})
    tracker.end()
    assert find_run(tmp_path, "hotdog", "def") is None and find_run(tmp_path, "nope", "abc") is None
    found = find_run(tmp_path, "hotdog", "abc")
    assert found.run_id == run_id
    assert found.log_evaluation({"acc": 0.9}, step=3) == {"eval_acc": 0.9}
    assert found.log_evaluation({"acc": 0.9}, step=3) == {}  # a rerun of evaluate: nothing new
    assert found.log_evaluation({"acc": 0.8}, step=3) == {"eval_acc": 0.8}  # new evaluation code: a new value
    history = MlflowClient(mlflow_uri).get_metric_history(run_id, "eval_acc")
    assert [(m.step, round(m.value, 3)) for m in history] == [(3, 0.9), (3, 0.8)]


def test_resumed_run_updates_its_tags(tmp_path, mlflow_uri):
    first = Tracker(tmp_path, "hotdog", "x")
    run_id = first.start(tags={"device": "cpu", "world_size": "1"})
    first.end("KILLED")
    again = Tracker(tmp_path, "hotdog", "x")
    assert again.start(run_id, tags={"device": "cuda:0", "world_size": "2"}) == run_id
    run = MlflowClient(mlflow_uri).get_run(run_id)
    assert run.info.status == "RUNNING"
    assert (run.data.tags["device"], run.data.tags["world_size"]) == ("cuda:0", "2")


def test_default_store_artifacts_stay_in_the_project(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_URI, raising=False)
    tracker = Tracker(tmp_path, "hotdog", "x")
    tracker.start()
    (tmp_path / "a.txt").write_text("x")
    tracker.log_artifact(tmp_path / "a.txt")
    assert (tmp_path / "mlflow.db").exists()
    assert list((tmp_path / "mlruns" / "hotdog").rglob("a.txt"))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_tracking_server_that_does_not_answer_is_one_line_within_seconds(tmp_path, monkeypatch):
    import time

    import pytest

    from cvflow.errors import UserError

    uri = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    monkeypatch.setenv(ENV_URI, uri)
    started = time.monotonic()
    with pytest.raises(UserError) as error:
        Tracker(tmp_path, "hotdog", "finetune")
    assert time.monotonic() - started < 15
    message = str(error.value)
    assert uri in message and ENV_URI in message and "\n" not in message
    with pytest.raises(UserError, match=uri):  # evaluation's look-up of a model's run fails the same way
        find_run(tmp_path, "hotdog", "0" * 40)


def test_a_corrupt_sqlite_store_is_one_line_and_left_untouched(tmp_path, monkeypatch):
    import pytest

    from cvflow.errors import UserError

    monkeypatch.delenv(ENV_URI, raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    store = tmp_path / "mlflow.db"
    garbage = b"this was a database until the disk filled up" * 100
    store.write_bytes(garbage)
    with pytest.raises(UserError, match="mlflow.db: not a readable MLflow store") as error:
        Tracker(tmp_path, "hotdog", "finetune")
    assert "\n" not in str(error.value) and "mlflow.db.broken" in str(error.value)
    assert store.read_bytes() == garbage and sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db"]


def test_a_stage_that_tracks_checks_the_store_before_any_work(project):
    """19.2: `cvflow evaluate hotdog` on a dead URI says so first (exit 2, one line, in seconds), not after
    evaluating a model: here there is no model and no data at all, and the store is what it reports."""
    import time

    from conftest import run_cvflow

    uri = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    started = time.monotonic()
    result = run_cvflow("evaluate", "hotdog", cwd=project, env={ENV_URI: uri, "CVFLOW_WARM": "0"})
    waited = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and uri in lines[0] and ENV_URI in lines[0], result.stderr
    assert waited < 15, waited
    fetch = run_cvflow("fetch", "photos", cwd=project, env={ENV_URI: uri, "CVFLOW_WARM": "0"})
    assert fetch.returncode == 0, fetch.stderr  # a stage that does not track does not need the store
