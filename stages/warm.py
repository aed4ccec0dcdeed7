"""Warm starts for `cvflow` commands: a fork server that holds the heavy libraries already imported.

Every DVC stage is a new `cvflow` process, and before its own work each one imports torch, torchvision
(which imports torch._dynamo), MLflow with its SQL store, matplotlib and pandas: about 6 s of a 2-core
laptop's time, 35 times in a `dvc repro` (``benchmarks/bench_stage_cost.py`` measures it). Here the first
`cvflow` command starts, in the background, a server that imports those libraries once and then forks a
child per command; the command's own process (the client) hands the child its standard input, output and
error (the file descriptors themselves), its arguments, working folder, environment, ``sys.path`` and
umask, forwards Ctrl-C and other signals to it, and exits with its exit code. Output, exit codes and
files are those of a cold process; only the imports are already done.

What keeps it correct:

* Only third-party libraries are preloaded, never cvflow's own modules (the child imports those from disk,
  so an edit always counts). Before each command the server checks that no file of a module it holds has
  changed (a `pip install` of another torch, an edit of this file): if one has, it steps aside and exits,
  and the command runs cold.
* A server serves only clients of the same interpreter, ``sys.path`` and import-time environment
  (thread counts, CUDA, matplotlib and Python settings): they are part of its socket's name.
* It forks with one Python thread and without touching CUDA (no CUDA context is ever forked); native helper
  threads (pyarrow's jemalloc background thread) are made fork-safe by their own libraries, as for any
  forked DataLoader worker.
* The child runs the command exactly as ``cvflow.stages.cli.main`` runs it in a cold process, exit
  handlers included; a client that disappears (killed) takes its child down with it.
* It runs where fork and passing descriptors over Unix sockets exist (Linux, macOS); elsewhere, under
  torchrun (``RANK`` set), or with ``CVFLOW_WARM=0``, every command runs cold, as before.
* The server exits after ``IDLE`` seconds without a command. Its socket lives in a folder only its user
  can open.

No maintained library forks warm Python processes for separate command-line invocations (the standard
library's ``multiprocessing.forkserver`` serves only its own parent program), hence this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

IDLE = 60.0  # seconds without a command before the server exits
ENV_SWITCH = "CVFLOW_WARM"
# Imported by the server before it forks: what every stage imports anyway (never cvflow's own modules).
PRELOAD = ("numpy", "PIL.Image", "yaml", "pydantic", "typer", "rich.console", "torch", "torchvision",
           "torchvision.transforms.v2", "torchmetrics", "matplotlib", "matplotlib.pyplot", "pandas", "mlflow",
           "mlflow.pyfunc", "mlflow.store.tracking.sqlalchemy_store", "mlflow.store.model_registry.sqlalchemy_store")
# Environment variables read while those libraries are imported: a server serves only clients that agree.
IMPORT_ENV = ("OMP_", "MKL_", "OPENBLAS_", "CUDA_", "NVIDIA_", "PYTORCH_", "TORCH", "MPL", "PYTHON", "LD_",
              "MLFLOW_ENABLE", "MLFLOW_CONFIGURE")
_HEADER = struct.Struct("!I")


# ----------------------------------------------------------------------------- the client side


def enabled(environ: dict[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    if environ.get(ENV_SWITCH, "").lower() in ("0", "off", "false", "no"):
        return False
    if "RANK" in environ or "WORLD_SIZE" in environ:  # torchrun watches its own children
        return False
    return os.name == "posix" and hasattr(socket, "send_fds") and hasattr(os, "fork")


def socket_path(environ: dict[str, str] | None = None) -> Path:
    """The server's socket for this interpreter, ``sys.path`` and import-time environment."""
    environ = os.environ if environ is None else environ
    key = json.dumps([os.path.realpath(sys.executable), sys.path[1:],
                      sorted((k, v) for k, v in environ.items() if k.startswith(IMPORT_ENV))])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    base = environ.get("XDG_RUNTIME_DIR") or f"/tmp/cvflow-{os.getuid()}"
    return Path(base) / "cvflow-warm" / f"{digest}.sock"


