"""Warm starts for `cvflow` commands: a fork server that holds the heavy libraries already imported.

Every DVC stage is a new `cvflow` process, and before its own work each one imports torch, torchvision
(which imports torch._dynamo), MLflow with its SQL store, matplotlib and pandas: about 6 s of a 2-core
laptop's time, 35 times in a `dvc repro` (``benchmarks/bench_stage_cost.py`` measures it). Here the first
`cvflow` command starts, in the background, a server that imports those libraries once and then forks a
child per command; the command's own process (the client) hands the child its standard input, output and
error (the file descriptors themselves), its arguments, working folder, environment, ``sys.path`` and
umask, forwards every signal to it (Ctrl-Z stops it, ``fg`` continues it), and exits with its exit code.

The design: **a server per process context**. A warm command must not be told from a cold one, so a server
is only ever shared by commands that a cold process would start identically. Everything a child cannot
take on from its client is part of the server's name (:func:`context`): the user and groups, the
interpreter, ``sys.path``, the environment read at import time (thread counts, CUDA, Python, locale, home
and configuration folders, temp folder, time zone, matplotlib's settings including a ``matplotlibrc`` in
the working folder), the nice value, CPU affinity, every resource limit, capabilities, the cgroup and every
namespace (mount, user, pid, network...), and a job scheduler's job id. A command whose context differs
finds no server under that name and starts its own (started by the client, the server inherits exactly that
context). What varies per command is applied in the child: folder, environment, umask, ``sys.path``,
arguments, time zone (``tzset``), temp folder (``tempfile``'s cache reset).

Only the user can reach a server: its socket lives in a folder that is created with mode 0700 and then
verified (``lstat``: a folder, not a link, owned by the user, mode 0700; its parents owned by root or the
user and not writable by others unless sticky, as ``/tmp``), never ``chmod``-ed through a link; both
sides check the other's uid (``SO_PEERCRED``) before sending a byte. Anything else runs cold.

No new way to fail: a connection that sends no request within :data:`REQUEST_TIMEOUT` is closed; a client
whose command has not started within :data:`START_TIMEOUT`, or whose connection is refused or reset (a
server stepping aside), runs the command cold; Ctrl-C at any moment ends in one line, exit 130; a working
folder that was removed runs cold. The server writes a log (start, context, preloads, commands served,
step-asides, refusals, its own errors) beside its socket: :func:`log_path`.

What else keeps it correct:

* Only third-party libraries are preloaded, never cvflow's own modules (the child imports those from disk,
  so an edit always counts). Before each command the server checks that no file of a module it holds has
  changed (a `pip install` of another torch, an edit of this file): if one has, it steps aside and exits,
  and the command runs cold.
* It forks with one Python thread and without touching CUDA (no CUDA context is ever forked); native helper
  threads (pyarrow's jemalloc background thread) are made fork-safe by their own libraries, as for any
  forked DataLoader worker.
* The child runs the command exactly as ``cvflow.stages.cli.main`` runs it in a cold process, exit
  handlers included; a client that disappears (killed) takes its child down with it.
* It runs on Linux (fork, descriptors over Unix sockets, ``SO_PEERCRED``); elsewhere, under torchrun
  (``RANK`` set), or with ``CVFLOW_WARM=0``, every command runs cold.
* The server exits after ``IDLE`` seconds without a command running or coming; the command that started it,
  which runs cold, counts as running (a first stage that trains for minutes keeps it for the stages after it).

No maintained library forks warm Python processes for separate command-line invocations (the standard
library's ``multiprocessing.forkserver`` serves only its own parent program), hence this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

IDLE = 60.0  # seconds with no command running or coming before the server exits
REQUEST_TIMEOUT = 5.0  # seconds a connection has to send its request before the server closes it
START_TIMEOUT = 120.0  # seconds a client waits for its command to start (the server importing) before going cold
ENV_SWITCH = "CVFLOW_WARM"
ENV_DIR = "CVFLOW_WARM_DIR"  # the socket folder instead of $XDG_RUNTIME_DIR/cvflow-warm or /tmp/cvflow-<uid>
# Imported by the server before it forks: what every stage imports anyway (never cvflow's own modules).
PRELOAD = ("numpy", "PIL.Image", "yaml", "pydantic", "typer", "rich.console", "torch", "torchvision",
           "torchvision.transforms.v2", "torchmetrics", "matplotlib", "matplotlib.pyplot", "pandas", "mlflow",
           "mlflow.pyfunc", "mlflow.store.tracking.sqlalchemy_store", "mlflow.store.model_registry.sqlalchemy_store")
# Environment variables that a library may read while it is imported, or that place the process (a server
# serves only clients that agree on all of them): prefixes, then whole names.
CONTEXT_ENV_PREFIXES = ("OMP_", "MKL_", "OPENBLAS_", "CUDA_", "NVIDIA_", "PYTORCH_", "TORCH", "MPL", "MATPLOTLIB",
                        "PYTHON", "LD_", "MLFLOW_ENABLE", "MLFLOW_CONFIGURE", "XDG_", "LC_", "SLURM_JOB", "SLURM_STEP")
CONTEXT_ENV = ("HOME", "TMPDIR", "TEMP", "TMP", "TZ", "LANG", "LANGUAGE", "PBS_JOBID", "LSB_JOBID")
# Signals the client hands to the command. The terminal's stop signals stop the command with SIGSTOP (its
# process group is orphaned, where the kernel discards SIGTSTP) and then the client itself, so the shell's
# job control (Ctrl-Z, `fg`, `bg`) works on the pair; SIGCONT continues both.
FORWARDED = tuple(getattr(signal, name) for name in (
    "SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGWINCH", "SIGCONT", "SIGTSTP",
    "SIGTTIN", "SIGTTOU", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF") if hasattr(signal, name))
STOPS = tuple(getattr(signal, name) for name in ("SIGTSTP", "SIGTTIN", "SIGTTOU") if hasattr(signal, name))
_HEADER = struct.Struct("!I")
_CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid
_LOG_LIMIT = 1 << 20  # a log past 1 MiB is started afresh by the next server


# ----------------------------------------------------------------------------- where, and for whom


def enabled(environ: dict[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    if environ.get(ENV_SWITCH, "").lower() in ("0", "off", "false", "no"):
        return False
    if "RANK" in environ or "WORLD_SIZE" in environ:  # torchrun watches its own children
        return False
    return (sys.platform.startswith("linux") and hasattr(socket, "send_fds") and hasattr(socket, "SO_PEERCRED")
            and hasattr(os, "fork"))


def _matplotlibrc_files(environ: dict[str, str], cwd: str) -> list[str]:
    """The user's ``matplotlibrc`` candidates in matplotlib's documented order (working folder,
    ``$MATPLOTLIBRC``, then ``$MPLCONFIGDIR`` or ``$XDG_CONFIG_HOME/matplotlib`` or ``~/.config/matplotlib``):
    read once at import, so a server serves only commands that would read the same one."""
    home = environ.get("HOME") or os.path.expanduser("~")
    config = environ.get("MPLCONFIGDIR") or os.path.join(
        environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), "matplotlib")
    candidates = [os.path.join(cwd, "matplotlibrc")]
    if environ.get("MATPLOTLIBRC"):
        candidates += [environ["MATPLOTLIBRC"], os.path.join(environ["MATPLOTLIBRC"], "matplotlibrc")]
    return candidates + [os.path.join(config, "matplotlibrc")]


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def context(environ: dict[str, str] | None = None, cwd: str | None = None) -> dict:
    """What a command cannot take on inside a child of a running server: a server serves only commands that
    agree on all of it (it is hashed into the socket's name). Cheap: a few ``/proc`` reads and ``stat`` calls."""
    import resource

    environ = os.environ if environ is None else environ
    cwd = os.getcwd() if cwd is None else cwd
    found: dict = {
        "python": os.path.realpath(sys.executable), "path": sys.path[1:],
        "env": sorted((k, v) for k, v in environ.items() if k.startswith(CONTEXT_ENV_PREFIXES) or k in CONTEXT_ENV),
        "ids": [os.getuid(), os.geteuid(), os.getgid(), os.getegid(), sorted(os.getgroups())],
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "rlimits": {name: resource.getrlimit(getattr(resource, name)) for name in sorted(dir(resource))
                    if name.startswith("RLIMIT_")},
        "cgroup": _read("/proc/self/cgroup"),
        "status": [line for line in _read("/proc/self/status").splitlines()
                   if line.startswith(("Cap", "NoNewPrivs", "Seccomp"))],
        "matplotlibrc": [],
    }
    try:
        found["namespaces"] = {name: os.readlink(f"/proc/self/ns/{name}") for name in sorted(os.listdir("/proc/self/ns"))}
    except OSError:
        found["namespaces"] = None
    for candidate in _matplotlibrc_files(environ, cwd):
        try:
            info = os.stat(candidate)
            found["matplotlibrc"].append([candidate, info.st_ino, info.st_size, info.st_mtime_ns])
        except OSError:
            pass
    return found


def socket_name(environ: dict[str, str] | None = None, cwd: str | None = None) -> str:
    """The socket's file name for this process's :func:`context`."""
    return hashlib.sha256(json.dumps(context(environ, cwd)).encode()).hexdigest()[:24] + ".sock"


def _folder(environ: dict[str, str]) -> Path:
    if environ.get(ENV_DIR):
        return Path(environ[ENV_DIR])
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        return Path(runtime) / "cvflow-warm"
    return Path(f"/tmp/cvflow-{os.getuid()}")


def _private(folder: Path) -> bool:
    """True when only this user can create, rename or reach files in ``folder``: a real folder (not a link)
    owned by the user with mode 0700, whose parents no other user can swap (owned by root or the user, not
    writable by others unless sticky)."""
    uid = os.getuid()
    try:
        info = os.lstat(folder)
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or stat.S_IMODE(info.st_mode) != 0o700:
        return False
    for parent in Path(os.path.abspath(folder)).parents:
        try:
            info = os.stat(parent)
        except OSError:
            return False
        if info.st_uid not in (0, uid):
            return False
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX:
            return False
    return True


def private_folder(environ: dict[str, str] | None = None) -> Path | None:
    """The user's socket folder, created if missing (mode 0700) and verified (:func:`_private`); None when it
    is not private (another user made it first, a link was planted there...): then every command runs cold."""
    environ = os.environ if environ is None else environ
    folder = _folder(environ)
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    if not _private(folder):
        try:  # the user's own folder with another mode (a umask took bits off): mend it on the folder itself,
            # opened without following a link, never through a path a link could redirect
            handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            info = os.fstat(handle)
            if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid():
                os.fchmod(handle, 0o700)
        finally:
            os.close(handle)
        if not _private(folder):
            return None
    return folder


def socket_path(environ: dict[str, str] | None = None, cwd: str | None = None) -> Path | None:
    """The server's socket for this process's context, in the user's private folder; None: run cold."""
    environ = os.environ if environ is None else environ
    folder = private_folder(environ)
    if folder is None:
        return None
    path = folder / socket_name(environ, cwd)
    return path if len(os.fsencode(path)) < 104 else None  # a Unix socket's path is short (sun_path)


def log_path(sock: Path) -> Path:
    """The server's log, beside its socket: start, context, preloads, commands, step-asides, refusals."""
    return sock.with_suffix(".log")


def _peer_uid(conn: socket.socket) -> int | None:
    try:
        return _CREDENTIALS.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDENTIALS.size))[1]
    except OSError:
        return None


