"""Tracking never drops a result silently (issue 25, item 2): any failure of the MLflow store ends a tracked stage
in one line with exit 2, so DVC does not record the stage done with its results missing from MLflow; and a store
that cannot take the results says so before the stage does any work or writes any output.

The faults are real ones: a loopback HTTP server whose ``/health`` answers 200 while its REST API answers 503, a
page of a real ``mlflow.db`` (made by a run) overwritten, a store file or folder the stage's user cannot write,
a typo in the URI's scheme. Root writes read-only files, so when the tests run as root a read-only store is a
read-only bind mount in the stage's own mount namespace (:func:`read_only`)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from conftest import run_cvflow, tiny_params, variants
from cvflow.errors import UserError
from cvflow.tracking import ENV_URI, StoreError, Tracker, check_store, find_run

#: what `cvflow evaluate hotdog` writes (its `outs` and `metrics` in dvc.yaml)
def _evaluate_outputs() -> tuple[str, ...]:
    from cvflow.pipelines.hotdog import TASK

    stage = TASK.stage("evaluate")
    return tuple(sorted(stage.outs + stage.metrics))


EVALUATE_OUTPUTS = _evaluate_outputs()  # what `cvflow evaluate hotdog` writes (its DVC outputs), from its declaration


# ----------------------------------------------------------------------------- the faults


class FlakyServer:
    """A loopback HTTP server in front of nothing: ``/health`` answers 200 (the server process is up), the paths
    in ``answers`` answer 200 with their JSON, every other MLflow REST call answers 503 (its database is down).
    It records the paths asked, so a test can tell which calls were made."""

    def __init__(self, answers: dict[str, dict] | None = None):
        answers = answers or {}
        self.asked: list[str] = []
        asked = self.asked

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep pytest's output clean
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                path = self.path.split("?", 1)[0]
                asked.append(path)
                if path == "/health":
                    status, body, kind = 200, b"OK", "text/plain"
                elif path in answers:
                    status, body, kind = 200, json.dumps(answers[path]).encode(), "application/json"
                else:
                    status, body, kind = 503, b"Service Unavailable", "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.uri = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "FlakyServer":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


#: the call check_store makes to prove the API answers (MLflow's REST path for search_experiments)
SEARCH_EXPERIMENTS = "/api/2.0/mlflow/experiments/search"


def store_with_a_run(db: Path, monkeypatch, experiment: str = "hotdog", sha1: str = "a" * 40) -> str:
    """A real MLflow sqlite store at ``db`` holding one finished run tagged ``model_sha1`` (with a metric, so
    every table a look-up reads has a row); returns the run id."""
    monkeypatch.setenv(ENV_URI, f"sqlite:///{db}")
    tracker = Tracker(db.parent, experiment, "finetune")
    run_id = tracker.start(tags={"model_sha1": sha1})
    tracker.log_epoch({"epoch": 1, "train_loss": 0.5})
    tracker.end()
    return run_id


def damage_page(db: Path, table: str) -> None:
    """Overwrite the page that holds ``table``'s rows with bytes that are no b-tree page (a bad sector, a torn
    write), and bump the header's change counter as any writer does, so that a connection that cached the page
    reads it again. Every other page, the schema's included, stays intact."""
    with contextlib.closing(sqlite3.connect(db)) as con:
        (page,) = con.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
        (size,) = con.execute("PRAGMA page_size").fetchone()
    with db.open("r+b") as handle:
        handle.seek((page - 1) * size)
        handle.write(b"\xff" * size)
        handle.seek(24)  # the file change counter (https://www.sqlite.org/fileformat.html#file_change_counter)
        counter = int.from_bytes(handle.read(4), "big")
        handle.seek(24)
        handle.write((counter + 1).to_bytes(4, "big"))


#: run the rest of the command with the file or folder "$1" bind-mounted read-only over itself
READ_ONLY_MOUNT = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'


