"""System metrics in every training run (issue 27, item 4): MLflow's own monitor samples the machine into the run
the Tracker made (``system/*`` metrics), on by default, off by ``common.system_metrics``, and no sampling thread
outlives the run, whatever its end."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from mlflow.tracking import MlflowClient
from torch.utils.data import TensorDataset

from cvflow.engine.paths import RunPaths
from cvflow.engine.run import RunSpec, train_run
from cvflow.engine.trainer import ClassificationTask
from cvflow.errors import ParamsError
from cvflow.params import Recipe
from cvflow.pipelines import load_params
from cvflow.tracking import Tracker
from conftest import REPO

#: the names MLflow documents for the CPU monitor's metrics (the "system/" prefix is its own)
CPU, MEMORY = "system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"
#: the name MLflow gives its sampling thread (SystemMetricsMonitor.start)
THREAD = "SystemMetricsMonitor"


def _monitors() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == THREAD]


@pytest.fixture(autouse=True)
def _no_monitor_before(tmp_path, monkeypatch):
    assert _monitors() == [], "a monitor thread of an earlier test is still running"
    monkeypatch.chdir(tmp_path)  # MLflow puts a run's artifacts under ./mlruns of a store named by the environment


def _spec(root, trap: BaseException | None = None) -> RunSpec:
    """A training of seconds: the book's feature head on random 192-d vectors, two classes, two epochs; ``trap``
    is raised by the first forward pass in training (a failed or interrupted run)."""
    from cvflow.models.features import feature_head

    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(32, 192, generator=g), torch.randint(0, 2, (32,), generator=g))
    recipe = Recipe.model_validate({"epochs": 2, "batch_size": 8, "optim": {"name": "sgd", "lr": 0.05}})
    folder = root / "data-in"
    folder.mkdir(exist_ok=True)
    (folder / "a.txt").write_text("1234")

    def spring(module, inputs, output):
        if module.training:
            raise trap

    def build():
        model = feature_head(192, 2, hidden=8)
        if trap is not None:
            model.register_forward_hook(spring)
        return model

    return RunSpec(paths=RunPaths(root, "unit", "tiny"), build=build, task=ClassificationTask(), train_set=data,
                   eval_set=data, recipe=recipe, config={"k": 1}, inputs={"unit-data": folder}, classes=["a", "b"])


def _params(*overrides: str):
    return load_params(REPO / "params.yaml", ["common.device=cpu", *overrides])


def _only_run(uri: str):
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("unit").experiment_id])
    return client, run


def test_a_training_run_logs_the_machine_and_leaves_no_sampling_thread(tmp_path, mlflow_uri):
    """On by default (params.yaml says so), at MLflow's 10 s interval: a run of a second or two still gets its
    samples (MLflow alone drops the interval in progress: this fails without the Tracker's last flush)."""
    params = _params()
    assert params.common.system_metrics is True and params.common.system_metrics_interval == 10.0
    result = train_run(_spec(tmp_path), params)
    assert _monitors() == []
    client, run = _only_run(mlflow_uri)
    assert run.info.run_id == result.run_id and run.info.status == "FINISHED"
    for key in (CPU, MEMORY):
        history = client.get_metric_history(run.info.run_id, key)
        assert len(history) >= 1, key
    assert client.get_metric_history(run.info.run_id, MEMORY)[0].value > 0
    assert run.data.params["common.system_metrics"] == "True"


def test_the_param_turns_them_off(tmp_path, mlflow_uri, monkeypatch):
    started = []
    original = threading.Thread.start

    def spy(self):
        started.append(self.name)
        original(self)

    monkeypatch.setattr(threading.Thread, "start", spy)
    train_run(_spec(tmp_path), _params("common.system_metrics=false"))
    monkeypatch.undo()
    _, run = _only_run(mlflow_uri)
    assert run.info.status == "FINISHED"
    assert [key for key in run.data.metrics if key.startswith("system/")] == []
    assert THREAD not in started


@pytest.mark.parametrize("trap, status", [(RuntimeError("boom"), "FAILED"), (KeyboardInterrupt(), "KILLED")])
def test_a_failed_or_killed_run_stops_its_monitor(tmp_path, mlflow_uri, trap, status):
    with pytest.raises(type(trap)):
        train_run(_spec(tmp_path, trap), _params())
    assert _monitors() == []
    client, run = _only_run(mlflow_uri)
    assert run.info.status == status
    assert len(client.get_metric_history(run.info.run_id, CPU)) >= 1


def test_a_reopened_run_samples_on_after_its_last_step(tmp_path, mlflow_uri):
    """A resumed run (the run id from the checkpoint) gets a new monitor whose steps follow the first attempt's:
    no step logged twice. The first attempt samples every 0.05 s until its thread has logged two points itself."""
    client = MlflowClient(mlflow_uri)
    tracker = Tracker(tmp_path, "unit", "tiny")
    run_id = tracker.start(system_metrics=0.05)
    assert len(_monitors()) == 1
    deadline = time.monotonic() + 60
    while len(client.get_metric_history(run_id, CPU)) < 2:
        assert time.monotonic() < deadline, "the monitor's thread logged no samples"
        time.sleep(0.05)
    tracker.end("KILLED")
    assert _monitors() == []
    first = [m.step for m in client.get_metric_history(run_id, CPU)]
    assert len(first) >= 3 and first == list(range(len(first)))  # the thread's samples, then the last flush's

    again = Tracker(tmp_path, "unit", "tiny")
    assert again.start(run_id, system_metrics=60) == run_id
    again.end("FINISHED")
    assert _monitors() == []
    assert [m.step for m in client.get_metric_history(run_id, CPU)] == list(range(len(first) + 1))


def test_logging_a_model_starts_no_second_monitor(tmp_path, mlflow_uri, monkeypatch):
    """Model logging goes through the fluent API's start_run, which starts a monitor of its own when
    MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING is true: the Tracker's monitor is the run's only one."""
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "true")
    tracker = Tracker(tmp_path, "unit", "tiny")
    tracker.start(system_metrics=60)
    try:
        with tracker._active():
            assert len(_monitors()) == 1
    finally:
        tracker.end()
    assert _monitors() == []


@pytest.mark.parametrize("override, named", [("common.system_metrics_interval=0", "common.system_metrics_interval"),
                                             ("common.system_metrics=maybe", "common.system_metrics")])
def test_a_bad_setting_is_one_line_naming_the_key(override, named):
    with pytest.raises(ParamsError) as error:
        _params(override)
    assert named in str(error.value) and "\n" not in str(error.value)
