"""MLflow tracking: one experiment per task, one run per training, per-epoch metrics (step = epoch).

The store is ``$MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<project>/mlflow.db`` with
artifacts under ``<project>/mlruns/``. It is deliberately not a DVC param: pointing runs at
another server must not rerun stages. ``<project>`` is ``$DVC_ROOT`` when DVC runs the stage:
an experiment from ``dvc queue`` runs in a temporary copy, and DVC points ``DVC_ROOT`` at the
user's repository, so its runs land in the same store as every other run.

A resumed training reopens its MLflow run (the run id travels in the checkpoint) and
:meth:`Tracker.reconcile` logs exactly the epochs MLflow is missing, so an interruption
never loses an epoch nor logs one twice.

While a run is open, MLflow's own system-metrics monitor samples the machine (CPU, memory, disk, network; NVIDIA
GPUs where ``nvidia-ml-py`` finds a driver) into its ``system/*`` metrics: :meth:`Tracker.start` starts it for the
run it created or reopened, :meth:`Tracker.end` stops it before the run ends, so no sampling thread outlives the run.
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
# MLflow logs a failing SQL statement with its traceback before raising it: cvflow reports the error in one line
logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


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


class StoreError(UserError):
    """The tracking store failed a request: it refused it, its database is damaged or read-only, its API answers
    errors. One line, exit 2, so that DVC does not record the stage done with its results missing from MLflow."""


class StoreUnavailable(StoreError):
    """The tracking store stopped answering mid-stage (a server went down): one line, exit 2. What was
    computed is kept (checkpoints are written before an epoch is logged); rerunning resumes the run."""


class NotInStore(StoreError):
    """The store answered that it holds no such run (MLflow's ``RESOURCE_DOES_NOT_EXIST``): the one store error
    that can be control flow (a resumed run deleted for good starts a new one)."""


def _unreachable(error: BaseException) -> bool:
    """True when ``error`` says the store could not be reached (as opposed to a refused request)."""
    import requests

    if isinstance(error, (requests.ConnectionError, requests.Timeout)):
        return True
    text = str(error)
    return type(error).__name__ == "MlflowException" and "API request to" in text and "failed" in text


def _store_failure(error: BaseException, any_mlflow_error: bool) -> bool:
    """True when ``error``, raised by a call to the store, is the store's failure rather than a bug in cvflow: an
    error of the database, the HTTP client or the file system anywhere in its chain, a server's error answer, or
    (``any_mlflow_error``: the call only talks to the store) any MlflowException."""
    import sqlite3

    import requests
    from mlflow.exceptions import MlflowException, RestException
    from sqlalchemy.exc import SQLAlchemyError

    if (any_mlflow_error and isinstance(error, MlflowException)) or isinstance(error, RestException):
        return True
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, (requests.RequestException, SQLAlchemyError, sqlite3.Error, OSError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _reason(error: BaseException) -> str:
    """What went wrong in a few words: the database's own error (not SQLAlchemy's SQL and advice), the HTTP
    client's last reason (not the URL twice), else the first line of the message."""
    import requests
    from sqlalchemy.exc import DBAPIError

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, DBAPIError) and seen.orig is not None:
            return f"{type(seen.orig).__name__}: {seen.orig}"
        if isinstance(seen, requests.RequestException) and seen.args:
            return f"{type(seen).__name__}: {getattr(seen.args[0], 'reason', None) or seen.args[0]}"
        seen = seen.__cause__ or seen.__context__
    lines = str(error).strip().splitlines()
    return " ".join(lines[0].split())[:300] if lines else type(error).__name__


def store_unavailable(uri: str, error: BaseException, doing: str) -> StoreUnavailable:
    return StoreUnavailable(f"MLflow store {uri} stopped answering while {doing} ({_reason(error)}); rerun the "
                            "same command once the store is back: a training resumes from its last checkpoint, with "
                            "every epoch logged once")


def store_failed(uri: str, error: BaseException, doing: str) -> StoreError:
    from mlflow.exceptions import MlflowException

    kind = NotInStore if isinstance(error, MlflowException) and error.error_code == "RESOURCE_DOES_NOT_EXIST" \
        else StoreError
    return kind(f"MLflow store {uri} failed while {doing} ({_reason(error)}); the stage stops rather than leave a "
                f"result unrecorded: repair the store (or set {ENV_URI} to another one) and rerun the same command")


