"""Every device of a box, and two nodes, under `dvc repro` (stages/launch.py): `common.devices: 2` on CPU starts a
training stage as two gloo processes through PyTorch's elastic launcher; two agents (`common.nodes: 2`) on
loopback train one stage together. Real processes, real `dvc repro`, a real sqlite MLflow store."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from mlflow.tracking import MlflowClient

from cvflow.engine.checkpoint import check_world_size
from cvflow.errors import TrainingError, UserError
from cvflow.stages import launch

from conftest import checkpoint_epoch, free_port, git_copy, run_cvflow

STAGE = "train-hotdog-scratch"
CHECKPOINT = Path("data/checkpoints/hotdog/scratch.pt")
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # 2 cores: the processes of the test must not fight for them


# ----------------------------------------------------------------------------- fast: the plan and the check


def _common(**values):
    return SimpleNamespace(**{"devices": "auto", "nodes": 1, "device": "cpu", **values})


def test_one_process_is_trained_in_place_and_a_worker_never_launches_again(monkeypatch):
    for name in ("RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert launch.plan(_common()) is None  # auto on a CPU: today's one process
    assert launch.plan(_common(devices=1)) is None
    assert launch.plan(_common(devices=2)) == launch.Plan(2)
    monkeypatch.setenv("LOCAL_RANK", "0")  # a launcher's worker (torchrun, or cvflow's own): trains itself
    assert launch.plan(_common(devices=2)) is None


def test_several_nodes_need_the_endpoint_and_a_node_rank_in_range(monkeypatch):
    for name in ("RANK", "LOCAL_RANK", launch.ENDPOINT_ENV, launch.NODE_RANK_ENV):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UserError, match=f"set {launch.ENDPOINT_ENV} to node 0's host:port"):
        launch.plan(_common(nodes=2))
    monkeypatch.setenv(launch.ENDPOINT_ENV, "127.0.0.1:29400")
    assert launch.plan(_common(nodes=2)) == launch.Plan(1, 2, 0, "127.0.0.1:29400")
    monkeypatch.setenv(launch.NODE_RANK_ENV, "2")
    with pytest.raises(UserError, match=f"{launch.NODE_RANK_ENV}=2: must be this machine's node rank, 0 to 1"):
        launch.plan(_common(nodes=2))


def test_a_checkpoint_resumes_only_on_its_world_size():
    state = {"rng": [{}, {}]}  # one RNG state per rank: written by two processes
    check_world_size(Path("ck.pt"), state, 2)
    with pytest.raises(TrainingError, match=r"ck.pt: this checkpoint was written by 2 training process\(es\), this "
                                            r"run has 1; set common.devices .* or delete ck.pt"):
        check_world_size(Path("ck.pt"), state, 1)


# ----------------------------------------------------------------------------- slow: real launches


def _repo(root: Path, **common) -> dict:
    """A fresh copy of the repository on the smoke switch with ``common`` set; its environment."""
    env = {**git_copy(root), **ONE_THREAD, "CVFLOW_WARM": "0"}
    path = root / "params.yaml"
    data = yaml.safe_load(path.read_text())
    data["common"].update(smoke=True, **common)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return env


def _set_epochs(root: Path, epochs: int) -> None:
    path = root / "params.yaml"
    data = yaml.safe_load(path.read_text())
    data["smoke"]["hotdog"]["scratch"]["epochs"] = epochs
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _dvc(root: Path, env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["dvc", *args], cwd=root, env=env, capture_output=True, text=True, timeout=timeout)


def _check_one_finished_run(root: Path, epochs: int, world_size: int) -> None:
    """One MLflow run for the stage, FINISHED, world_size among its params, every epoch logged once; the model
    file loads."""
    import cvflow.models.resnet  # noqa: F401 - registers the architecture the file records
    from cvflow.models.files import load_model

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("hotdog").experiment_id])
    assert [run.info.run_name for run in runs] == ["scratch"]
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["world_size"] == str(world_size)
    assert run.data.tags["world_size"] == str(world_size)
    for metric in ("train_loss", "test_acc"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, metric)] == list(range(1, epochs + 1))
    model, _ = load_model(root / "data" / "models" / "hotdog" / "scratch.pt")
    assert sum(p.numel() for p in model.parameters()) > 0


def _kill_after_first_checkpoint(args: list[str], cwd: Path, env: dict, checkpoint: Path, epochs: int) -> int:
    """Start ``args`` in its own process group, SIGKILL the whole group (launcher, workers) once ``checkpoint``
    holds an epoch; the epochs it holds."""
    process = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 240
    while checkpoint_epoch(checkpoint) < 1:
        assert process.poll() is None, "training ended before it could be interrupted"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # no clean-up of any kind, in any process
    process.wait()
    killed_at = checkpoint_epoch(checkpoint)
    assert 1 <= killed_at < epochs
    return killed_at


@pytest.mark.slow
def test_dvc_repro_trains_one_stage_on_two_processes_and_a_killed_run_resumes(tmp_path):
    """`common.devices: 2`: `dvc repro` of a training stage starts two processes; killed mid-run (launcher and
    workers, no clean-up), the next `dvc repro` resumes the same run: one FINISHED run, world size 2, every epoch
    logged once, rank 0 alone reporting, the model loadable and the checkpoint gone."""
    epochs = 6
    env = _repo(tmp_path, devices=2)
    _set_epochs(tmp_path, epochs)
    assert _dvc(tmp_path, env, "repro", "fetch-hotdog").returncode == 0
    killed_at = _kill_after_first_checkpoint(["dvc", "repro", STAGE], tmp_path, env, tmp_path / CHECKPOINT, epochs)

    result = _dvc(tmp_path, env, "repro", STAGE)
    output = result.stderr + result.stdout
    assert result.returncode == 0, output[-3000:]
    assert "train-hotdog-scratch: 2 training processes (2 here)" in output
    assert f"resuming scratch from {tmp_path / CHECKPOINT}: {killed_at}/{epochs} epochs done" in output
    assert f"scratch epoch {killed_at}/{epochs}:" not in output  # done epochs are not redone
    assert output.count(f"scratch epoch {epochs}/{epochs}:") == 1  # rank 0 alone reports
    _check_one_finished_run(tmp_path, epochs, 2)  # the killed run reopened, not another one
    assert not (tmp_path / CHECKPOINT).exists()


@pytest.mark.slow
def test_resuming_on_another_world_size_says_what_to_do(project):
    """A checkpoint of one process, resumed by two: the workers' error reaches the launcher as one line, exit 2."""
    assert run_cvflow("fetch", "hotdog", cwd=project).returncode == 0
    checkpoint = project / CHECKPOINT
    exe = shutil.which("cvflow", path=str(Path(os.sys.executable).parent))
    args = [exe, "train", "hotdog", "--variant", "scratch", "--epochs", "20"]
    _kill_after_first_checkpoint(args, project, {**os.environ, **ONE_THREAD, "CVFLOW_WARM": "0"}, checkpoint, 20)

    result = run_cvflow("train", "hotdog", "--variant", "scratch", "--epochs", "20", "--set", "common.devices=2",
                        cwd=project, env={**ONE_THREAD, "CVFLOW_WARM": "0"})
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("cvflow: error:")]
    assert errors == [f"cvflow: error: {checkpoint}: this checkpoint was written by 1 training process(es), this run "
                      f"has 2; set common.devices (x common.nodes) back to 1 process(es) to resume it, or delete "
                      f"{checkpoint} to start the run over"]
    assert "Traceback" not in result.stderr
    assert checkpoint_epoch(checkpoint) >= 1  # kept: the user chooses