# ----------------------------------------------------------------------------- the client side


def _send(conn: socket.socket, data: bytes, fds: list[int] | None = None) -> None:
    message = _HEADER.pack(len(data)) + data
    if fds:
        sent = socket.send_fds(conn, [message], fds)
        if sent < len(message):
            conn.sendall(message[sent:])
    else:
        conn.sendall(message)


def _lines(conn: socket.socket):
    """The server's reply lines (``PID n``, ``EXIT n``, ``COLD``), as they come."""
    buffer = b""
    while True:
        chunk = conn.recv(4096)
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield line.decode()


class Foreign(ConnectionError):
    """The socket is served by another user: nothing is sent, the command runs cold."""


def _connect(path: Path) -> socket.socket | None:
    """A connection to this user's server at ``path``, or None when none answers there. Raises
    :class:`Foreign` when another user's process answers."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
    except OSError:
        conn.close()
        return None
    if _peer_uid(conn) != os.getuid():
        conn.close()
        raise Foreign(str(path))
    return conn


class _Signalled(BaseException):
    """A signal other than Ctrl-C came before the command started: the client ends as that signal would
    end a cold process."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def run_warm(argv: list[str]) -> int | None:
    """Run the command in a child of the server and return its exit code; None: run it cold here (no server
    yet, one is being started; the server stepped aside, refused or reset the connection; no private folder;
    the working folder is gone)."""
    try:
        cwd = os.getcwd()
        path = socket_path(cwd=cwd)
    except OSError:  # a removed working folder: a cold process runs there, so does this command
        return None
    if path is None:
        return None
    try:
        conn = _connect(path)
    except Foreign:
        return None
    if conn is None:  # none yet: start one for the next commands and run this one cold (often a light one)
        start_server(path, cwd)
        return None
    request = {"argv": argv, "argv0": sys.argv[0], "cwd": cwd, "env": dict(os.environ), "path": sys.path,
               "umask": _umask()}
    child: int | None = None
    previous = {}

    def forward(signum, _frame) -> None:
        if child is None:  # the command has not started: end here, as a cold process ends on this signal
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            if signum in STOPS:
                os.kill(os.getpid(), signal.SIGSTOP)
            elif signum not in (signal.SIGCONT, signal.SIGWINCH):
                raise _Signalled(signum)
            return
        if signum in STOPS:  # stop the command, then this process: the shell sees the job stopped
            os.kill(child, signal.SIGSTOP)
            os.kill(os.getpid(), signal.SIGSTOP)
        else:
            os.kill(child, signum)

    try:
        for signum in FORWARDED:
            previous[signum] = signal.signal(signum, forward)
        conn.settimeout(START_TIMEOUT)
        try:
            _send(conn, json.dumps(request).encode(), [0, 1, 2])
            for line in _lines(conn):
                word, _, value = line.partition(" ")
                if word == "COLD":
                    return None
                if word == "PID":
                    child = int(value)
                    conn.settimeout(None)  # a command may run for hours
                elif word == "EXIT":
                    return int(value)
        except OSError:  # refused, reset (a server stepping aside), timed out, a standard stream closed
            if child is None:
                return None
        if child is None:  # the server went away before starting the command: run it here
            return None
        print("cvflow: error: the warm-start server stopped while the command ran; rerun it "
              f"(or set {ENV_SWITCH}=0 to run commands cold; the server's log: {log_path(path)})", file=sys.stderr)
        return 1
    finally:
        conn.close()  # before the handlers go back: a signal now reaches no command, and a command not yet
        # started is killed by its supervisor (its client is gone)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _open_log(sock: Path) -> int:
    """The log's descriptor, appended to (started afresh past :data:`_LOG_LIMIT`), never through a link."""
    path = log_path(sock)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        if os.lstat(path).st_size > _LOG_LIMIT:
            flags |= os.O_TRUNC
    except OSError:
        pass
    return os.open(path, flags, 0o600)


