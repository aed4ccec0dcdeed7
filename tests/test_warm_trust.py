"""Warm starts you can trust (issue 25.1): no other user can answer or reach your commands; a warm command
runs in its caller's process context, or in a server started in that same context; and a warm start adds no
way to fail (a server stepping aside, a silent connection, Ctrl-Z, Ctrl-C at any moment, a removed folder).

Most tests run a light server whose children run ``tests/warm_probe.py`` (nothing preloaded: a fraction of a
second), and its client, `cvflow`'s own client logic with the probe as the command; each compares the probe's
view of its process, warm, with the same probe run cold. Tests that play a second user run as root (as CI
does) and drop to uid 65534 (nobody); the one that needs `/tmp` to itself runs in a private mount namespace
with its own `/tmp`, so it touches no real server's folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from cvflow.errors import INTERRUPTED
from cvflow.stages import warm
from conftest import run_cvflow, tiny_params
from warm_probe import REQUEST_TIMEOUT_ENV

pytestmark = pytest.mark.skipif(not warm.enabled({}), reason="warm starts need Linux (fork, SO_PEERCRED)")

PROBE = Path(__file__).with_name("warm_probe.py")
NOBODY = 65534
# the second user's programs need only the standard library, from an interpreter any user can run (the venv's
# may lie under a folder only its owner can open)
OTHER_PYTHON = shutil.which("python3", path="/usr/bin:/usr/local/bin:/bin")
as_root = pytest.mark.skipif(os.geteuid() != 0 or OTHER_PYTHON is None or not os.access(OTHER_PYTHON, os.X_OK),
                             reason="playing a second user needs root (CI runs as root) and a system python3")


def _can_unshare() -> bool:
    try:
        return subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


# ----------------------------------------------------------------------------- helpers


@pytest.fixture
def warm_dir():
    """A private socket folder for this test's servers (short: a socket's path holds ~100 bytes); every
    server that logged its start there is stopped afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="cvw-", dir="/tmp"))
    yield folder
    for log in folder.glob("*.log"):
        for pid in re.findall(r"\[(\d+)\] start:", log.read_text(errors="replace")):
            try:
                if "warm" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                    os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
    shutil.rmtree(folder, ignore_errors=True)


def _env(folder: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in (warm.ENV_SWITCH, "XDG_RUNTIME_DIR")}
    return {**env, warm.ENV_DIR: str(folder), **extra}


def _path(env: dict, cwd: Path, wrap: tuple[str, ...] = ()) -> Path:
    """The socket a client in this context uses."""
    out = subprocess.run([*wrap, sys.executable, str(PROBE), "path"], env=env, cwd=cwd, capture_output=True,
                         text=True, check=True)
    return Path(out.stdout.strip())


