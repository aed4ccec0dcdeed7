"""Warm starts (cvflow.stages.warm): a `cvflow` command run by the fork server writes exactly what a cold
process writes, exits with its code and error line, stops on Ctrl-C as a cold one does, and never runs
cvflow code older than what is on disk."""

from __future__ import annotations

import filecmp
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from cvflow.stages import warm
from conftest import run_cvflow, tiny_params

pytestmark = pytest.mark.skipif(not warm.enabled({}), reason="warm starts need fork and Unix sockets (POSIX)")

COLD = {warm.ENV_SWITCH: "0"}


def _server_up() -> None:
    """Start this interpreter's server (the first warm command starts it and runs cold) and wait for it."""
    probe = subprocess.run([sys.executable, "-c", "from cvflow.stages.warm import wait_for_server; "
                            "print(wait_for_server(0.1))"], capture_output=True, text=True, check=True)
    if probe.stdout.strip() != "True":
        run_cvflow("--help", cwd=Path.cwd())
        waited = subprocess.run([sys.executable, "-c", "from cvflow.stages.warm import wait_for_server; "
                                 "print(wait_for_server(120))"], capture_output=True, text=True, check=True)
        assert waited.stdout.strip() == "True", "the warm server did not start"


def _project(root: Path) -> Path:
    root.mkdir()
    data = tiny_params()
    (root / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return root


def _steps(root: Path, env: dict) -> list[subprocess.CompletedProcess]:
    env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    return [run_cvflow(*args, cwd=root, env=env) for args in
            (("fetch", "hotdog"), ("pretrain", "hotdog"), ("train", "hotdog", "--variant", "finetune"))]


@pytest.mark.slow
def test_a_warm_command_writes_byte_for_byte_what_a_cold_one_writes(tmp_path):
    _server_up()
    cold, hot = _project(tmp_path / "cold"), _project(tmp_path / "warm")
    for result in _steps(cold, COLD) + _steps(hot, {}):
        assert result.returncode == 0, result.stderr[-2000:]
    outputs = sorted(p.relative_to(cold) for p in (cold / "data").rglob("*") if p.is_file())
    outputs += sorted(p.relative_to(cold) for p in (cold / "metrics").rglob("*") if p.is_file())
    assert any(str(p).endswith("finetune.pt") for p in outputs) and any(str(p).endswith(".png") for p in outputs)
    for path in outputs:
        assert filecmp.cmp(cold / path, hot / path, shallow=False), f"{path} differs between cold and warm"
    # the warm run is tracked like the cold one
    runs = MlflowClient(f"sqlite:///{hot / 'mlflow.db'}").search_runs(
        [MlflowClient(f"sqlite:///{hot / 'mlflow.db'}").get_experiment_by_name("hotdog").experiment_id])
    assert {r.info.run_name for r in runs} == {"source", "finetune"}
    assert {r.info.status for r in runs} == {"FINISHED"}


def test_errors_and_exit_codes_pass_through(tmp_path):
    _server_up()
    root = _project(tmp_path / "p")
    bad = run_cvflow("figures", "upsampling", "--set", "common.seed=x", cwd=root)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "cvflow: error: params.yaml (with --set overrides): common.seed = 'x': Input should be a valid integer, "
        "unable to parse string as an integer"]
    unknown = run_cvflow("fetch", "nothing", cwd=root)
    assert unknown.returncode == 2 and "No such command 'nothing'" in unknown.stderr
    missing = run_cvflow("figures", "upsampling", cwd=root)  # no photos fetched
    assert missing.returncode == 2 and "cvflow: error:" in missing.stderr and "Traceback" not in missing.stderr
    assert run_cvflow("--help", cwd=root).returncode == 0