def start_server(path: Path, cwd: str) -> None:
    """Start the server in the background (its own session, no terminal; its output goes to its log). It
    inherits this process's context, the one its socket is named for, and imports in ``cwd`` (matplotlib reads
    a ``matplotlibrc`` there), then leaves it."""
    try:
        log = _open_log(path)
    except OSError:
        return  # no server: every command runs cold
    try:
        subprocess.Popen([sys.executable, "-c", "import sys; from cvflow.stages.warm import serve; "
                          "serve(sys.argv[1], starter=int(sys.argv[2]))", str(path), str(os.getpid())], cwd=cwd,
                         stdin=subprocess.DEVNULL,
                         stdout=log, stderr=log, start_new_session=True, close_fds=True)
    except OSError:
        pass
    finally:
        os.close(log)


def main() -> None:
    """The `cvflow` console script: through the warm server when there is one, else cold."""
    _main(sys.argv[1:], _cold_entry)


def _cold_entry(argv: list[str]) -> int:
    from cvflow.stages.cli import main as cold

    return cold(argv)


def _main(argv: list[str], cold) -> None:
    """Run ``argv`` warm, else ``cold(argv)`` here; Ctrl-C at any moment (connecting, waiting for the server,
    importing) ends in one line, exit 130."""
    try:
        if enabled():
            code = run_warm(argv)
            if code is not None:
                sys.exit(code)
        sys.exit(cold(argv))
    except KeyboardInterrupt:
        from cvflow.errors import INTERRUPTED  # never at the top: the server holds no cvflow module but this one

        print(INTERRUPTED, file=sys.stderr)
        sys.exit(130)
    except _Signalled as signalled:  # die of the signal, as a cold process would have
        signal.signal(signalled.signum, signal.SIG_DFL)
        os.kill(os.getpid(), signalled.signum)
        sys.exit(128 + signalled.signum)