def read_only(path: Path) -> list[str]:
    """Make ``path`` (a file or a folder) read-only to a stage; returns the prefix to run the stage's command with.
    A user other than root is bound by the permission bits alone. Root writes read-only files, so as root the
    stage runs in a private mount namespace where ``path`` is bind-mounted read-only: a read-only file system
    binds root too (EROFS)."""
    path.chmod(0o444 if path.is_file() else 0o555)
    if os.geteuid() != 0:
        return []
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "--mount", "true"], capture_output=True).returncode:
        pytest.skip("the tests run as root without the right to make a private mount namespace (`unshare --mount`): "
                    "root writes read-only files, so a read-only store cannot be made for the stage")
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", READ_ONLY_MOUNT, "sh", str(path)]


def cvflow_in(prefix: list[str], *args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """`cvflow ARGS` after ``prefix`` (e.g. :func:`read_only`'s), cold: no warm-start server."""
    exe = str(Path(sys.executable).parent / "cvflow")
    return subprocess.run([*prefix, exe, *args], cwd=cwd, env={**os.environ, **env, "CVFLOW_WARM": "0"},
                          capture_output=True, text=True, timeout=600)


def one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    """The stage failed as a user error: exit 2, one line on stderr naming every needle, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cvflow: error: "), result.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# ----------------------------------------------------------------------------- before any work (fast)
# The project holds no data: past the store's check, `evaluate hotdog` would fail on the missing data with its
# own message. Each test asserts the store's message, so it fails where the check lets the fault through.


def test_a_server_whose_api_answers_503_fails_the_stage_before_any_work(project):
    with FlakyServer() as server:
        result = cvflow_in([], "evaluate", "hotdog", cwd=project, env={ENV_URI: server.uri})
    line = one_line_error(result, server.uri, "503", ENV_URI)
    assert "answers /health" in line
    assert SEARCH_EXPERIMENTS in server.asked  # the API was asked, not only /health


@pytest.mark.parametrize("uri", ["sqllite:///{folder}/mlflow.db", "htp://127.0.0.1:5000"])
def test_a_typo_in_the_scheme_fails_the_stage_before_any_work(project, uri):
    uri = uri.format(folder=project)
    result = cvflow_in([], "evaluate", "hotdog", cwd=project, env={ENV_URI: uri})
    line = one_line_error(result, uri, ENV_URI, "sqlite:///")
    assert repr(uri.split(":", 1)[0]) in line  # names the scheme it does not know
    assert sorted(p.name for p in project.iterdir()) == ["params.yaml"]  # nothing written, no store made


def test_a_damaged_page_fails_the_stage_before_any_work_and_is_left_as_it_is(project, monkeypatch):
    db = project.parent / "store" / "mlflow.db"
    db.parent.mkdir()
    store_with_a_run(db, monkeypatch)
    damage_page(db, "tags")
    damaged = db.read_bytes()
    result = cvflow_in([], "evaluate", "hotdog", cwd=project, env={ENV_URI: f"sqlite:///{db}"})
    one_line_error(result, str(db), "malformed", f"{db.name}.broken")
    assert db.read_bytes() == damaged


def test_a_read_only_store_file_fails_the_stage_before_any_work(project, monkeypatch):
    db = project.parent / "store" / "mlflow.db"
    db.parent.mkdir()
    store_with_a_run(db, monkeypatch)
    before = db.read_bytes()
    result = cvflow_in(read_only(db), "evaluate", "hotdog", cwd=project, env={ENV_URI: f"sqlite:///{db}"})
    one_line_error(result, str(db), "read-only", ENV_URI)
    assert db.read_bytes() == before


def test_a_read_only_store_folder_fails_the_stage_before_any_work(project):
    folder = project.parent / "store"
    folder.mkdir()
    result = cvflow_in(read_only(folder), "evaluate", "hotdog", cwd=project,
                       env={ENV_URI: f"sqlite:///{folder / 'mlflow.db'}"})
    one_line_error(result, str(folder), "not writable", ENV_URI)
    assert list(folder.iterdir()) == []


def test_a_read_only_artifact_folder_fails_the_stage_before_any_work(project, monkeypatch):
    db = project.parent / "store" / "mlflow.db"
    db.parent.mkdir()
    store_with_a_run(db, monkeypatch)
    artifacts = db.parent / "mlruns"
    artifacts.mkdir(exist_ok=True)
    result = cvflow_in(read_only(artifacts), "evaluate", "hotdog", cwd=project, env={ENV_URI: f"sqlite:///{db}"})
    one_line_error(result, str(artifacts), "not writable", ENV_URI)


# ----------------------------------------------------------------------------- mid-stage (fast)


def test_find_run_on_a_503_api_is_an_error_not_no_run(tmp_path, monkeypatch):
    """The store's API failing after the stage's check (it answered then): the look-up of the model's run must
    not say "no such run", or the stage exits 0 with its evaluation missing from MLflow."""
    with FlakyServer({SEARCH_EXPERIMENTS: {"experiments": []}}) as server:
        monkeypatch.setenv(ENV_URI, server.uri)
        with pytest.raises(UserError) as error:
            find_run(tmp_path, "hotdog", "a" * 40)
    message = str(error.value)
    assert server.uri in message and "503" in message and "\n" not in message
    assert any(path.endswith("/experiments/get-by-name") for path in server.asked)


def test_find_run_on_a_damaged_page_is_an_error_not_no_run(tmp_path, monkeypatch):
    """The page holding the runs' tags goes bad after the stage checked the store (this process made the run:
    the store is checked already). The look-up must fail in one line naming the store, not answer None."""
    db = tmp_path / "mlflow.db"
    store_with_a_run(db, monkeypatch, sha1="b" * 40)
    assert find_run(tmp_path, "hotdog", "b" * 40) is not None  # the run is there while the store is sound
    damage_page(db, "tags")
    with pytest.raises(StoreError) as error:
        find_run(tmp_path, "hotdog", "b" * 40)
    message = str(error.value)
    assert str(db) in message and "malformed" in message and "\n" not in message


def test_find_run_is_none_only_when_the_store_has_no_such_run(tmp_path, monkeypatch):
    store_with_a_run(tmp_path / "mlflow.db", monkeypatch, sha1="c" * 40)
    assert find_run(tmp_path, "hotdog", "d" * 40) is None  # another model: no run
    assert find_run(tmp_path, "no-such-experiment", "c" * 40) is None
    assert find_run(tmp_path, "hotdog", "c" * 40) is not None


def test_a_damaged_page_while_logging_an_evaluation_is_one_line(tmp_path, monkeypatch):
    db = tmp_path / "mlflow.db"
    store_with_a_run(db, monkeypatch, sha1="e" * 40)
    tracker = find_run(tmp_path, "hotdog", "e" * 40)
    damage_page(db, "metrics")
    with pytest.raises(StoreError) as error:
        tracker.log_evaluation({"acc": 0.5}, step=1)
    assert str(db) in str(error.value) and "malformed" in str(error.value) and "\n" not in str(error.value)


def test_resuming_on_a_damaged_store_fails_instead_of_starting_a_new_run(tmp_path, monkeypatch):
    """A run that is not in the store is restarted (legitimate: the store was replaced); a run the store cannot
    read is not: a new run would cut the resumed training's history in two."""
    db = tmp_path / "mlflow.db"
    run_id = store_with_a_run(db, monkeypatch)
    assert Tracker(tmp_path, "hotdog", "finetune").start("0" * 32) != run_id  # not in the store: a new run
    damage_page(db, "latest_metrics")  # read by get_run, not written by create_run
    with pytest.raises(StoreError, match="malformed"):
        Tracker(tmp_path, "hotdog", "finetune").start(run_id)


