"""MLflow tracking: one experiment per task, one run per training, per-epoch metrics (step = epoch).

The store is ``$MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<project>/mlflow.db`` with
artifacts under ``<project>/mlruns/``. It is deliberately not a DVC param: pointing runs at
another server must not rerun stages. ``<project>`` is ``$DVC_ROOT`` when DVC runs the stage:
an experiment from ``dvc queue`` runs in a temporary copy, and DVC points ``DVC_ROOT`` at the
user's repository, so its runs land in the same store as every other run.

A resumed training reopens its MLflow run (the run id travels in the checkpoint) and
:meth:`Tracker.reconcile` logs exactly the epochs MLflow is missing, so an interruption
never loses an epoch nor logs one twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
import warnings
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from cvflow.errors import UserError

ENV_URI = "MLFLOW_TRACKING_URI"
#: the stage command running now (``train-hotdog-finetune``), set by ``cvflow VERB TASK``: every run it starts
#: is tagged ``stage`` with it, so the tag is said in one place
STAGE: ContextVar[str | None] = ContextVar("cvflow_stage", default=None)
ENV_DVC_ROOT = "DVC_ROOT"

for _name in ("mlflow", "alembic", "sqlalchemy"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def store_dir(project_dir: Path) -> Path:
    """The folder of the default store: the repository DVC runs the stage for (``$DVC_ROOT``: a
    queued experiment's temporary copy names its parent there), else ``project_dir``."""
    return Path(os.environ.get(ENV_DVC_ROOT) or project_dir).resolve()


def tracking_uri(project_dir: Path) -> str:
    uri = os.environ.get(ENV_URI)
    if uri:
        return uri
    return f"sqlite:///{store_dir(project_dir) / 'mlflow.db'}"


#: MLflow's HTTP client retries a failing call with backoff for minutes by default; cvflow bounds every call
#: to about half a minute: 3 attempts of at most 10 s without a byte, 1 s and 2 s apart (a user's own setting
#: of these variables wins)
HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "10", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
               "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


class StoreUnavailable(UserError):
    """The tracking store stopped answering mid-stage (a server went down): one line, exit 2. What was
    computed is kept (checkpoints are written before an epoch is logged); rerunning resumes the run."""


def _unreachable(error: BaseException) -> bool:
    """True when ``error`` says the store could not be reached (as opposed to a refused request)."""
    import requests

    if isinstance(error, (requests.ConnectionError, requests.Timeout)):
        return True
    text = str(error)
    return type(error).__name__ == "MlflowException" and "API request to" in text and "failed" in text


def store_unavailable(uri: str, error: BaseException, doing: str) -> StoreUnavailable:
    reason = " ".join(str(error).split())[:200]
    return StoreUnavailable(f"MLflow store {uri} stopped answering while {doing} ({reason}); what was computed is "
                            "kept (the last epoch's checkpoint): rerun the same command once the store is back, "
                            "and the run resumes with every epoch logged once")


@contextlib.contextmanager
def unreachable_as_error(uri: str, doing: str) -> Iterator[None]:
    """Inside, an unreachable store becomes :class:`StoreUnavailable` (one line); other errors pass."""
    try:
        yield
    except Exception as exc:
        if _unreachable(exc):
            raise store_unavailable(uri, exc, doing) from None
        raise


class _Guarded:
    """An MlflowClient whose calls turn an unreachable store into :class:`StoreUnavailable`."""

    def __init__(self, client: Any, uri: str):
        self._client = client
        self._uri = uri

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with unreachable_as_error(self._uri, f"calling {name}"):
                return attr(*args, **kwargs)

        return call


_CHECKED: set[str] = set()


def check_store(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, in one line, when the store at ``uri`` cannot be used: a tracking server that does not
    answer its ``/health`` within ``timeout`` seconds, or an sqlite file that is not a database. Reads
    only; checked once per process and URI."""
    if uri in _CHECKED:
        return
    for name, value in HTTP_LIMITS.items():
        os.environ.setdefault(name, value)
    if uri.startswith(("http://", "https://")):
        import requests

        try:
            answer = requests.get(uri.rstrip("/") + "/health", timeout=(timeout, timeout))
            answer.raise_for_status()
        except requests.RequestException as exc:
            reason = type(exc).__name__ + (f" {exc.response.status_code}" if getattr(exc, "response", None) is not None
                                           else "")
            raise UserError(f"MLflow tracking server {uri} does not answer ({reason}); start it (`mlflow server "
                            f"--host 127.0.0.1 --port PORT`) or fix {ENV_URI} (unset, runs go to the project's "
                            "mlflow.db)") from None
    elif uri.startswith("sqlite:///"):
        import sqlite3

        path = Path(uri[len("sqlite:///"):])
        if path.exists():
            try:
                with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                    db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.Error as exc:
                raise UserError(f"{path}: not a readable MLflow store ({exc}); move it aside (e.g. `mv {path.name} "
                                f"{path.name}.broken`: the next run starts a new one) or set {ENV_URI}") from None
    _CHECKED.add(uri)


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


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """MLflow's model logging without its INFO lines and download bars (it checks the input example by
    loading the model back): a stage prints its own one line."""
    previous = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    loggers = [logging.getLogger(name) for name in ("mlflow", "mlflow.pyfunc", "mlflow.models")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        if previous is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = previous


def _store_lock(uri: str):
    """An inter-process lock around a process's first use of an sqlite store: creating its tables (a new
    file) and an experiment. Two stages starting at once (``dvc queue start -j 2``) would otherwise both
    create them, and the second fail ("table ... already exists", "UNIQUE constraint failed"). Servers
    serialise their own writes: no lock for them."""
    if not uri.startswith("sqlite:///"):
        return contextlib.nullcontext()
    from filelock import FileLock

    return FileLock(uri[len("sqlite:///"):] + ".lock", timeout=120)


class Tracker:
    """One MLflow run: create or reopen, log params/tags/metrics/artifacts, end."""

    def __init__(self, project_dir: Path, experiment: str, run_name: str):
        import mlflow  # deferred: importing mlflow takes ~2 s
        from mlflow.tracking import MlflowClient

        self._mlflow = mlflow
        self.project_dir = Path(project_dir)
        self.uri = tracking_uri(self.project_dir)
        check_store(self.uri)
        self.experiment = experiment
        self.run_name = run_name
        self.run_id: str | None = None
        with _store_lock(self.uri):  # the client creates a new store's tables
            self.client = _Guarded(MlflowClient(tracking_uri=self.uri), self.uri)
            try:
                found = self.client.get_experiment_by_name(experiment)
            except Exception as exc:  # noqa: BLE001 - bad URI, unreachable server
                raise UserError(f"MLflow store {self.uri}: {type(exc).__name__}: {str(exc).splitlines()[0]} "
                                f"(set {ENV_URI} to a reachable store or unset it)") from None
            if found is None:
                location = None
                if ENV_URI not in os.environ:
                    location = (store_dir(self.project_dir) / "mlruns" / experiment).as_uri()
                self.experiment_id = self.client.create_experiment(experiment, artifact_location=location)
            else:
                self.experiment_id = found.experiment_id

    def start(self, run_id: str | None = None, tags: Mapping[str, str] | None = None) -> str:
        """Reopen ``run_id`` if it still exists, else create a new run; return the run id.

        ``tags`` are set on a reopened run too: the device, precision or world size of a
        resumed attempt may differ from the first one's, and the run shows the latest.
        """
        stage = STAGE.get()
        tags = {**({"stage": stage} if stage else {}), **(tags or {})}
        if run_id:
            try:
                run = self.client.get_run(run_id)
                if run.info.lifecycle_stage == "active":
                    self.run_id = run_id
                    self.client.update_run(run_id, status="RUNNING")
            except StoreUnavailable:
                raise
            except Exception:  # noqa: BLE001 - the run was deleted: start a new one
                self.run_id = None
        if self.run_id is None:
            all_tags = {"mlflow.runName": self.run_name, **git_tags(self.project_dir)}
            if os.environ.get("DVC_EXP_NAME"):
                all_tags["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
            all_tags.update(tags or {})
            run = self.client.create_run(self.experiment_id, run_name=self.run_name, tags=all_tags)
            self.run_id = run.info.run_id
        else:
            self.set_tags({**git_tags(self.project_dir), **(tags or {})})
        return self.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        flat = flatten(params)
        existing = self.client.get_run(self.run_id).data.params
        new = [Param(k, v[:6000]) for k, v in sorted(flat.items()) if k not in existing]
        for start in range(0, len(new), 100):
            self.client.log_batch(self.run_id, params=new[start:start + 100])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        if tags:
            self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

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

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def log_evaluation(self, metrics: Mapping[str, float], step: int) -> dict[str, float]:
        """Log ``eval_<key>`` metrics at ``step`` (the epochs the evaluated model was trained for).

        The convention: one value per key and step. A rerun of ``evaluate`` that finds the same
        value already logged at that step logs nothing, so the history shows one point per
        evaluated model, not one per rerun; a changed value (new evaluation code) is added as a
        new point at the same step and becomes the run's latest. Returns what was logged.
        """
        wanted = {f"eval_{k}": float(v) for k, v in metrics.items()}
        new = {}
        for key, value in wanted.items():
            points = [m for m in self.client.get_metric_history(self.run_id, key) if m.step == step]
            if not points or max(points, key=lambda m: m.timestamp).value != value:
                new[key] = value
        if new:
            self.log_metrics(new, step=step)
        return new

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_inputs(self, inputs: Mapping[str, tuple[Path, str]], context: str = "training") -> None:
        """Record the data sets the run read (name -> (folder, digest)) as MLflow run inputs, so the
        runs table's Dataset column says what each run trained on. Logged once per digest."""
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.entities import DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        run = self.client.get_run(self.run_id)
        logged = {(d.dataset.name, d.dataset.digest) for d in (run.inputs.dataset_inputs if run.inputs else [])}
        entries = []
        for name, (folder, digest) in inputs.items():
            if (name, digest) in logged:
                continue
            with warnings.catch_warnings():  # a local folder matches two registered local sources: the same class
                warnings.simplefilter("ignore", UserWarning)
                source = resolve_dataset_source(str(Path(folder).resolve()))
            dataset = MetaDataset(source=source, name=name, digest=digest)
            entries.append(DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)]))
        if entries:
            self.client.log_inputs(self.run_id, datasets=entries)

    def log_model(self, model_file: Path, servable: Any, classes: Any, modules: Any) -> str | None:
        """Log the model file as the MLflow ``pyfunc`` model ``servable`` describes
        (:class:`cvflow.serving.Servable`: uint8 images in, class names, boxes or masks out), named
        ``servable.name``, with its signature and a real image as the input example; register it under
        that name when ``servable.register``, unless a version of that name already holds a file with
        the same SHA-1 (tag ``model_sha1``). ``modules``: those registering the files' architectures.
        Returns the registered version (new or existing), or None when not registered. The pip
        requirements are given, not inferred (inference imports the model in a subprocess: seconds
        of work that says nothing new)."""
        import mlflow.pyfunc
        import numpy as np

        from cvflow.fileio import sha1sum
        from cvflow.serving import MODEL_CODE, artifacts, model_config, requirements, signature

        sha1 = sha1sum(model_file)
        example = np.ascontiguousarray(servable.examples[0].permute(1, 2, 0).numpy())[None]  # 1 x H x W x 3
        with unreachable_as_error(self.uri, "logging the model"), self._active(), _quiet_mlflow():
            logged = mlflow.pyfunc.log_model(
                name=servable.name, python_model=str(MODEL_CODE), artifacts=artifacts(servable, model_file),
                model_config=model_config(servable, classes, modules), signature=signature(servable, classes),
                input_example=example, pip_requirements=requirements(), tags={"model_sha1": sha1})
        if not servable.register:
            return None
        found = self.client.search_model_versions(f"name = '{servable.name}' and tags.model_sha1 = '{sha1}'")
        if found:
            return str(found[0].version)
        with unreachable_as_error(self.uri, "registering the model"):
            self._mlflow.set_tracking_uri(self.uri)
            version = self._mlflow.register_model(logged.model_uri, servable.name, tags={"model_sha1": sha1})
        return str(version.version)

    def _active(self):
        """This run as the fluent API's active run (``mlflow.pyfunc.log_model`` logs into the active
        run). Leaving it marks the run FINISHED; :meth:`end` then sets its real status."""
        self._mlflow.set_tracking_uri(self.uri)
        return self._mlflow.start_run(run_id=self.run_id)

    def end(self, status: str = "FINISHED") -> None:
        """End the run as FINISHED, FAILED (an error) or KILLED (interrupted). When the store is gone
        the run stays as the store last saw it (RUNNING) and a rerun of the command resumes it."""
        if self.run_id:
            try:
                self.client.set_terminated(self.run_id, status=status)
            except StoreUnavailable:
                if status == "FINISHED":
                    raise


def find_run(project_dir: Path, experiment: str, model_sha1: str) -> "Tracker | None":
    """The newest run of ``experiment`` that trained the model file whose SHA-1 is ``model_sha1``
    (tag ``model_sha1``); None when the store holds none (e.g. the model came from ``dvc pull``)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(project_dir)
    check_store(uri)
    with _store_lock(uri):  # the client creates a new store's tables
        client = MlflowClient(tracking_uri=uri)
    try:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            return None
        runs = client.search_runs([found.experiment_id], f"tags.model_sha1 = '{model_sha1}'",
                                  order_by=["attributes.start_time DESC"], max_results=1)
    except mlflow.exceptions.MlflowException:
        return None
    if not runs:
        return None
    tracker = Tracker(project_dir, experiment, runs[0].info.run_name)
    tracker.run_id = runs[0].info.run_id
    return tracker