# ----------------------------------------------------------------------------- the server side


def _log(message: str) -> None:
    """A line of the server's log (its standard error is the log)."""
    try:
        sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} [{os.getpid()}] {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


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


def _changed(stamp: dict[str, int]) -> str | None:
    """The first held file that changed since ``stamp``, or None."""
    for name, mtime in stamp.items():
        try:
            if os.stat(name).st_mtime_ns != mtime:
                return name
        except OSError:
            if mtime != -1:
                return name
    return None


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    fds = list(fds)
    try:
        if len(data) < _HEADER.size:
            raise ConnectionError("no request (a probe)")
        size = _HEADER.unpack(data[:_HEADER.size])[0]
        body = data[_HEADER.size:]
        while len(body) < size:
            chunk = conn.recv(size - len(body))
            if not chunk:
                raise ConnectionError("request cut short")
            body += chunk
        if len(fds) != 3:
            raise ConnectionError("the request came without its three standard streams")
        return json.loads(body), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def _run_command(request: dict, fds: list[int], entry) -> None:
    """In the forked child: become the client's process, run the command, exit as a cold process does."""
    import atexit
    import tempfile

    for signum in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_DFL if signum != signal.SIGINT else signal.default_int_handler)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.environ.clear()
    os.environ.update(request["env"])
    os.umask(request["umask"])
    time.tzset()  # the client's TZ (the key holds it too: a library may have read it at import)
    tempfile.tempdir = None  # gettempdir() reads the client's TMPDIR again
    sys.path[:] = request["path"]
    sys.argv = [request["argv0"], *request["argv"]]
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=stream.isatty() or stream is sys.stderr)
        except (AttributeError, ValueError):
            pass
    code: object = 0
    try:
        os.chdir(request["cwd"])
        code = entry(request["argv"])
    except SystemExit as done:
        code = done.code
    except KeyboardInterrupt:  # before the command's own handler was in place
        from cvflow.errors import INTERRUPTED

        print(INTERRUPTED, file=sys.stderr)
        code = 130
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


