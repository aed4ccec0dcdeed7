"""Shared fixtures: the repository root, the real data slices in ../shared/data, tiny projects, and the
one fresh copy of the repository that the smoke pass (the real profile, smoke-sized, on local data) and then
the demo's `dvc repro` run in."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

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


def git_copy(root: Path, environ: dict | None = None) -> dict:
    """A git repository at ``root`` holding the working tree's tracked files (one commit), as a fresh
    clone has them; returns the environment to run `dvc` and `cvflow` there (``environ``'s, default this
    process's, with this venv's commands first, the project's own MLflow store, a git identity for DVC's
    experiment commits)."""
    environ = os.environ if environ is None else environ
    env = {**environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{environ['PATH']}",
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

    def __init__(self, root: Path, port: int, env: dict | None = None):
        self.root, self.port, self.env = root, port, env  # env: None, this process's
        self.uri = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> "MlflowServer":
        import urllib.request

        log = (self.root / "server.log").open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
             "--artifacts-destination", str(self.root / "artifacts"), "--serve-artifacts", "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1"],
            cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
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


# --- The suite's two passes over every stage of dvc.yaml, in one fresh copy of the repository --------------------
#
# First the smoke pass: the real profile (the book's recipes and layouts) on local data with the smoke switch,
# `dvc exp run -S common.smoke=true` as the README's install check runs it (tests/test_real_profile.py checks it);
# then the demo's `dvc repro` (tests/test_e2e_dvc.py), which must rerun every stage after it. Both record the
# params keys each stage reads (tests/test_params_read.py: one trace per profile).

# Kaggle CIFAR-10: the first images of the real slice (the real profile trains the book's full-width
# ResNet-18 twice, at a few images a second on a laptop CPU; all 4,660 would take many minutes).
KAGGLE_CIFAR10_TRAIN = 100
KAGGLE_CIFAR10_TEST = 20


def imagenet_weights() -> list:
    """Every torchvision weights entry the real profile loads (13.2 and 13.11: ResNet-18; 13.14:
    ResNet-34; 13.12: VGG-19), with the torchvision builder of its architecture."""
    from torchvision.models import ResNet18_Weights, ResNet34_Weights, VGG19_Weights, resnet18, resnet34, vgg19

    return [(ResNet18_Weights.IMAGENET1K_V1, resnet18), (ResNet34_Weights.IMAGENET1K_V1, resnet34),
            (VGG19_Weights.IMAGENET1K_V1, vgg19)]


def stand_in_weights(torch_home: Path) -> list[Path]:
    """ImageNet weights stood in by randomly initialised models' state dicts, saved where torchvision keeps
    its downloads (``$TORCH_HOME/hub/checkpoints/``, under the file names it downloads them as): torchvision
    checks a file's hash only when it downloads it, so a cached file is used as is, the same way for a real
    file and for a stand-in (no code path is switched off for the test)."""
    import torch

    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    files = []
    for weights, build in imagenet_weights():
        torch.manual_seed(0)
        path = folder / os.path.basename(weights.url)  # e.g. resnet18-f37072fd.pth (hash prefix in the name)
        torch.save(build(weights=None).state_dict(), path)
        files.append(path)
    return files


def _kaggle_cifar10_slice(src: Path, dest: Path) -> None:
    """The first images of the real Kaggle CIFAR-10 slice, in its layout (ids kept)."""
    import csv

    with open(src / "trainLabels.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    header, train = rows[0], rows[1 : KAGGLE_CIFAR10_TRAIN + 1]
    (dest / "train").mkdir(parents=True)
    (dest / "test").mkdir()
    for image_id, _ in train:
        shutil.copy2(src / "train" / f"{image_id}.png", dest / "train" / f"{image_id}.png")
    with open(dest / "trainLabels.csv", "w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows([header, *train])
    test_ids = sorted(int(p.stem) for p in (src / "test").glob("*.png"))[:KAGGLE_CIFAR10_TEST]
    for image_id in test_ids:
        shutil.copy2(src / "test" / f"{image_id}.png", dest / "test" / f"{image_id}.png")
    shutil.copy2(src / "testLabels.csv", dest / "testLabels.csv")


def local_data(data: Path) -> dict[str, Path]:
    """Every data set of the real profile as a local folder under ``data`` (``data.source: local``): copies of
    the real slices in ../shared/data where they exist (hot dogs, the book's photos, VOC2012, Kaggle CIFAR-10),
    the project's own twins (written by its generators) for the rest (bananas, torchvision's CIFAR-10, Kaggle
    dog breeds). Returns {task: path}."""
    import importlib

    paths = {}
    for task, name in (("hotdog", "hotdog"), ("photos", "d2l-img"), ("voc", "voc-mini")):
        paths[task] = data / name
        # a writable copy, not the slice itself: the pipeline hard-links the files it is given
        shutil.copytree(shared(name), paths[task], copy_function=shutil.copyfile)
        for folder in (paths[task], *(p for p in paths[task].rglob("*") if p.is_dir())):
            folder.chmod(0o755)
    paths["kaggle_cifar10"] = data / "kaggle-cifar10"
    _kaggle_cifar10_slice(shared("kaggle-cifar10-real"), paths["kaggle_cifar10"])

    twins = lambda module: importlib.import_module(f"cvflow.twins.{module}")  # noqa: E731
    paths["bananas"] = twins("bananas").generate_bananas(data / "banana-detection", n_train=16, n_val=8, seed=7)
    twins("cifar").generate_cifar10_torchvision(data / "cifar10", n_train=100, n_test=20, seed=11)
    paths["cifar10"] = data / "cifar10"  # the folder holding cifar-10-batches-py
    dogs = twins("dogs")
    paths["kaggle_dogs"] = dogs.generate_kaggle_dogs(data / "dog-breed-identification", dogs.DOG_BREEDS[:10],
                                                     n_train=60, n_test=10, seed=14)
    return paths


def real_profile_params(root: Path, paths: dict[str, Path]) -> dict:
    """params.yaml of the copy: profile real, every data set local (the smoke switch stays off in the file:
    the pass turns it on with `-S`)."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["profile"] = "real"
    for task, path in paths.items():
        params[task]["real"]["data"].update(source="local", path=str(path))
    # The smoke overlay's `views: 1` would replace the real profile's `views: 0`, the book's path that a GPU
    # user runs (the frozen ResNet-34 on freshly augmented images in every batch): lay the real one over itself
    # (the key stays: dvc.yaml tracks each smoke key a stage reads)
    params["smoke"]["kaggle_dogs"]["views"] = params["kaggle_dogs"]["real"]["views"]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


