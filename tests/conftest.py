"""Shared fixtures: the repository root, the real data slices in ../shared/data, tiny projects, and the
one fresh copy of the repository that the smoke pass and then the demo's `dvc repro` run in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared(*parts: str) -> Path:
    """A path in ../shared/data, or a skip (with the reason) when the slice is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data slice {path} is absent (only present beside the cvflow checkout)")
    return path


def variants(task: str, verb: str = "train") -> tuple[str, ...]:
    """The variants a task's stage declares (``variants("hotdog")``: finetune, scratch, probe): what tests loop over,
    so a variant added to the declaration is tested without another literal."""
    from cvflow.pipelines import TASKS

    return next(t for t in TASKS if t.name == task).stage(verb).variants


def tiny_params() -> dict:
    """The repository's params.yaml shrunk so a whole hot dog run takes seconds."""
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    demo = data["hotdog"]["demo"]
    demo["demo"].update(train_per_class=10, test_per_class=6, min_side=36, max_side=56)
    demo["transforms"].update(train_crop=32, test_resize=36, test_crop=32)
    demo["pretrain"].update(images_per_class=6, image_size=32)
    demo["pretrain"]["recipe"].update(epochs=1, batch_size=16)
    for variant in variants("hotdog"):
        demo[variant].update(epochs=2, batch_size=8)
    demo["grid_images"] = 4
    return data


@pytest.fixture
def mlflow_uri(tmp_path, monkeypatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture
def project(tmp_path, mlflow_uri) -> Path:
    """A temporary project folder with tiny params (MLflow store inside it)."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    return root


def run_cvflow(*args: str, cwd: Path, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the installed `cvflow` command (a real process: exit codes, stderr)."""
    full_env = {**os.environ, **(env or {})}
    exe = shutil.which("cvflow", path=str(Path(sys.executable).parent)) or "cvflow"
    return subprocess.run([exe, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def git_copy(root: Path) -> dict:
    """A git repository at ``root`` holding the working tree's tracked files (one commit), as a fresh
    clone has them; returns the environment to run `dvc` and `cvflow` there (this venv's commands first,
    the project's own MLflow store, a git identity for DVC's experiment commits)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    env.pop("MLFLOW_TRACKING_URI", None)  # the default store, inside the project
    # what a fresh clone has, and the new files of a working tree under development (a module dvc.yaml lists)
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True)
    for name in filter(None, files.stdout.split("\0")):
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):
        subprocess.run(command, cwd=root, check=True, env=env, capture_output=True)
    return env


def checkpoint_epoch(path: Path) -> int:
    """The epochs a training checkpoint holds; 0 while none is written (or it is being written)."""
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=False)["epoch"])
    except Exception:  # noqa: BLE001 - not written yet
        return 0


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MlflowServer:
    """A real `mlflow server` on a loopback port, as a team runs one: an sqlite backend, artifacts in a
    local destination and served (proxied) through the server, so clients need only its URI. It can be
    killed and started again on the same port and store (a server that went down and came back)."""

    def __init__(self, root: Path, port: int):
        self.root, self.port = root, port
        self.uri = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> "MlflowServer":
        import urllib.request

        log = (self.root / "server.log").open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
             "--artifacts-destination", str(self.root / "artifacts"), "--serve-artifacts", "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1"],
            cwd=self.root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"mlflow server did not start: {(self.root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)

    def kill(self) -> None:
        """Stop the server and its workers at once (no clean-up: a crash or a pulled cable)."""
        import signal

        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"), free_port()).start()
    yield server
    server.kill()


def ran_stages(stdout: str) -> set[str]:
    """The stages a `dvc repro` or `dvc exp run` ran (not those it found up to date or restored)."""
    return {line.split("'")[1] for line in stdout.splitlines() if line.startswith("Running stage")}


@pytest.fixture(scope="session")
def pipeline_copy(tmp_path_factory) -> SimpleNamespace:
    """One fresh copy of the repository (`git_copy`) for both passes over every stage of `dvc.yaml`:
    the smoke pass first (`smoke_pass`, tests/test_dvc_smoke.py), then the demo (`demo_repo`,
    tests/test_e2e_dvc.py)."""
    root = tmp_path_factory.mktemp("pipeline") / "cvflow"
    env = git_copy(root)
    return SimpleNamespace(root=root, env=env, dvc=[sys.executable, "-m", "dvc"], smoke=None, demo=None,
                           trace=root.parent / "params-trace")


@pytest.fixture(scope="session")
def smoke_pass(pipeline_copy) -> SimpleNamespace:
    """`dvc exp run -S common.smoke=true` in the fresh copy: every stage on tiny data. Its checks
    (tests/test_dvc_smoke.py) read the workspace, so they run before `demo_repo` overwrites it."""
    copy = pipeline_copy
    start = time.monotonic()
    copy.smoke = subprocess.run([*copy.dvc, "exp", "run", "-S", "common.smoke=true"], cwd=copy.root,
                                env={**copy.env, "CVFLOW_PARAMS_TRACE": str(copy.trace)}, capture_output=True,
                                text=True, timeout=1800)  # each stage records the params keys it reads
    copy.smoke_seconds = time.monotonic() - start
    return copy


@pytest.fixture(scope="session")
def demo_repo(request, pipeline_copy):
    """The demo's `dvc repro` in the same copy, after the smoke pass when this session runs the smoke
    checks (alone, the e2e tests skip it): params.yaml and dvc.lock go back to the committed demo, the
    smoke's MLflow store moves aside (the e2e checks count the demo's runs), and every stage must rerun,
    for the smoke switch is a param of each."""
    copy = pipeline_copy
    if any("smoke_pass" in getattr(item, "fixturenames", ()) for item in request.session.items):
        request.getfixturevalue("smoke_pass")
        subprocess.run(["git", "checkout", "-q", "HEAD", "--", "params.yaml", "dvc.lock"], cwd=copy.root,
                       env=copy.env, check=True, capture_output=True)
        aside = copy.root.parent / "smoke-mlflow"
        aside.mkdir(exist_ok=True)
        for name in ("mlflow.db", "mlruns"):
            if (copy.root / name).exists():
                shutil.move(copy.root / name, aside / name)
    start = time.monotonic()
    copy.demo = subprocess.run([*copy.dvc, "repro"], cwd=copy.root, env=copy.env, capture_output=True,
                               text=True, timeout=1800)
    copy.demo_seconds = time.monotonic() - start
    assert copy.demo.returncode == 0, copy.demo.stdout[-3000:] + copy.demo.stderr[-3000:]
    print(f"demo repro over every stage: {copy.demo_seconds:.0f} s")
    return copy.root, copy.env, copy.dvc, copy.demo