# ----------------------------------------------------------------------------- the check itself (fast)


def test_the_check_knows_the_schemes_mlflow_knows():
    """check_store's list of schemes (MLflow has no public accessor) is MLflow's registry, built-ins and
    plugins: a drift fails here, not in a user's stage."""
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    from cvflow.tracking import known_schemes

    assert known_schemes() == set(_tracking_store_registry._registry)


def test_the_check_of_a_sound_store_changes_nothing_and_is_cheap(tmp_path, monkeypatch):
    import time

    import cvflow.tracking as tracking

    db = tmp_path / "mlflow.db"
    store_with_a_run(db, monkeypatch)
    monkeypatch.setattr(tracking, "_CHECKED", set())  # this process checked it when it made the run
    before = (db.read_bytes(), db.stat().st_mtime_ns, sorted(p.name for p in tmp_path.iterdir()))
    started = time.perf_counter()
    check_store(f"sqlite:///{db}")
    took = time.perf_counter() - started
    assert (db.read_bytes(), db.stat().st_mtime_ns, sorted(p.name for p in tmp_path.iterdir())) == before
    assert took < 1.0, took


# ----------------------------------------------------------------------------- a trained project (slow)


# session: the fast tier runs before the slow tests (conftest.py), so this module's two halves run apart
@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A tiny hot dog project, fetched, pretrained and trained (not evaluated), tracked in its own mlflow.db:
    `evaluate hotdog` writes its outputs there unless the store stops it."""
    folder = tmp_path_factory.mktemp("trained")
    project = folder / "project"
    project.mkdir()
    (project / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    env = {ENV_URI: f"sqlite:///{folder / 'mlflow.db'}"}  # warm, as a user runs them: what they make is byte for
    # byte what cold commands make (tests/test_warm.py); the faults' own commands below run cold (`cvflow_in`)
    for args in (("fetch", "hotdog"), ("pretrain", "hotdog"),
                 *(("train", "hotdog", "--variant", variant) for variant in variants("hotdog"))):
        result = run_cvflow(*args, cwd=project, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
    return project


def _written(project: Path) -> list[str]:
    return [name for name in EVALUATE_OUTPUTS if (project / name).exists()]


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["api 503", "damaged page", "read-only file", "read-only folder", "typo scheme"])
def test_a_store_that_cannot_take_the_results_stops_evaluate_before_it_writes_an_output(trained, fault):
    folder = trained.parent / "faulty"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    db = folder / "mlflow.db"
    uri, named, prefix = f"sqlite:///{db}", str(db), []
    if fault in ("damaged page", "read-only file"):
        shutil.copy(trained.parent / "mlflow.db", db)  # the store the training runs made
    if fault == "damaged page":
        damage_page(db, "tags")
    elif fault == "read-only file":
        prefix = read_only(db)
    elif fault == "read-only folder":
        prefix, named = read_only(folder), str(folder)
    elif fault == "typo scheme":
        uri = named = f"sqllite:///{db}"
    for name in EVALUATE_OUTPUTS:  # a case before this one may have let `evaluate` through: each starts clean
        (trained / name).unlink(missing_ok=True)
    with FlakyServer() as server:
        if fault == "api 503":
            uri = named = server.uri
        result = cvflow_in(prefix, "evaluate", "hotdog", cwd=trained, env={ENV_URI: uri})
    one_line_error(result, named)
    assert _written(trained) == []


@pytest.mark.slow
def test_an_api_that_fails_after_the_check_fails_evaluate_and_a_sound_store_takes_every_result(trained):
    """The issue's case: the server answered when the stage began, then its API answers 503. `evaluate` must
    exit 2 in one line (it exited 0 with its evaluation missing from MLflow). Then, against the sound store the
    runs were made in, the same command writes every output and logs every evaluation: the faults above were
    what stopped it."""
    from mlflow.tracking import MlflowClient

    for name in EVALUATE_OUTPUTS:
        (trained / name).unlink(missing_ok=True)
    with FlakyServer({SEARCH_EXPERIMENTS: {"experiments": []}}) as server:
        result = cvflow_in([], "evaluate", "hotdog", cwd=trained, env={ENV_URI: server.uri})
    one_line_error(result, server.uri, "503")
    uri = f"sqlite:///{trained.parent / 'mlflow.db'}"
    result = cvflow_in([], "evaluate", "hotdog", cwd=trained, env={ENV_URI: uri})
    assert result.returncode == 0, result.stderr[-3000:]
    assert _written(trained) == list(EVALUATE_OUTPUTS)
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("hotdog").experiment_id])
    logged = {run.info.run_name: run.data.metrics.get("eval_test_acc") for run in runs
              if run.info.run_name != "source"}  # the pretraining run: not evaluated here
    metrics = json.loads((trained / "metrics" / "hotdog.json").read_text())
    assert logged == {variant: pytest.approx(metrics[variant]["test_acc"]) for variant in variants("hotdog")}