def _send(conn: socket.socket, data: bytes, fds: list[int] | None = None) -> None:
    message = _HEADER.pack(len(data)) + data
    if fds:
        socket.send_fds(conn, [message], fds)
    else:
        conn.sendall(message)


def _lines(conn: socket.socket):
    """The server's reply lines (``PID n``, ``EXIT n``, ``COLD``), as they come."""
    buffer = b""
    while True:
        try:
            chunk = conn.recv(4096)
        except InterruptedError:
            continue
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield line.decode()


def _connect(path: Path) -> socket.socket | None:
    """A connection to the server at ``path``, or None when none answers there."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
        return conn
    except OSError:
        conn.close()
        return None


def run_warm(argv: list[str]) -> int | None:
    """Run the command in a child of the server and return its exit code; None: run it cold here
    (no server yet, one is being started; or the server stepped aside)."""
    path = socket_path()
    conn = _connect(path)
    if conn is None:  # none yet: start one for the next commands and run this one cold (often a light one)
        start_server(path)
        return None
    request = {"argv": argv, "argv0": sys.argv[0], "cwd": os.getcwd(), "env": dict(os.environ),
               "path": sys.path, "umask": _umask()}
    child = None
    forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
    previous = {}

    def forward(signum, _frame) -> None:
        if child:
            os.kill(child, signum)

    try:
        try:
            _send(conn, json.dumps(request).encode(), [0, 1, 2])
        except OSError:  # e.g. a standard stream closed: nothing to hand over
            return None
        for line in _lines(conn):
            word, _, value = line.partition(" ")
            if word == "COLD":
                return None
            if word == "PID":
                child = int(value)
                for signum in forwarded:
                    previous[signum] = signal.signal(signum, forward)
            elif word == "EXIT":
                return int(value)
        if child is None:  # the server went away before starting the command: run it here
            return None
        print("cvflow: error: the warm-start server stopped while the command ran; rerun it "
              f"(or set {ENV_SWITCH}=0 to run commands cold)", file=sys.stderr)
        return 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        conn.close()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def start_server(path: Path) -> None:
    """Start the server in the background (its own session, no terminal, no inherited output)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path.parent, 0o700)
        subprocess.Popen([sys.executable, "-c", "import sys; from cvflow.stages.warm import serve; "
                          "serve(sys.argv[1])", str(path)], cwd="/", stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                         close_fds=True)
    except OSError:
        pass  # no server: every command runs cold


def main() -> None:
    """The `cvflow` console script: through the warm server when there is one, else cold."""
    argv = sys.argv[1:]
    if enabled():
        code = run_warm(argv)
        if code is not None:
            sys.exit(code)
    from cvflow.stages.cli import main as cold

    sys.exit(cold(argv))


# ----------------------------------------------------------------------------- the server side


def _stamp() -> dict[str, int]:
    """Modification times of the files of every module held (what must not change under the server)."""
    found = {}
    for module in list(sys.modules.values()):
        name = getattr(module, "__file__", None)
        if name:
            try:
                found[name] = os.stat(name).st_mtime_ns
            except OSError:
                found[name] = -1
    return found


def _changed(stamp: dict[str, int]) -> bool:
    for name, mtime in stamp.items():
        try:
            if os.stat(name).st_mtime_ns != mtime:
                return True
        except OSError:
            if mtime != -1:
                return True
    return False


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    if len(data) < _HEADER.size:
        for fd in fds:
            os.close(fd)
        raise ConnectionError("no request (a probe)")
    size = _HEADER.unpack(data[:_HEADER.size])[0]
    body = data[_HEADER.size:]
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ConnectionError("request cut short")
        body += chunk
    return json.loads(body), list(fds)