def _server(env: dict, cwd: Path, *, wrap: tuple[str, ...] = (), preload: str = "", idle: float = 60,
            wait: bool = True, starter: int | None = None,
            request_timeout: float | None = None) -> tuple[subprocess.Popen, Path]:
    """A light server at the socket a client with this context uses; its output goes to its log. ``starter``:
    the pid of the (cold) command that started it; ``request_timeout``: instead of cvflow's `REQUEST_TIMEOUT`."""
    path = _path(env, cwd, wrap)
    timeout = {} if request_timeout is None else {REQUEST_TIMEOUT_ENV: str(request_timeout)}
    with open(warm.log_path(path), "ab") as log:
        process = subprocess.Popen([*wrap, sys.executable, str(PROBE), "server", str(path), str(idle), preload,
                                    *([str(starter)] if starter else [])], env={**env, **timeout}, cwd=cwd,
                                   stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while wait and "preloaded" not in _log(path):
        assert process.poll() is None and time.monotonic() < deadline, f"the server did not start: {_log(path)}"
        time.sleep(0.02)
    return process, path


def _log(path: Path) -> str:
    try:
        return warm.log_path(path).read_text()
    except OSError:
        return ""


def _pending(path: Path) -> int:
    """The connections waiting in the backlog of the server listening at ``path`` (not yet accepted): the
    kernel's table of Unix sockets lists each under the server's path, in state 2 (connecting)."""
    with open("/proc/net/unix") as table:
        return sum(1 for line in table if line.split()[5:6] == ["02"] and line.rstrip("\n").endswith(f" {path}"))


def _client(env: dict, cwd: Path, *args: str, wrap: tuple[str, ...] = (), **popen) -> subprocess.Popen:
    return subprocess.Popen([*wrap, sys.executable, str(PROBE), "client", *args], env=env, cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def _context(env: dict, cwd: Path, wrap: tuple[str, ...] = (), stdin: str = "hello\n", **popen) -> tuple[dict, bool]:
    """The probe's view of its process, and whether it ran warm (in another process than its client)."""
    client = _client(env, cwd, "context", wrap=wrap, stdin=subprocess.PIPE, **popen)
    out, err = client.communicate(stdin, timeout=120)
    assert client.returncode == 0, err
    found = json.loads(out)
    warm_run = found.pop("pid") != client.pid
    return found, warm_run


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _until(check, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


# ----------------------------------------------------------------------------- a warm command is the command you ran


def test_a_warm_command_runs_with_its_callers_folder_umask_environment_and_streams(warm_dir, tmp_path):
    server, path = _server(_env(warm_dir), tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _env(warm_dir, FOO="bar")
    hot, ran_warm = _context(env, elsewhere, umask=0o027)
    assert ran_warm, "the command did not run in the server"
    cold, ran_warm = _context({**env, warm.ENV_SWITCH: "0"}, elsewhere, umask=0o027)
    assert not ran_warm
    assert hot == cold
    assert hot["cwd"] == str(elsewhere) and hot["umask"] == 0o027 and hot["env"]["FOO"] == "bar"
    assert hot["stdin"] == "hello\n" and hot["argv"] == ["context"]
    log = _log(path)
    assert "start:" in log and "preloaded" in log and "command" in log and "context" in log


def _variants(tmp_path: Path) -> dict[str, dict]:
    """Contexts that differ from the base only in what a child cannot take on."""
    with_rc = tmp_path / "with-rc"
    with_rc.mkdir()
    (with_rc / "matplotlibrc").write_text("figure.facecolor: yellow\n")
    found = {
        "nice": {"wrap": ("nice", "-n", "15")},
        "a lower limit": {"wrap": ("prlimit", "--nofile=256:256")},
        "TMPDIR": {"env": {"TMPDIR": str(tmp_path)}},
        "TZ": {"env": {"TZ": "Asia/Tokyo"}},
        "HOME": {"env": {"HOME": str(tmp_path)}},
        "MPLCONFIGDIR": {"env": {"MPLCONFIGDIR": str(tmp_path)}},
        "XDG_CONFIG_HOME": {"env": {"XDG_CONFIG_HOME": str(tmp_path)}},
        "a locale": {"env": {"LC_ALL": "C.UTF-8"}},
        "a Slurm job": {"env": {"SLURM_JOB_ID": "1"}},
        "a PBS job": {"env": {"PBS_JOBID": "1.server"}},
        "an LSF job": {"env": {"LSB_JOBID": "1"}},
        "a matplotlibrc in the folder": {"cwd": with_rc},
    }
    if len(os.sched_getaffinity(0)) > 1:
        found["affinity"] = {"wrap": ("taskset", "-c", str(min(os.sched_getaffinity(0))))}
    if _can_unshare():
        found["a mount namespace"] = {"wrap": ("unshare", "-m")}
        found["a network namespace"] = {"wrap": ("unshare", "-n")}
    return found


def test_the_server_a_command_reaches_is_one_started_in_the_same_context(tmp_path, warm_dir):
    base_dir = tmp_path / "base"
    base_dir.mkdir()
    env = _env(warm_dir)
    base = _path(env, base_dir)
    for name, variant in _variants(tmp_path).items():
        other = _path({**env, **variant.get("env", {})}, variant.get("cwd", base_dir), variant.get("wrap", ()))
        assert other != base, f"a command with another {name} would reach the same server"
    # what a child does take on from its client keeps the server
    plain = tmp_path / "plain"
    plain.mkdir()
    assert _path({**env, "FOO": "1", "MLFLOW_TRACKING_URI": "sqlite:///x.db"}, plain) == base
    # a job's commands never reach another job's server
    assert _path({**env, "SLURM_JOB_ID": "1"}, base_dir) != _path({**env, "SLURM_JOB_ID": "2"}, base_dir)


@as_root
def test_a_command_in_another_cgroup_reaches_another_server(tmp_path, warm_dir):
    group = Path(f"/sys/fs/cgroup/pids/cvflow-test-{os.getpid()}")
    if not Path("/sys/fs/cgroup/pids/cgroup.procs").exists():
        group = Path(f"/sys/fs/cgroup/cvflow-test-{os.getpid()}")  # cgroup v2
    try:
        group.mkdir()
    except OSError as error:
        pytest.skip(f"cannot create a cgroup here ({error})")
    try:
        env = _env(warm_dir)
        wrap = ("sh", "-c", f'echo $$ > {group}/cgroup.procs && exec "$@"', "sh")
        assert _path(env, tmp_path, wrap) != _path(env, tmp_path)
    finally:
        group.rmdir()


def test_a_command_with_another_nice_affinity_and_limit_runs_in_a_server_started_with_them(tmp_path, warm_dir):
    """The row: `ulimit; nice -n 15; taskset -c 0` ran warm at nice 0 on both CPUs with no limits."""
    env = _env(warm_dir)
    wrap = ("nice", "-n", "15", "prlimit", "--nofile=256:256")
    if len(os.sched_getaffinity(0)) > 1:
        wrap += ("taskset", "-c", str(min(os.sched_getaffinity(0))))
    plain, plain_path = _server(env, tmp_path)
    limited, limited_path = _server(env, tmp_path, wrap=wrap)
    hot, ran_warm = _context(env, tmp_path, wrap)
    assert ran_warm, "the command did not run in the server started in its context"
    cold, _ = _context({**env, warm.ENV_SWITCH: "0"}, tmp_path, wrap)
    assert hot == cold
    assert hot["nice"] == os.getpriority(os.PRIO_PROCESS, 0) + 15 or hot["nice"] == 19
    assert hot["rlimits"]["RLIMIT_NOFILE"] == [256, 256]
    assert "command" not in _log(plain_path) and "command" in _log(limited_path)


@as_root
@pytest.mark.skipif(not _can_unshare(), reason="needs unshare(1) and mount namespaces")
def test_a_read_only_mount_for_the_command_is_read_only_for_it(tmp_path, warm_dir):
    """The row: a store mounted read-only for the command was written by the warm one."""
    env = _env(warm_dir)
    _server(env, tmp_path)
    store = tmp_path / "store"
    store.mkdir()
    script = (f"mount --bind {store} {store} && mount -o remount,bind,ro {store} && "
              f'exec {sys.executable} {PROBE} client write {store / "f"}')
    out = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "refused: Read-only file system"
    assert not (store / "f").exists()


# ----------------------------------------------------------------------------- only the user reaches the server


# what the other user's programs (standard library only) do with a connection: count the bytes it sends until it
# closes or goes quiet, answering each chunk with ``reply`` (a server's lines) when given
_DRAIN = r"""
def drain(conn, reply=b""):
    received = 0
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                break
            received += len(data)
            if reply:
                conn.sendall(reply)
    except OSError:
        pass
    return received
"""

_ATTACKER = _DRAIN + r"""
import os, socket, sys, time
folder, name, link = sys.argv[1], sys.argv[2], sys.argv[3] == "link"
target = "/tmp/attacker"
os.mkdir(target); os.chmod(target, 0o777)
if link:
    os.symlink(target, folder)
else:
    os.mkdir(folder); os.chmod(folder, 0o777)
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(os.path.join(target if link else folder, name)); os.chmod(server.getsockname(), 0o777)
server.listen(4); server.settimeout(0.1)
open("/tmp/attacker/ready", "w").close()
received = 0
deadline = time.monotonic() + 60
while not os.path.exists("/tmp/victim-done") and time.monotonic() < deadline:
    try:
        conn, _ = server.accept()
    except socket.timeout:
        continue
    conn.settimeout(2)
    received += drain(conn, b"PID 1\nEXIT 0\n")
open("/tmp/attacker/received", "w").write(str(received))
"""

_VICTIM = r"""
import json, os, subprocess, sys, time
sys.path.insert(0, sys.argv[2])
from cvflow.stages import warm
os.environ.pop("XDG_RUNTIME_DIR", None); os.environ.pop(warm.ENV_DIR, None)
folder = f"/tmp/cvflow-{os.getuid()}"
attacker = subprocess.Popen([sys.argv[4], "-c", sys.argv[1], folder, warm.socket_name(), sys.argv[3]],
                            user=65534, group=65534, extra_groups=[])
while not os.path.exists("/tmp/attacker/ready"):
    assert attacker.poll() is None, "the attacker failed"
    time.sleep(0.02)
code = warm.run_warm(["--help"])
open("/tmp/victim-done", "w").close()
attacker.wait(timeout=60)
print(json.dumps({"code": code, "received": int(open("/tmp/attacker/received").read()),
                  "target_mode": oct(os.stat("/tmp/attacker").st_mode & 0o777),
                  "target_files": sorted(os.listdir("/tmp/attacker")),
                  "folder_owner": os.lstat(folder).st_uid, "name": warm.socket_name()}))
"""


@as_root
@pytest.mark.skipif(not _can_unshare(), reason="needs unshare(1) and mount namespaces (a /tmp of its own)")
@pytest.mark.parametrize("plant", ["folder", "link"])
def test_another_user_who_makes_the_socket_folder_first_gets_nothing(plant):
    """The row: with XDG_RUNTIME_DIR unset, a second user who creates /tmp/cvflow-<uid> first (or plants a
    link there) and listens on the socket name received the victim's argv, cwd, streams and environment, and
    chose its exit code. Now the folder is verified (owner, mode 0700, not a link) and the command runs cold,
    sending nothing; nothing is chmod-ed through the link."""
    src = Path(__file__).resolve().parents[1]
    script = 'mount -t tmpfs -o mode=1777 tmpfs /tmp && exec "$0" -c "$1" "$2" "$3" "$4" "$5"'
    out = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, sys.executable, _VICTIM,
                          _ATTACKER, str(src), plant, OTHER_PYTHON], capture_output=True, text=True, timeout=120,
                         cwd="/")
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["code"] is None, "the command was answered by the other user's socket"
    assert found["received"] == 0, "the other user received the request"
    assert found["target_mode"] == "0o777", "the folder behind the link was chmod-ed"
    assert found["folder_owner"] == NOBODY
    assert set(found["target_files"]) <= {"ready", "received", found["name"]}, "the victim wrote into that folder"


_LISTENER = _DRAIN + r"""
import os, socket, sys
path = sys.argv[1]
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path); os.chmod(path, 0o777); server.listen(1); server.settimeout(20)
print("ready", flush=True)
conn, _ = server.accept(); conn.settimeout(3)
print(drain(conn), flush=True)
"""


@as_root
def test_a_client_sends_nothing_to_a_socket_another_user_serves():
    folder = Path(tempfile.mkdtemp(prefix="cvw-", dir="/tmp"))
    try:
        os.chmod(folder, 0o777)
        path = folder / "s.sock"
        listener = subprocess.Popen([OTHER_PYTHON, "-c", _LISTENER, str(path)], user=NOBODY, group=NOBODY,
                                    extra_groups=[], stdout=subprocess.PIPE, text=True)
        assert listener.stdout.readline().strip() == "ready"
        with pytest.raises(warm.Foreign):
            warm._connect(path)
        out, _ = listener.communicate(timeout=30)
        assert out.strip() == "0"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


_INTRUDER = r"""
import json, socket, struct, sys
conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
conn.connect(sys.argv[1])
body = json.dumps({"argv": ["mark", sys.argv[2]], "argv0": "cvflow", "cwd": "/", "env": {}, "path": sys.path,
                   "umask": 0o22}).encode()
try:  # a well-formed request, as the cvflow client sends it (length, JSON, the three standard streams)
    socket.send_fds(conn, [struct.pack("!I", len(body)) + body], [0, 1, 2])
    conn.settimeout(10)
    print(repr(conn.recv(100)))
except OSError as error:
    print(type(error).__name__)
"""


@as_root
def test_the_server_runs_nothing_for_another_user(tmp_path, warm_dir):
    server, path = _server(_env(warm_dir), tmp_path)
    os.chmod(warm_dir, 0o711)  # as if the folder had been opened to others: the server still checks who calls
    os.chmod(path, 0o777)
    marker = Path(tempfile.mkdtemp(prefix="cvw-m-", dir="/tmp"))
    os.chmod(marker, 0o777)
    try:
        out = subprocess.run([OTHER_PYTHON, "-c", _INTRUDER, str(path), str(marker / "ran")], user=NOBODY,
                             group=NOBODY, extra_groups=[], capture_output=True, text=True, timeout=60)
        assert out.stdout.strip() in ("b''", "ConnectionResetError", "BrokenPipeError"), out
        assert not (marker / "ran").exists(), "the server ran another user's command"
        assert f"refused a connection from uid {NOBODY}" in _log(path)
    finally:
        os.chmod(warm_dir, 0o700)
        shutil.rmtree(marker, ignore_errors=True)


# ----------------------------------------------------------------------------- no new way to fail


def test_commands_that_come_as_the_server_steps_aside_run_cold(tmp_path, warm_dir):
    """The row: after an edit, four commands at once: two clients died with ConnectionResetError."""
    (tmp_path / "held_module.py").write_text("x = 1\n")
    env = _env(warm_dir, PYTHONPATH=str(tmp_path))
    server, path = _server(env, tmp_path, preload="held_module")
    later = time.time_ns() + 10**9
    os.utime(tmp_path / "held_module.py", ns=(later, later))  # an edit of a file the server holds
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.connect(str(path))  # holds the server a few seconds (REQUEST_TIMEOUT) once it takes it
    _until(lambda: _pending(path) == 0, "the server took the silent connection", timeout=60)
    # stopped, the server takes no connection, so the four all wait in its backlog however slow their start-up is
    # (on a loaded machine one could come after the server left, find none and start one)
    server.send_signal(signal.SIGSTOP)
    try:
        clients = [_client(env, tmp_path, "context") for _ in range(4)]
        _until(lambda: _pending(path) == 4, "the four commands connected", timeout=60)
    finally:
        server.send_signal(signal.SIGCONT)
    for client in clients:
        out, err = client.communicate(timeout=120)
        assert client.returncode == 0 and "Traceback" not in err, err
        assert json.loads(out)["pid"] == client.pid  # ran cold, here
    assert "step aside" in _log(path) and "held_module.py changed" in _log(path)
    assert len(list(warm_dir.glob("*.log"))) == 1, "a client found no server and started one: no reset was tried"
    silent.close()


def test_a_silent_connection_neither_blocks_others_nor_keeps_the_server_up(tmp_path, warm_dir):
    env = _env(warm_dir)
    timeout = 1.0  # the server's own wait for a request (cvflow's is 5 s): the test waits for it twice
    server, path = _server(env, tmp_path, idle=2, request_timeout=timeout)
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.connect(str(path))
    began = time.monotonic()
    found, ran_warm = _context(env, tmp_path)
    assert ran_warm and time.monotonic() - began < timeout + 10
    assert "sent no request within 1 s" in _log(path)
    again = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    again.connect(str(path))  # another one that stays silent: the server still leaves when idle
    server.wait(timeout=2 + timeout + 20)
    assert "no command for" in _log(path)
    silent.close()
    again.close()


def test_the_server_stays_while_a_command_runs_past_its_idle_time_then_leaves(tmp_path, warm_dir):
    """A stage that trains for minutes kept no server: the one it ran in left after its idle time, so the stages
    after it ran cold and started another. Idle counts from the last command's end."""
    env = _env(warm_dir)
    server, path = _server(env, tmp_path, idle=1)
    done = tmp_path / "done"
    client = _client(env, tmp_path, "wait", str(done))
    assert int(client.stdout.readline()) != client.pid, "the command did not run warm"
    time.sleep(3)  # three idle times
    assert server.poll() is None, "the server left while its command ran"
    done.touch()
    client.communicate(timeout=60)
    server.wait(timeout=30)
    assert "no command for 1 s; exiting" in _log(path)


def test_the_cold_command_that_started_the_server_keeps_it_while_it_runs(tmp_path, warm_dir):
    """The row: a first stage that trained past the idle time ran cold beside the server it had started, which
    left meanwhile, so the next stage ran cold too and started another server. The starter counts as running."""
    env = _env(warm_dir)
    starter = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE,
                               text=True)
    server, path = _server(env, tmp_path, idle=1, starter=starter.pid)
    time.sleep(3)  # three idle times
    assert server.poll() is None, "the server left while the command that started it ran"
    starter.communicate("", timeout=30)  # it ends: idle from now on
    server.wait(timeout=30)
    assert "no command for 1 s; exiting" in _log(path)


def test_a_command_that_finds_no_server_starts_one_that_it_keeps(tmp_path, warm_dir):
    """The client that starts the server runs its command cold and names itself the server's starter."""
    env = _env(warm_dir)
    done = tmp_path / "done"
    client = _client(env, tmp_path, "wait", str(done))
    try:
        assert int(client.stdout.readline()) == client.pid, "no server yet: the command runs cold"
        path = _path(env, tmp_path)
        _until(lambda: re.search(r"\[(\d+)\] start:", _log(path)), "the command started no server", timeout=60)
        pid = re.search(r"\[(\d+)\] start:", _log(path)).group(1)
        argv = Path(f"/proc/{pid}/cmdline").read_text().rstrip("\0").split("\0")
        assert argv[-2:] == [str(path), str(client.pid)], argv
    finally:
        done.touch()
        client.communicate(timeout=60)
    assert client.returncode == 0


def test_ctrl_z_stops_the_command_fg_continues_it_and_signals_reach_it(tmp_path, warm_dir):
    env = _env(warm_dir)
    _server(env, tmp_path)
    done = tmp_path / "done"
    client = _client(env, tmp_path, "wait", str(done))
    command = int(client.stdout.readline())
    assert command != client.pid, "the command did not run warm"
    client.send_signal(signal.SIGUSR1)
    assert client.stdout.readline().strip() == "USR1"
    client.send_signal(signal.SIGTSTP)  # Ctrl-Z
    _until(lambda: _state(command) == "T" and _state(client.pid) == "T", "Ctrl-Z did not stop the command")
    client.send_signal(signal.SIGCONT)  # fg
    _until(lambda: _state(command) != "T" and _state(client.pid) != "T", "fg did not continue the command")
    done.touch()
    client.communicate(timeout=60)
    assert client.returncode == 0


def test_ctrl_c_while_the_server_imports_ends_in_one_line_and_runs_nothing(tmp_path, warm_dir):
    gate = tmp_path / "go"  # the server's imports block until it exists
    (tmp_path / "slow_library.py").write_text(
        f"import os, time\nwhile not os.path.exists({str(gate)!r}):\n    time.sleep(0.02)\n")
    env = _env(warm_dir, PYTHONPATH=str(tmp_path))
    server, path = _server(env, tmp_path, preload="slow_library", wait=False)
    _until(lambda: path.exists(), "the server does not listen")
    marker = tmp_path / "ran"
    client = _client(env, tmp_path, "mark", str(marker))
    time.sleep(1.0)  # connected, its request sent, waiting for the server
    assert client.poll() is None
    client.send_signal(signal.SIGINT)
    client.wait(timeout=30)  # its streams stay open until the server has taken and dropped them (after its imports)
    assert client.returncode == 130
    gate.touch()
    _, err = client.communicate(timeout=60)
    assert err.strip().splitlines() == [INTERRUPTED]
    _until(lambda: "went away before its command started" in _log(path), "the server did not notice")
    assert not marker.exists(), "the command ran after its client was interrupted"


def test_ctrl_c_while_a_cold_command_imports_ends_in_one_line(tmp_path):
    root = _project(tmp_path / "p")
    exe = shutil.which("cvflow", path=str(Path(sys.executable).parent))
    client = subprocess.Popen([exe, "fetch", "hotdog"], cwd=root, text=True,
                              env={**os.environ, warm.ENV_SWITCH: "0"}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    time.sleep(1.0)
    client.send_signal(signal.SIGINT)
    _, err = client.communicate(timeout=60)
    assert client.returncode == 130, err
    assert err.strip().splitlines() == [INTERRUPTED]


def test_a_command_from_a_removed_folder_runs_as_a_cold_one_does(tmp_path, warm_dir):
    gone = tmp_path / "gone"
    gone.mkdir()
    exe = shutil.which("cvflow", path=str(Path(sys.executable).parent))
    script = f'cd {gone} && rmdir {gone} && exec {exe} --help'
    hot = subprocess.run(["sh", "-c", script], env=_env(warm_dir), capture_output=True, text=True, timeout=120)
    gone.mkdir()
    cold = subprocess.run(["sh", "-c", script], env={**_env(warm_dir), warm.ENV_SWITCH: "0"}, capture_output=True,
                          text=True, timeout=120)
    assert hot.returncode == cold.returncode == 0, hot.stderr
    assert hot.stdout == cold.stdout and "Usage" in hot.stdout


# ----------------------------------------------------------------------------- the rows, with the real command


def _project(root: Path) -> Path:
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    return root


def _wait_for_server(env: dict, cwd: Path) -> None:
    waited = subprocess.run([sys.executable, "-c", "from cvflow.stages.warm import wait_for_server; "
                             "print(wait_for_server(120))"], env=env, cwd=cwd, capture_output=True, text=True)
    assert waited.stdout.strip() == "True", f"the warm server did not start: {waited.stderr}"


@pytest.mark.slow
def test_a_command_with_another_temp_folder_than_the_server_is_logged_as_a_cold_one(tmp_path, warm_dir):
    """The row: the server started with TMPDIR=A, A removed, then a command with TMPDIR=B: exit 1 with
    FileNotFoundError under A while logging the MLflow model; cold: exit 0."""
    root = _project(tmp_path / "p")
    env = _env(warm_dir, MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}")
    for step in (("fetch", "hotdog"), ("pretrain", "hotdog")):
        assert run_cvflow(*step, cwd=root, env={**env, warm.ENV_SWITCH: "0"}).returncode == 0
    first, second = tmp_path / "A", tmp_path / "B"
    first.mkdir()
    second.mkdir()
    assert run_cvflow("--help", cwd=root, env={**env, "TMPDIR": str(first)}).returncode == 0
    _wait_for_server({**env, "TMPDIR": str(first)}, root)
    shutil.rmtree(first)
    for _ in range(2):  # the second time in a server of its own context
        trained = run_cvflow("train", "hotdog", "--variant", "finetune", cwd=root, env={**env, "TMPDIR": str(second)})
        assert trained.returncode == 0, trained.stderr[-2000:]
        _wait_for_server({**env, "TMPDIR": str(second)}, root)


@pytest.mark.slow
def test_a_matplotlibrc_in_the_project_draws_the_same_warm_and_cold(tmp_path, warm_dir):
    """The row: a matplotlibrc in the project: the cold PNG differed from the warm one."""
    root = _project(tmp_path / "p")
    env = _env(warm_dir)
    assert run_cvflow("fetch", "photos", cwd=root, env={**env, warm.ENV_SWITCH: "0"}).returncode == 0
    figure = root / "data" / "reports" / "upsampling" / "catdog_x2.png"
    assert run_cvflow("figures", "upsampling", cwd=root, env={**env, warm.ENV_SWITCH: "0"}).returncode == 0
    plain = figure.read_bytes()
    (root / "matplotlibrc").write_text("figure.facecolor: yellow\n")
    assert run_cvflow("figures", "upsampling", cwd=root, env={**env, warm.ENV_SWITCH: "0"}).returncode == 0
    cold = figure.read_bytes()
    assert cold != plain, "the matplotlibrc does not change the figure: the test would prove nothing"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert run_cvflow("--help", cwd=elsewhere, env=env).returncode == 0  # a server started without it
    _wait_for_server(env, elsewhere)
    for _ in range(2):  # the second time in a server started in the project's folder
        assert run_cvflow("figures", "upsampling", cwd=root, env=env).returncode == 0
        assert figure.read_bytes() == cold
        _wait_for_server(env, root)
    logs = "".join(log.read_text() for log in warm_dir.glob("*.log"))
    assert "cvflow figures upsampling" in logs, "no figure was drawn warm"