def _pidfd(pid: int | None) -> int | None:
    """A descriptor that turns readable when process ``pid`` ends (Linux's pidfd: never another process that
    reuses the number), or None: no pid, the process has ended already, or no pidfds here."""
    if pid is None:
        return None
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _exited(pidfd: int) -> bool:
    """True once the process of ``pidfd`` has ended."""
    import select

    return bool(select.select([pidfd], [], [], 0)[0])


def _alive(pid: int) -> bool:
    """True while the server's child ``pid`` runs (SIGCHLD is ignored, so an ended one is reaped at once and its
    pid is no longer ours)."""
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:  # the pid was reused by another user's process: ours has ended
        return False


def _gone(conn: socket.socket) -> bool:
    """True when the client has closed its end (it sends nothing after its request)."""
    import select

    if not select.select([conn], [], [], 0)[0]:
        return False
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _supervise(conn: socket.socket, request: dict, fds: list[int], entry) -> None:
    """In the first child: fork the command, tell the client its pid, wait, report its exit code. A client
    that goes away (killed) takes the command down with it."""
    import select

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # this process waits for its child itself
    if _gone(conn):  # the client gave up while the server was busy (Ctrl-C, its start timeout): nothing to run
        _log(f"a client went away before its command started: cvflow {' '.join(request['argv'])}")
        os._exit(0)
    pid = os.fork()
    if pid == 0:
        conn.close()
        _run_command(request, fds, entry)
    for fd in fds:
        os.close(fd)
    _log(f"command {pid}: cvflow {' '.join(request['argv'])} (in {request['cwd']})")
    try:
        conn.sendall(f"PID {pid}\n".encode())
    except OSError:  # the client is gone (Ctrl-C while the server imported): so is its command
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os._exit(0)
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
            if _gone(conn):  # the client was killed: so is its command, at once (as if it had been the client)
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                _log(f"command {pid}: its client went away; killed")
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
        try:
            probe = _connect(path)
        except Foreign:
            probe = None
            _log(f"another user's socket at {path}; not serving")
            server.close()
            return None
        if probe is not None:  # another server answers there
            probe.close()
            server.close()
            return None
        path.unlink(missing_ok=True)  # a dead server's socket
        server.bind(str(path))
    server.listen(16)
    return server


def preload() -> None:
    """Import :data:`PRELOAD` (what a library that fails to import here is left to the command)."""
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception as error:  # noqa: BLE001  the command imports it again and reports what is wrong
            _log(f"preload of {name} failed ({type(error).__name__}: {error}); commands import it themselves")
    if "mlflow" not in PRELOAD:
        return
    try:  # MLflow's map of installed packages, read once per process when a model is logged (its requirements
        # are checked against it): scanning every installed distribution takes seconds, once here for all
        from mlflow.utils.requirements_utils import _init_packages_to_modules_map

        _init_packages_to_modules_map()
    except Exception:  # noqa: BLE001  a private helper of MLflow's: if it moved, each command scans for itself
        pass


