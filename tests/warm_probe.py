"""A stand-in command for the warm-start tests: what a process sees of its own context, run in a child of a
light warm server (``serve(..., entry=main)``, nothing preloaded) or cold in the client itself.

    python warm_probe.py client ARGS...    the `cvflow` client's logic (cvflow.stages.warm._main) with this
                                           probe as the command
    python warm_probe.py server SOCK IDLE PRELOAD [STARTER]    a warm server whose children run this probe
                                           (its request timeout: $WARM_PROBE_REQUEST_TIMEOUT, else cvflow's)
    python warm_probe.py path              the socket a client in this process's context uses

Commands: ``context`` prints the process context as JSON; ``wait FILE`` prints its pid, then waits for FILE
(SIGUSR1 prints "USR1"); ``mark FILE`` creates FILE; ``write FILE`` tries to write FILE and prints the outcome.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

REQUEST_TIMEOUT_ENV = "WARM_PROBE_REQUEST_TIMEOUT"


def context() -> dict:
    import resource
    import tempfile

    return {
        "pid": os.getpid(), "cwd": os.getcwd(), "umask": _umask(), "tmp": tempfile.gettempdir(),
        "tz": [time.tzname, time.timezone], "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "cpus": sorted(os.sched_getaffinity(0)),
        "rlimits": {n: resource.getrlimit(getattr(resource, n)) for n in sorted(dir(resource)) if n.startswith("RLIMIT_")},
        "env": {k: os.environ.get(k) for k in ("FOO", "TMPDIR", "TZ")},
        "argv": sys.argv[1:], "stdin": sys.stdin.readline() if not sys.stdin.isatty() else None,
        "cgroup": open("/proc/self/cgroup").read(), "mnt": os.readlink("/proc/self/ns/mnt"),
    }


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "context"
    if what == "context":
        print(json.dumps(context()), flush=True)
        return 0
    if what == "wait":
        signal.signal(signal.SIGUSR1, lambda *_: print("USR1", flush=True))
        print(os.getpid(), flush=True)
        deadline = time.monotonic() + 120
        while not os.path.exists(argv[1]) and time.monotonic() < deadline:
            time.sleep(0.02)
        return 0
    if what == "mark":
        open(argv[1], "w").close()
        return 0
    if what == "write":
        try:
            with open(argv[1], "w") as handle:
                handle.write("written")
            print("written", flush=True)
        except OSError as error:
            print(f"refused: {error.strerror}", flush=True)
        return 0
    return 3


if __name__ == "__main__":
    from cvflow.stages import warm

    if sys.argv[1] == "client":  # as the console script: sys.argv is the command's own
        sys.argv[1:] = sys.argv[2:]
        warm._main(sys.argv[1:], main)
    elif sys.argv[1] == "path":  # where a client in this context looks for its server
        print(warm.socket_path())
    else:
        warm.PRELOAD = tuple(filter(None, sys.argv[4].split(",")))
        # a test of silent connections waits for this timeout: it may shorten it (the server reads it per connection)
        warm.REQUEST_TIMEOUT = float(os.environ.get(REQUEST_TIMEOUT_ENV) or warm.REQUEST_TIMEOUT)
        starter = int(sys.argv[5]) if len(sys.argv) > 5 else None  # the pid of a cold command that started it
        warm.serve(sys.argv[2], idle=float(sys.argv[3]), entry=main, starter=starter)