@contextlib.contextmanager
def store_errors(uri: str, doing: str, any_mlflow_error: bool = True) -> Iterator[None]:
    """Inside, a failure of the store becomes :class:`StoreError` (one line; :class:`StoreUnavailable` when it
    could not be reached); other errors (cvflow's bugs) pass with their traceback. ``any_mlflow_error``: see
    :func:`_store_failure` (False around calls that do more than talk to the store, as logging a model)."""
    try:
        yield
    except StoreError:
        raise
    except Exception as exc:
        if _unreachable(exc):
            raise store_unavailable(uri, exc, doing) from None
        if _store_failure(exc, any_mlflow_error):
            raise store_failed(uri, exc, doing) from None
        raise


class _Guarded:
    """An MlflowClient whose every call turns a failure of the store into :class:`StoreError`."""

    def __init__(self, client: Any, uri: str):
        self._client = client
        self._uri = uri

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with store_errors(self._uri, f"calling {name}"):
                return attr(*args, **kwargs)

        return call


def store_client(uri: str) -> _Guarded:
    """An MlflowClient of the store at ``uri`` (checked first) whose calls fail as :class:`StoreError`. Making it
    opens the store: a new sqlite store gets its tables, under the store's lock."""
    from mlflow.tracking import MlflowClient

    check_store(uri)
    with _store_lock(uri), store_errors(uri, "opening the store"):
        return _Guarded(MlflowClient(tracking_uri=uri), uri)


#: the store schemes MLflow builds in (``mlflow.tracking._tracking_service.utils._register_tracking_stores``; MLflow
#: has no public accessor): written here so that checking a URI costs no import of MLflow; plugins add theirs
#: through the documented entry point group. tests/test_tracking_faults.py compares this with MLflow's registry.
BUILT_IN_SCHEMES = frozenset({"", "file", "databricks", "databricks-uc", "uc", "http", "https", "postgresql",
                              "mysql", "sqlite", "mssql"})


def known_schemes() -> set[str]:
    """The URI schemes MLflow can track to: its built-in stores and those of installed plugins."""
    from importlib.metadata import entry_points

    return set(BUILT_IN_SCHEMES) | {entry.name for entry in entry_points(group="mlflow.tracking_store")}


def _scheme(uri: str) -> str:
    """The store scheme of ``uri`` as MLflow reads it: ``postgresql+psycopg2://`` is ``postgresql``, a Windows
    path (``C:\\mlruns``) has none."""
    from urllib.parse import urlparse

    scheme = urlparse(uri).scheme.lower().split("+", 1)[0]
    return "" if len(scheme) == 1 else scheme


_CHECKED: set[str] = set()