def test_ctrl_c_stops_a_warm_command_and_its_run_is_killed(tmp_path):
    _server_up()
    root = _project(tmp_path / "p")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    assert run_cvflow("fetch", "hotdog", cwd=root, env=env).returncode == 0
    exe = str(Path(sys.executable).parent / "cvflow")
    checkpoint = root / "data" / "checkpoints" / "hotdog" / "scratch.pt"
    process = subprocess.Popen([exe, "train", "hotdog", "--variant", "scratch", "--epochs", "200"], cwd=root,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while not checkpoint.exists():
        assert process.poll() is None, "training ended before it could be interrupted"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)  # Ctrl-C reaches the client, which hands it to the command
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert "interrupted; rerun the same command to resume" in stderr and "Traceback" not in stderr
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("hotdog").experiment_id])
    assert run.info.status == "KILLED"


def test_the_server_holds_no_cvflow_code_and_steps_aside_when_a_held_file_changes(tmp_path):
    held = subprocess.run([sys.executable, "-c", "import sys, json; from cvflow.stages.warm import preload; "
                           "preload(); print(json.dumps(sorted(m for m in sys.modules if m.startswith('cvflow'))))"],
                          capture_output=True, text=True, check=True, cwd=tmp_path)
    assert set(json.loads(held.stdout)) <= {"cvflow", "cvflow.stages", "cvflow.stages.warm"}
    module = tmp_path / "held_module.py"
    module.write_text("x = 1\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import held_module  # noqa: F401

        stamp = warm._stamp()
        assert not warm._changed(stamp)
        time.sleep(0.01)
        module.write_text("x = 2\n")
        os.utime(module, ns=(time.time_ns(), time.time_ns() + 10**9))
        assert warm._changed(stamp)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("held_module", None)


def test_warm_starts_are_off_when_asked_and_under_torchrun():
    assert warm.enabled({})
    assert not warm.enabled({warm.ENV_SWITCH: "0"}) and not warm.enabled({warm.ENV_SWITCH: "off"})
    assert not warm.enabled({"RANK": "0", "WORLD_SIZE": "2"})
    # a different import-time environment gets a different server; an unrelated variable does not
    base = warm.socket_name({"HOME": "/x"})
    assert warm.socket_name({"HOME": "/x", "MLFLOW_TRACKING_URI": "sqlite:///z"}) == base
    assert warm.socket_name({"HOME": "/x", "OMP_NUM_THREADS": "1"}) != base
    assert warm.socket_name({"HOME": "/y"}) != base


def test_a_command_that_comes_while_the_server_imports_waits_for_it_warm(tmp_path, monkeypatch, capfd):
    """18.4: the server listens before it imports its libraries, so a command that comes meanwhile waits in
    the backlog and runs in a warm child. Before, it found no socket, ran cold beside the importing server
    and started a second one (three processes importing torch on a 2-core machine)."""
    import tempfile
    import threading

    gate = tmp_path / "go"  # the server's imports block until it exists
    (tmp_path / "slow_library.py").write_text(
        f"import os, time\nwhile not os.path.exists({str(gate)!r}):\n    time.sleep(0.02)\n")
    folder = Path(tempfile.mkdtemp(prefix="cvw-", dir="/tmp"))  # a Unix socket's path must be short
    path = folder / "s.sock"
    server = subprocess.Popen(
        [sys.executable, "-c", "import sys; import cvflow.stages.warm as w; w.PRELOAD = ('slow_library',) + w.PRELOAD; "
                               "w.serve(sys.argv[1])", str(path)],
        env={**os.environ, "PYTHONPATH": str(tmp_path)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not path.exists() and time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.02)
        probe = warm._connect(path)
        assert probe is not None, "the server does not listen while it imports"
        probe.close()
        assert not gate.exists() and server.poll() is None  # still blocked in its imports
        monkeypatch.setattr(warm, "socket_path", lambda environ=None, cwd=None: path)
        threading.Timer(0.5, gate.touch).start()  # the imports finish while the command waits
        code = warm.run_warm(["--help"])
        assert code == 0, "the command was not run by the server (None: it would have run cold)"
        assert "Usage" in capfd.readouterr().out
    finally:
        gate.touch()
        server.terminate()
        server.wait(timeout=30)
        path.unlink(missing_ok=True)
        folder.rmdir()