@pytest.fixture(scope="session")
def pipeline_copy(tmp_path_factory) -> SimpleNamespace:
    """One fresh copy of the repository (`git_copy`) for both passes over every stage of `dvc.yaml`:
    the smoke pass first (`smoke_pass`), then the demo (`demo_repo`)."""
    root = tmp_path_factory.mktemp("pipeline") / "cvflow"
    env = git_copy(root)
    return SimpleNamespace(root=root, env=env, dvc=[sys.executable, "-m", "dvc"], smoke=None, demo=None,
                           traces=root.parent / "params-trace")


def stage_outputs(stage: dict) -> list[str]:
    """The paths a dvc.yaml stage writes (its outs, metrics and plots)."""
    return [out if isinstance(out, str) else next(iter(out))
            for key in ("outs", "metrics", "plots") for out in stage.get(key) or []]


def _written(path: Path) -> bool:
    """A file (a JSON one not empty) or a folder with something in it."""
    if path.is_file():
        return path.suffix != ".json" or bool(json.loads(path.read_text()))
    return path.is_dir() and any(path.iterdir())


#: what the smoke pass's checks read, kept beside the copy before the demo's repro overwrites the workspace
SMOKE_KEPT = ("params.yaml", "dvc.lock", "metrics", "data/submissions", "data/hotdog", "data/reports/style")