def check_store(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, in one line, when the store at ``uri`` cannot take a stage's results: a scheme MLflow does not
    know (a typo), a tracking server that does not answer its ``/health`` within ``timeout`` seconds or whose API
    fails, an sqlite file or folder the stage cannot write, or an sqlite file that is not a sound database.
    Reads only; checked once per process and URI."""
    if uri in _CHECKED:
        return
    for name, value in HTTP_LIMITS.items():
        os.environ.setdefault(name, value)
    scheme = _scheme(uri)
    if scheme not in known_schemes():
        raise UserError(f"{ENV_URI}={uri}: MLflow knows no store scheme {scheme!r}; use sqlite:///PATH (a file) or "
                        f"http://HOST:PORT (a tracking server), or unset {ENV_URI} (runs go to the project's "
                        "mlflow.db)")
    if scheme in ("http", "https"):
        _check_server(uri, timeout)
    elif scheme == "sqlite":
        _check_sqlite(uri)
    _CHECKED.add(uri)


def _check_server(uri: str, timeout: float) -> None:
    """``/health`` first (seconds when nothing listens), then one search of the API: a server whose process is up
    but whose database is down answers the first and fails the second (503), within :data:`HTTP_LIMITS`."""
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
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)  # MLflow's own client: its auth, retries
    except Exception as exc:
        if not (_unreachable(exc) or _store_failure(exc, any_mlflow_error=True)):
            raise
        raise UserError(f"MLflow tracking server {uri} answers /health but its API fails ({_reason(exc)}); wait "
                        f"until its store is back, or fix {ENV_URI} (unset, runs go to the project's mlflow.db)") \
            from None


#: SQLite's errors that say a file is damaged or no database: the advice is to move it aside
_DAMAGED = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
#: SQLite's errors that say another process is writing it (or left a journal its next writer rolls back): not a
#: fault, MLflow waits and recovers on its own
_BUSY = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_READONLY_ROLLBACK")


def _check_sqlite(uri: str) -> None:
    """The file and its folder writable (SQLite writes its journal, cvflow its lock, beside the file), or, with no
    file yet, a folder to create it in; an existing file a sound database (``PRAGMA quick_check``: it reads every
    page once, about a millisecond per MB, on a read-only connection that writes nothing)."""
    import sqlite3

    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    if not database or database == ":memory:":
        return
    path = Path(database)  # a relative path is the working folder's, as SQLite opens it
    folder = path.parent
    elsewhere = f"or set {ENV_URI} to another store"
    artifacts = folder / "mlruns"  # where cvflow puts a default store's artifacts (models, pictures): beside it
    if artifacts.exists() and not os.access(artifacts, os.W_OK | os.X_OK):
        raise UserError(f"{artifacts}: the MLflow store's artifact folder is not writable (models and pictures go "
                        f"there); make it writable {elsewhere}")
    if not path.exists():
        if not folder.is_dir():
            raise UserError(f"{path}: no folder {folder} to create the MLflow store in; create it {elsewhere}")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UserError(f"{path}: cannot create the MLflow store: its folder {folder} is not writable; make it "
                            f"writable {elsewhere}")
        return
    if not os.access(path, os.R_OK | os.W_OK):
        raise UserError(f"{path}: the MLflow store is read-only to this user; make it writable (`chmod u+rw "
                        f"{path}`, or a file system mounted read-write) {elsewhere}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{path}: the MLflow store's folder {folder} is not writable (SQLite writes its journal "
                        f"beside the file); make it writable {elsewhere}")
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            found = db.execute("PRAGMA quick_check(1)").fetchone()
    except sqlite3.Error as exc:
        name = getattr(exc, "sqlite_errorname", "")
        if name.startswith(_BUSY):
            return
        if not name.startswith(_DAMAGED):
            raise UserError(f"{path}: the MLflow store cannot be read ({exc}); check the file {elsewhere}") from None
        problem = str(exc)
    else:
        if found and found[0] == "ok":
            return
        problem = f"database disk image is malformed: {found[0] if found else 'no answer'}"
    raise UserError(f"{path}: not a readable MLflow store ({problem}); move it aside (e.g. `mv {path.name} "
                    f"{path.name}.broken`: the next run starts a new one) {elsewhere}")


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

        self._mlflow = mlflow
        self.project_dir = Path(project_dir)
        self.uri = tracking_uri(self.project_dir)
        self.experiment = experiment
        self.run_name = run_name
        self.run_id: str | None = None
        self._monitor: Any = None  # MLflow's SystemMetricsMonitor of the open run, when it samples the machine
        self.client = store_client(self.uri)
        with _store_lock(self.uri):  # two stages starting at once create the experiment once
            found = self.client.get_experiment_by_name(experiment)
            if found is None:
                location = None
                if ENV_URI not in os.environ:
                    location = (store_dir(self.project_dir) / "mlruns" / experiment).as_uri()
                self.experiment_id = self.client.create_experiment(experiment, artifact_location=location)
            else:
                self.experiment_id = found.experiment_id

    def start(self, run_id: str | None = None, tags: Mapping[str, str] | None = None,
              system_metrics: float | None = None) -> str:
        """Reopen ``run_id`` if it still exists, else create a new run; return the run id.

        ``tags`` are set on a reopened run too: the device, precision or world size of a
        resumed attempt may differ from the first one's, and the run shows the latest.
        ``system_metrics``: seconds between two samples of the machine logged to the run
        (:attr:`cvflow.params.Common.system_metrics_every`), None for none.
        """
        self._stop_monitor()  # a run started again on this tracker: the earlier run's monitor first
        stage = STAGE.get()
        tags = {**({"stage": stage} if stage else {}), **(tags or {})}
        if run_id:
            try:
                run = self.client.get_run(run_id)
            except NotInStore:  # deleted for good, or another store: a new run (any other failure stops the stage)
                run = None
            if run is not None and run.info.lifecycle_stage == "active":
                self.run_id = run_id
                self.client.update_run(run_id, status="RUNNING")
        if self.run_id is None:
            all_tags = {"mlflow.runName": self.run_name, **git_tags(self.project_dir)}
            if os.environ.get("DVC_EXP_NAME"):
                all_tags["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
            all_tags.update(tags or {})
            run = self.client.create_run(self.experiment_id, run_name=self.run_name, tags=all_tags)
            self.run_id = run.info.run_id
        else:
            self.set_tags({**git_tags(self.project_dir), **(tags or {})})
        if system_metrics is not None:
            self._start_monitor(system_metrics, resumed=bool(run_id) and run_id == self.run_id)
        return self.run_id

    def _start_monitor(self, interval: float, resumed: bool) -> None:
        """Sample the machine into this run every ``interval`` seconds with MLflow's
        ``SystemMetricsMonitor`` (the fluent ``start_run`` would start it, but cvflow creates its runs with the
        client). A reopened run's samples continue from its last step (``resume_logging``). MLflow's
        ``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL``, when set, wins over ``interval``, as MLflow documents."""
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        # quiet: its INFO lines (started, stopping, no GPU found) would be in every stage's output, and its warnings
        # come from a store that failed, which the stage reports in its own one line (or the last flush, below);
        # set here, after importing MLflow, whose logging setup sets its loggers' levels on import
        logging.getLogger("mlflow.system_metrics").setLevel(logging.ERROR)
        with store_errors(self.uri, "starting the system metrics"):
            self._monitor = SystemMetricsMonitor(self.run_id, sampling_interval=interval, resume_logging=resumed,
                                                 tracking_uri=self.uri)
        self._monitor.start()

    def _stop_monitor(self) -> None:
        """Stop the sampling thread (joined: none outlives the run) and log the samples of the interval in
        progress: MLflow's ``finish`` drops them, so a run shorter than one interval would show no system metrics
        at all. The run is still open here (RUNNING): :meth:`end` stops the monitor before it ends the run."""
        monitor, self._monitor = self._monitor, None
        if monitor is None:
            return
        monitor.finish()
        monitor.collect_metrics()  # the machine as the run ends: with the samples since the last one logged
        with store_errors(self.uri, "logging the system metrics"):
            monitor.publish_metrics(monitor.aggregate_metrics())
            monitor.mlflow_logger.flush()

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
        with store_errors(self.uri, "logging the model", any_mlflow_error=False), self._active(), _quiet_mlflow():
            logged = mlflow.pyfunc.log_model(
                name=servable.name, python_model=str(MODEL_CODE), artifacts=artifacts(servable, model_file),
                model_config=model_config(servable, classes, modules), signature=signature(servable, classes),
                input_example=example, pip_requirements=requirements(), tags={"model_sha1": sha1})
        if not servable.register:
            return None
        found = self.client.search_model_versions(f"name = '{servable.name}' and tags.model_sha1 = '{sha1}'")
        if found:
            return str(found[0].version)
        with store_errors(self.uri, "registering the model"):
            self._mlflow.set_tracking_uri(self.uri)
            version = self._mlflow.register_model(logged.model_uri, servable.name, tags={"model_sha1": sha1})
        return str(version.version)

    def _active(self):
        """This run as the fluent API's active run (``mlflow.pyfunc.log_model`` logs into the active
        run). Leaving it marks the run FINISHED; :meth:`end` then sets its real status."""
        self._mlflow.set_tracking_uri(self.uri)
        # the run's own monitor (:meth:`start`) samples it already: never a second one from the fluent API (a
        # user's MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=true would start one here, logging the same steps twice)
        return self._mlflow.start_run(run_id=self.run_id, log_system_metrics=False)

    def end(self, status: str = "FINISHED") -> None:
        """End the run as FINISHED, FAILED (an error) or KILLED (interrupted). When the store is gone
        the run stays as the store last saw it (RUNNING) and a rerun of the command resumes it. The system
        metrics monitor stops first, whatever the status: its last samples land while the run is still open."""
        if self.run_id:
            try:
                try:
                    self._stop_monitor()
                finally:  # the run ends even when its last samples could not be logged
                    self.client.set_terminated(self.run_id, status=status)
            except StoreError:  # a failed or interrupted stage reports its own error, not the store's
                if status == "FINISHED":
                    raise


def find_run(project_dir: Path, experiment: str, model_sha1: str) -> "Tracker | None":
    """The newest run of ``experiment`` that trained the model file whose SHA-1 is ``model_sha1``
    (tag ``model_sha1``); None only when the store holds none (e.g. the model came from ``dvc pull``).
    A store that fails to answer raises :class:`StoreError`: taken for "no run", it would let the
    caller's stage exit 0 with its results missing from MLflow."""
    client = store_client(tracking_uri(project_dir))
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs([found.experiment_id], f"tags.model_sha1 = '{model_sha1}'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        return None
    tracker = Tracker(project_dir, experiment, runs[0].info.run_name)
    tracker.run_id = runs[0].info.run_id
    return tracker