def serve(path: str, idle: float = IDLE, entry=None, starter: int | None = None) -> None:
    """The server: preload, then fork a child per command until ``idle`` seconds pass without one.
    ``entry(argv)`` runs a command in the child (tests give their own; default: the `cvflow` command).
    ``starter``: the pid of the command that started the server and runs cold; it counts as a command running
    (else a first stage that trains past ``idle`` left no server for the stages after it: each ran cold and
    started another, whose imports took the core beside it)."""
    import threading

    entry = entry or _cold_entry
    os.umask(0o077)  # the socket and the log: this user's only (a command gets its client's umask back)
    sock_path = Path(path)
    _log(f"start: python {sys.executable}, socket {sock_path}, nice {os.getpriority(os.PRIO_PROCESS, 0)}, "
         f"cpus {sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}")
    if not _private(sock_path.parent):
        _log(f"{sock_path.parent} is not a private folder (owner, mode 0700, no link): not serving")
        return
    # Listening before importing: a command that comes while the libraries load waits in the backlog for a
    # warm child, instead of running cold and starting yet another server, both importing torch beside this
    # one (the second stage of a fresh pipeline took 8 s that way, 2 s warm)
    server = _bind(sock_path)
    if server is None:
        _log("another server answers there; exiting")
        return
    identity = os.stat(sock_path).st_ino
    uid = os.getuid()
    starting = _pidfd(starter)
    try:
        began = time.monotonic()
        preload()
        _log(f"preloaded {len(sys.modules)} modules in {time.monotonic() - began:.1f} s")
        os.chdir("/")  # imported in the first client's folder; now hold no folder
        if threading.active_count() != 1:
            _log(f"a library started a thread ({threading.active_count()} threads): forking is unsafe; exiting "
                 "(commands run cold)")
            return
        stamp = _stamp()
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the supervisors are reaped by the kernel
        server.settimeout(idle)
        running: set[int] = set()  # the supervisors of commands not yet ended
        while True:
            try:
                conn, _ = server.accept()
            except socket.timeout:
                running = {pid for pid in running if _alive(pid)}
                if running:  # idle means idle since the last command ended: a stage that trains for minutes
                    continue  # keeps the server for the stages after it (they ran cold and started another)
                if starting is not None and not _exited(starting):
                    continue  # the same for the command that started the server, cold
                _log(f"no command for {idle:.0f} s; exiting")
                return
            peer = _peer_uid(conn)
            if peer != uid:
                _log(f"refused a connection from uid {peer}")
                conn.close()
                continue
            conn.settimeout(REQUEST_TIMEOUT)
            try:
                request, fds = _receive(conn)
            except socket.timeout:
                _log(f"a connection sent no request within {REQUEST_TIMEOUT:.0f} s; closed")
                conn.close()
                continue
            except (OSError, ValueError, ConnectionError) as error:
                conn.close()
                if not isinstance(error, ConnectionError) or "probe" not in str(error):
                    _log(f"a bad request ({type(error).__name__}: {error}); closed")
                continue
            changed = _changed(stamp)
            if changed:
                _log(f"step aside: {changed} changed since it was imported; exiting (commands run cold until "
                     "the next server)")
                try:
                    conn.sendall(b"COLD\n")
                except OSError:
                    pass
                conn.close()
                for fd in fds:
                    os.close(fd)
                return
            conn.settimeout(None)
            supervisor = os.fork()
            if supervisor == 0:
                try:  # never back into this loop (nor its finally, which removes the socket) from a child
                    server.close()
                    if starting is not None:
                        os.close(starting)
                    _supervise(conn, request, fds, entry)
                finally:
                    os._exit(1)
            running.add(supervisor)
            conn.close()
            for fd in fds:
                os.close(fd)
    except BaseException as error:  # the log says why the server ended
        _log(f"server error: {type(error).__name__}: {error}")
        raise
    finally:
        try:
            if os.stat(sock_path).st_ino == identity:
                sock_path.unlink()
        except OSError:
            pass
        server.close()


def wait_for_server(timeout: float = 60.0) -> bool:
    """Block until a server answers at this process's socket (for tests and benchmarks)."""
    path = socket_path()
    deadline = time.monotonic() + timeout
    while path is not None and time.monotonic() < deadline:
        try:
            probe = _connect(path)
        except Foreign:
            return False
        if probe is not None:
            probe.close()
            return True
        time.sleep(0.2)
    return False