#: the smoke pass's processes each compute on one thread: it runs beside the unit tests (`_beside_the_unit_tests`),
#: and two processes on the 2 cores that each ran PyTorch's 2 OpenMP threads would spin-wait for each other
#: (docs/speed.md, "Why one process"); its outputs are checked for what they hold, never against committed bytes
SMOKE_ENV = {"OMP_NUM_THREADS": "1"}
#: the work test modules hand over to run beside the unit tests after the smoke pass (`beside_unit_tests`):
#: name -> work(folder, environ), then name -> (result, exception)
_BESIDE: dict[str, Callable[[Path, dict], Any]] = {}
_BESIDE_DONE: dict[str, tuple[Any, BaseException | None]] = {}
#: the one thread that runs it all, one piece after the other, while it runs
_BESIDE_RUNNING: list[threading.Thread] = []
_BESIDE_STOP = threading.Event()  # the session ended early: no further piece starts


def beside_unit_tests(name: str):
    """Registers ``work(folder, environ)``, the slow part of a test module's check, as the work behind its session
    fixture ``name`` (which returns `beside_unit_tests_result(name, ...)`). When the session begins with the unit
    tests and collects a test using ``name``, the work runs beside them, after the smoke pass, in a folder of its
    own with the environment the session began with (a unit test's monkeypatch never reaches it); else when the
    fixture is first asked for. Work that fits: processes that compute on one thread each, mostly git, DVC and
    Python (two training processes with 2 OpenMP threads each would spin-wait for each other)."""
    def register(work: Callable[[Path, dict], Any]) -> Callable[[Path, dict], Any]:
        _BESIDE[name] = work
        return work
    return register


def _wait_beside() -> None:
    while _BESIDE_RUNNING:
        _BESIDE_RUNNING[0].join()  # listed until it ends: a Ctrl-C here leaves it to the session's teardown to stop
        _BESIDE_RUNNING.pop(0)


def beside_unit_tests_result(name: str, tmp_path_factory) -> Any:
    """What the work registered as ``name`` returned (what it raised is raised here): waited for when it runs
    beside the unit tests, run now otherwise."""
    _wait_beside()
    if name not in _BESIDE_DONE:
        _do_beside(None, [name], {name: tmp_path_factory.mktemp(name)}, dict(os.environ))
    result, error = _BESIDE_DONE[name]
    if error is not None:
        raise error
    return result


def _do_beside(smoke: SimpleNamespace | None, names: list[str], folders: dict[str, Path], environ: dict) -> None:
    """The end of the smoke pass started in ``smoke`` (a copy), then each piece of work named, one after the other;
    what each raises is kept for its fixture."""
    if smoke is not None:
        try:
            _finish_smoke_pass(smoke)
        except BaseException as error:  # noqa: BLE001 - the smoke pass's fixture raises it
            smoke.smoke_error = error
    for name in names:
        if _BESIDE_STOP.is_set():
            break
        try:
            _BESIDE_DONE[name] = (_BESIDE[name](folders[name], environ), None)
        except BaseException as error:  # noqa: BLE001 - a failed check or a skip: its test reports it
            _BESIDE_DONE[name] = (None, error)


