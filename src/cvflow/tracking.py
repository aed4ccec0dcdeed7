"""MLflow tracking: one experiment per task, one run per training, per-epoch metrics (step = epoch).

The store is ``$MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<project>/mlflow.db`` with
artifacts under ``<project>/mlruns/``. It is deliberately not a DVC param: pointing runs at
another server must not rerun stages.

A resumed training reopens its MLflow run (the run id travels in the checkpoint) and
:meth:`Tracker.reconcile` logs exactly the epochs MLflow is missing, so an interruption
never loses an epoch nor logs one twice.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from cvflow.errors import UserError

ENV_URI = "MLFLOW_TRACKING_URI"

for _name in ("mlflow", "alembic", "sqlalchemy"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def tracking_uri(project_dir: Path) -> str:
    uri = os.environ.get(ENV_URI)
    if uri:
        return uri
    return f"sqlite:///{Path(project_dir).resolve() / 'mlflow.db'}"


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{'a': {'b': 1}}`` -> ``{'a.b': '1'}`` (MLflow params are flat strings)."""
    flat: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = str(value)
    return flat


def git_tags(project_dir: Path) -> dict[str, str]:
    """The commit the run was made from (MLflow's standard tag), and whether the tree was dirty."""
    tags: dict[str, str] = {}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_dir, capture_output=True,
                                text=True, timeout=10)
        if commit.returncode == 0:
            tags["mlflow.source.git.commit"] = commit.stdout.strip()
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=project_dir,
                                   capture_output=True, text=True, timeout=10)
            tags["git_dirty"] = str(bool(dirty.stdout.strip())).lower()
    except (OSError, subprocess.SubprocessError):
        pass
    return tags


class Tracker:
    """One MLflow run: create or reopen, log params/tags/metrics/artifacts, end."""

    def __init__(self, project_dir: Path, experiment: str, run_name: str):
        import mlflow  # deferred: importing mlflow takes ~2 s
        from mlflow.tracking import MlflowClient

        self._mlflow = mlflow
        self.project_dir = Path(project_dir)
        self.uri = tracking_uri(self.project_dir)
        self.client = MlflowClient(tracking_uri=self.uri)
        self.experiment = experiment
        self.run_name = run_name
        self.run_id: str | None = None
        try:
            found = self.client.get_experiment_by_name(experiment)
        except Exception as exc:  # noqa: BLE001 - bad URI, unreachable server
            raise UserError(f"MLflow store {self.uri}: {type(exc).__name__}: {str(exc).splitlines()[0]} "
                            f"(set {ENV_URI} to a reachable store or unset it)") from None
        if found is None:
            location = None
            if ENV_URI not in os.environ:
                location = (self.project_dir.resolve() / "mlruns" / experiment).as_uri()
            self.experiment_id = self.client.create_experiment(experiment, artifact_location=location)
        else:
            self.experiment_id = found.experiment_id

    def start(self, run_id: str | None = None, tags: Mapping[str, str] | None = None) -> str:
        """Reopen ``run_id`` if it still exists, else create a new run; return the run id."""
        if run_id:
            try:
                run = self.client.get_run(run_id)
                if run.info.lifecycle_stage == "active":
                    self.run_id = run_id
                    self.client.update_run(run_id, status="RUNNING")
            except Exception:  # noqa: BLE001 - the run was deleted: start a new one
                self.run_id = None
        if self.run_id is None:
            all_tags = {"mlflow.runName": self.run_name, **git_tags(self.project_dir)}
            if os.environ.get("DVC_EXP_NAME"):
                all_tags["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
            all_tags.update(tags or {})
            run = self.client.create_run(self.experiment_id, run_name=self.run_name, tags=all_tags)
            self.run_id = run.info.run_id
        return self.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        flat = flatten(params)
        existing = self.client.get_run(self.run_id).data.params
        new = [Param(k, v[:6000]) for k, v in sorted(flat.items()) if k not in existing]
        for start in range(0, len(new), 100):
            self.client.log_batch(self.run_id, params=new[start:start + 100])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, value)

    def log_epoch(self, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        step = int(metrics["epoch"])
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if k != "epoch"]
        self.client.log_batch(self.run_id, metrics=batch)

    def on_epoch_end(self, metrics: Mapping[str, float]) -> None:  # engine callback
        self.log_epoch(metrics)

    def logged_epochs(self, key: str) -> set[int]:
        return {m.step for m in self.client.get_metric_history(self.run_id, key)}

    def reconcile(self, history: Iterable[Mapping[str, float]]) -> int:
        """Log the epochs of ``history`` that the run lacks (after a resume); return how many."""
        history = list(history)
        if not history:
            return 0
        key = next(k for k in history[0] if k != "epoch")
        done = self.logged_epochs(key)
        missing = [row for row in history if int(row["epoch"]) not in done]
        for row in missing:
            self.log_epoch(row)
        return len(missing)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step or 0) for k, v in metrics.items()])

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def end(self, status: str = "FINISHED") -> None:
        if self.run_id:
            self.client.set_terminated(self.run_id, status=status)


def reopen(project_dir: Path, run_id: str) -> Tracker | None:
    """A tracker on an existing run (e.g. to add evaluation artifacts); None if the run is gone."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri(project_dir))
    try:
        run = client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        return None
    experiment = client.get_experiment(run.info.experiment_id)
    tracker = Tracker(project_dir, experiment.name, run.info.run_name)
    tracker.run_id = run_id
    return tracker