def _run_command(request: dict, fds: list[int]) -> None:
    """In the forked child: become the client's process, run the command, exit as a cold process does."""
    import atexit

    for signum in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_DFL if signum != signal.SIGINT else signal.default_int_handler)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.umask(request["umask"])
    sys.path[:] = request["path"]
    sys.argv = [request["argv0"], *request["argv"]]
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=stream.isatty() or stream is sys.stderr)
        except (AttributeError, ValueError):
            pass
    code: object = 0
    try:
        from cvflow.stages.cli import main as cold

        code = cold(request["argv"])
    except SystemExit as done:
        code = done.code
    except BaseException:  # what a cold process prints for an uncaught error
        import traceback

        traceback.print_exc()
        code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def _supervise(conn: socket.socket, request: dict, fds: list[int]) -> None:
    """In the first child: fork the command, tell the client its pid, wait, report its exit code. A client
    that goes away (killed) takes the command down with it."""
    import select

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # this process waits for its child itself
    pid = os.fork()
    if pid == 0:
        conn.close()
        _run_command(request, fds)
    for fd in fds:
        os.close(fd)
    try:
        conn.sendall(f"PID {pid}\n".encode())
    except OSError:
        os.kill(pid, signal.SIGTERM)
    # Linux: a pidfd turns readable the moment the command exits, so the client hears at once; elsewhere a
    # 0.2 s poll (which kept every command 0.1 s longer on average: 3.5 s over a pipeline's 35 stages)
    try:
        exited = [os.pidfd_open(pid)]
    except (AttributeError, OSError):
        exited = []
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        readable, _, _ = select.select([conn, *exited], [], [], 5.0 if exited else 0.2)
        if conn in readable:
            try:
                gone = conn.recv(1, socket.MSG_PEEK) == b""
            except OSError:
                gone = True
            if gone:  # the client was killed: so is its command, at once (as if it had been the client)
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                os._exit(0)
    code = os.waitstatus_to_exitcode(status)
    code = 128 - code if code < 0 else code  # killed by a signal: the shell's 128 + N
    try:
        conn.sendall(f"EXIT {code}\n".encode())
    except OSError:
        pass
    os._exit(0)


def _bind(path: Path) -> socket.socket | None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(path))
    except OSError:
        probe = _connect(path)
        if probe is not None:  # another server answers there
            probe.close()
            server.close()
            return None
        path.unlink(missing_ok=True)  # a dead server's socket
        server.bind(str(path))
    os.chmod(path, 0o600)
    server.listen(16)
    return server


def preload() -> None:
    """Import :data:`PRELOAD` (what a library that fails to import here is left to the command)."""
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001  the command imports it again and reports what is wrong
            pass
    try:  # MLflow's map of installed packages, read once per process when a model is logged (its requirements
        # are checked against it): scanning every installed distribution takes seconds, once here for all
        from mlflow.utils.requirements_utils import _init_packages_to_modules_map

        _init_packages_to_modules_map()
    except Exception:  # noqa: BLE001  a private helper of MLflow's: if it moved, each command scans for itself
        pass


def serve(path: str) -> None:
    """The server: preload, then fork a child per command until ``IDLE`` seconds pass without one."""
    import threading

    sock_path = Path(path)
    # Listening before importing: a command that comes while the libraries load waits in the backlog for a
    # warm child, instead of running cold and starting yet another server, both importing torch beside this
    # one (the second stage of a fresh pipeline took 8 s that way, 2 s warm)
    server = _bind(sock_path)
    if server is None:
        return
    identity = os.stat(sock_path).st_ino
    try:
        preload()
        if threading.active_count() != 1:
            return  # a library started a thread: forking now would be unsafe; commands run cold
        stamp = _stamp()
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the supervisors are reaped by the kernel
        server.settimeout(IDLE)
        while True:
            try:
                conn, _ = server.accept()
            except socket.timeout:
                return
            conn.settimeout(None)
            try:
                request, fds = _receive(conn)
            except (OSError, ValueError, ConnectionError):
                conn.close()
                continue
            if _changed(stamp):
                conn.sendall(b"COLD\n")
                conn.close()
                for fd in fds:
                    os.close(fd)
                return
            if os.fork() == 0:
                server.close()
                _supervise(conn, request, fds)
            conn.close()
            for fd in fds:
                os.close(fd)
    finally:
        try:
            if os.stat(sock_path).st_ino == identity:
                sock_path.unlink()
        except OSError:
            pass
        server.close()


def wait_for_server(timeout: float = 60.0) -> bool:
    """Block until a server answers at this interpreter's socket (for tests and benchmarks)."""
    path = socket_path()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = _connect(path)
        if probe is not None:
            probe.close()
            return True
        time.sleep(0.2)
    return False