def pytest_collection_modifyitems(config, items):
    """The fast tier first, then the slow tests, each in its own order: the smoke pass runs beside the first and
    is over before the second begins (the slow tests train on both cores)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is not None)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """A slow test starts only once the work beside the unit tests is over."""
    if item.get_closest_marker("slow") is not None:
        _wait_beside()


@pytest.fixture(scope="session", autouse=True)
def _beside_the_unit_tests(request, tmp_path_factory):
    """When the session begins with the fast tier, the slow work that needs no trained demo starts with the first
    test and runs beside the unit tests on one thread: the smoke pass when a test reads it, then what test modules
    hand over (`beside_unit_tests`). The unit tests keep the 2 cores 43 % busy, and the pass alone about as much;
    together they take about 240 s instead of 335 s one after the other (docs/speed.md). `pytest_runtest_setup`
    holds the first slow test until all of it is over."""
    items = request.session.items
    smoke = None
    if items and items[0].get_closest_marker("slow") is None:
        used = {name for item in items for name in getattr(item, "fixturenames", ())}
        environ = dict(os.environ)  # before any test's monkeypatch
        if "smoke_pass" in used:
            smoke = request.getfixturevalue("pipeline_copy")
            _start_smoke_pass(smoke, tmp_path_factory)
            if smoke.smoke_process is None:  # no ../shared/data: its fixture skips, saying why
                smoke = None
        names = [name for name in _BESIDE if name in used]
        if smoke is not None or names:
            folders = {name: tmp_path_factory.mktemp(name) for name in names}
            thread = threading.Thread(target=_do_beside, args=(smoke, names, folders, environ), daemon=True,
                                      name="beside the unit tests")
            thread.start()
            _BESIDE_RUNNING.append(thread)
    yield
    if _BESIDE_RUNNING:  # the session ended before a slow test (-x, Ctrl-C): the smoke pass's processes go, and no
        _BESIDE_STOP.set()  # further piece starts
        if smoke is not None:
            _stop(smoke.smoke_process)
        _wait_beside()


def _stop(process: subprocess.Popen) -> None:
    """Ends ``process`` and its process group (its stages too): Ctrl-C first, then a kill."""
    for sig in (signal.SIGINT, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
            return


def _start_smoke_pass(copy: SimpleNamespace, tmp_path_factory) -> None:
    """Prepares the real profile in the copy (every data set local, stand-in ImageNet weights) and starts the
    smoke pass's `dvc exp run -S common.smoke=true` (``copy.smoke_process``; None when ../shared/data is absent,
    with the reason in ``copy.smoke_skipped``)."""
    import torch

    copy.smoke_process, copy.smoke_skipped = None, None
    local = tmp_path_factory.mktemp("real-local")
    try:
        copy.local = local_data(local / "data")
    except pytest.skip.Exception as skipped:
        copy.smoke_skipped = str(skipped)
        return
    copy.real_params = real_profile_params(copy.root, copy.local)
    copy.torch_home = local / "torch"
    with torch.random.fork_rng():  # the tests after it draw what they would have drawn without it
        weights = stand_in_weights(copy.torch_home)
    copy.stand_ins = [path.name for path in weights if path.is_file()]  # what $TORCH_HOME held for the pass
    copy.smoke_output = (local / "smoke.stdout", local / "smoke.stderr")
    with copy.smoke_output[0].open("w") as stdout, copy.smoke_output[1].open("w") as stderr:
        copy.smoke_process = subprocess.Popen(
            [*copy.dvc, "exp", "run", "-S", "common.smoke=true"], cwd=copy.root, stdout=stdout, stderr=stderr,
            env={**copy.env, "TORCH_HOME": str(copy.torch_home), **SMOKE_ENV,
                 "CVFLOW_PARAMS_TRACE": str(copy.traces / "real")},  # each stage's reads
            start_new_session=True)  # a process group of its own: a session that ends early stops all of it
    copy.smoke_started = time.monotonic()


def _finish_smoke_pass(copy: SimpleNamespace) -> None:
    """Waits for the smoke pass, then keeps what its checks read (``kept``: `SMOKE_KEPT`) and asks `dvc status`
    which stages turning the switch off again makes stale (``stale_without_smoke``)."""
    try:
        copy.smoke_process.wait(timeout=max(1.0, 1800 - (time.monotonic() - copy.smoke_started)))
    except subprocess.TimeoutExpired:
        copy.smoke_timed_out = True
        _stop(copy.smoke_process)
    copy.smoke_seconds = time.monotonic() - copy.smoke_started
    copy.smoke = subprocess.CompletedProcess(copy.smoke_process.args, copy.smoke_process.returncode,
                                             *(path.read_text() for path in copy.smoke_output))
    stages = yaml.safe_load((copy.root / "dvc.yaml").read_text())["stages"]
    copy.written = {out: _written(copy.root / out) for stage in stages.values() for out in stage_outputs(stage)}
    shutil.rmtree(copy.torch_home, ignore_errors=True)  # 700 MB (VGG-19's mostly)
    copy.kept = copy.root.parent / "smoke-workspace"
    for name in SMOKE_KEPT:
        if (copy.root / name).is_dir():
            shutil.copytree(copy.root / name, copy.kept / name)
        elif (copy.root / name).is_file():
            (copy.kept / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(copy.root / name, copy.kept / name)
    if copy.smoke.returncode == 0:
        params = (copy.root / "params.yaml").read_text()
        switched_off = yaml.safe_load(params)
        switched_off["common"]["smoke"] = False
        (copy.root / "params.yaml").write_text(yaml.safe_dump(switched_off, sort_keys=False))
        status = subprocess.run([*copy.dvc, "status", "--json"], cwd=copy.root, env=copy.env, capture_output=True,
                                text=True, timeout=600)
        (copy.root / "params.yaml").write_text(params)
        copy.stale_without_smoke = set(json.loads(status.stdout)) if status.returncode == 0 else status.stderr


@pytest.fixture(scope="session")
def smoke_pass(pipeline_copy, tmp_path_factory) -> SimpleNamespace:
    """`dvc exp run -S common.smoke=true` in the fresh copy, on the real profile with every data set local and
    stand-in ImageNet weights: every stage, smoke-sized, on one thread a process (`SMOKE_ENV`). Started beside the
    unit tests when the session begins with them, else here. ``kept`` holds what its checks read (`SMOKE_KEPT`),
    ``stale_without_smoke`` the stages `dvc status` then calls changed when the switch is turned off again."""
    copy = pipeline_copy
    _wait_beside()
    if getattr(copy, "smoke_error", None) is not None:
        raise copy.smoke_error
    if copy.smoke is None:
        if copy.demo is not None:
            pytest.fail("the smoke pass must run before the demo's repro in the shared copy (it would overwrite the "
                        "demo's workspace): a fixture that needs it must name `smoke_pass`, so that `demo_repo` runs "
                        "it first")
        if not hasattr(copy, "smoke_process"):
            _start_smoke_pass(copy, tmp_path_factory)
        if copy.smoke_process is None:
            pytest.skip(copy.smoke_skipped)
        _finish_smoke_pass(copy)
    assert not getattr(copy, "smoke_timed_out", False), "the smoke pass ran past 1,800 s and was killed"
    return copy


@pytest.fixture(scope="session")
def demo_repo(request, pipeline_copy):
    """The demo's `dvc repro` in the same copy, after the smoke pass when this session runs a test that needs it
    (alone, the e2e tests skip it; without ../shared/data it skips and the demo runs all the same):
    params.yaml and dvc.lock go back to the committed demo, the smoke's MLflow store moves aside (the e2e
    checks count the demo's runs), and every stage must rerun."""
    copy = pipeline_copy
    if any("smoke_pass" in getattr(item, "fixturenames", ()) for item in request.session.items):
        try:
            request.getfixturevalue("smoke_pass")
        except (Exception, pytest.skip.Exception, pytest.fail.Exception):
            pass  # skipped (no ../shared/data) or failed: its own tests say so; the demo's run without it
    # whatever the smoke pass left: the committed demo, and the smoke's MLflow store aside
    subprocess.run(["git", "checkout", "-q", "HEAD", "--", "params.yaml", "dvc.lock"], cwd=copy.root, env=copy.env,
                   check=True, capture_output=True)
    aside = copy.root.parent / "smoke-mlflow"
    for name in ("mlflow.db", "mlruns"):
        if (copy.root / name).exists():
            aside.mkdir(exist_ok=True)
            shutil.move(copy.root / name, aside / name)
    start = time.monotonic()
    copy.demo = subprocess.run([*copy.dvc, "repro"], cwd=copy.root, capture_output=True, text=True, timeout=1800,
                               env={**copy.env, "CVFLOW_PARAMS_TRACE": str(copy.traces / "demo")})
    copy.demo_seconds = time.monotonic() - start
    assert copy.demo.returncode == 0, copy.demo.stdout[-3000:] + copy.demo.stderr[-3000:]
    print(f"demo repro over every stage: {copy.demo_seconds:.0f} s")
    return copy.root, copy.env, copy.dvc, copy.demo