def _two_nodes(node0: Path, node1: Path, env: dict) -> tuple[subprocess.Popen, subprocess.Popen]:
    """Node 1's command and node 0's `dvc repro` of the stage, each in its own process group, on one endpoint."""
    endpoint = {launch.ENDPOINT_ENV: f"127.0.0.1:{free_port()}"}
    helper = subprocess.Popen(["cvflow", "train", "hotdog", "--variant", "scratch"], cwd=node1,
                              env={**env, **endpoint, launch.NODE_RANK_ENV: "1"}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    main = subprocess.Popen(["dvc", "repro", STAGE], cwd=node0, env={**env, **endpoint, launch.NODE_RANK_ENV: "0"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    return main, helper


@pytest.mark.slow
def test_two_nodes_on_loopback_train_one_stage_and_resume_from_node_0s_checkpoint(tmp_path):
    """Node 0 runs `dvc repro`, node 1 (another copy, another store: no shared file system) the same stage's command.
    Killed mid-run, both started again: every rank resumes from node 0's checkpoint (node 1 never had one), and the
    result is one run, in node 0's store, with world size 2, every epoch logged once; node 1 writes nothing."""
    epochs = 4
    node0, node1 = tmp_path / "node0", tmp_path / "node1"
    node0.mkdir()
    env = _repo(node0, nodes=2, devices=1)
    _set_epochs(node0, epochs)
    assert _dvc(node0, env, "repro", "fetch-hotdog").returncode == 0
    shutil.copytree(node0, node1, symlinks=True)
    main, helper = _two_nodes(node0, node1, env)
    try:
        deadline = time.monotonic() + 240
        while checkpoint_epoch(node0 / CHECKPOINT) < 1:
            assert main.poll() is None and helper.poll() is None, "training ended before it could be interrupted"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
    finally:
        for process in (main, helper):
            os.killpg(process.pid, signal.SIGKILL)  # both nodes, no clean-up of any kind
            process.communicate()
    killed_at = checkpoint_epoch(node0 / CHECKPOINT)
    assert 1 <= killed_at < epochs and not (node1 / CHECKPOINT).exists()

    main, helper = _two_nodes(node0, node1, env)
    try:
        out, err = main.communicate(timeout=300)
        helper_out, helper_err = helper.communicate(timeout=120)
    finally:
        for process in (main, helper):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    output = out + err
    assert main.returncode == 0, output[-3000:]
    assert helper.returncode == 0, helper_err[-3000:]
    assert "2 training processes (1 here on node 0 of 2)" in output
    assert f"resuming scratch from {node0 / CHECKPOINT}: {killed_at}/{epochs} epochs done" in output
    assert f"scratch epoch {killed_at}/{epochs}:" not in output and output.count(f"scratch epoch {epochs}/{epochs}:") == 1
    assert "scratch epoch" not in helper_err  # rank 1 neither reports nor logs nor writes
    _check_one_finished_run(node0, epochs, 2)  # the killed run reopened, every epoch once
    assert not (node1 / "data" / "models" / "hotdog" / "scratch.pt").exists()
    assert not (node1 / "mlflow.db").exists()
    assert not (node1 / CHECKPOINT).exists()
