"""Every device of a box, or of several: a training stage started as several processes by PyTorch's elastic
launcher (:func:`torch.distributed.launcher.api.elastic_launch`, the API behind ``torchrun``).

``common.devices`` (processes per machine; ``auto``: one per visible CUDA device) times ``common.nodes``
(machines) is the world size. Above 1, the ``cvflow`` command of a training stage (run by ``dvc repro`` or by
hand) does not train itself: it becomes the launcher's agent and starts the same command once per process
(the `cvflow` console script's entry point with the same arguments). Each worker finds the launcher's environment
(``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``...) and trains as under ``torchrun`` (:mod:`cvflow.engine.runtime`: the
process group; rank 0 alone tracks, checkpoints and writes). The agent waits and ends as the workers did: a
worker's user error as its one line (exit 2), Ctrl-C as one line (130), anything else exit 1 after the worker's
traceback.

Rendezvous: one machine uses the c10d rendezvous on 127.0.0.1 with a port the store picks itself (as
``torchrun --standalone``: no port to choose, no race for one). Several use the static rendezvous at
``CVFLOW_RDZV_ENDPOINT`` (node 0's ``host:port``, whose TCP store every node joins) with ``CVFLOW_NODE_RANK``:
the node ranks are then given, not drawn, so rank 0 (the one that writes the stage's outputs and its MLflow run)
is on node 0, the machine whose ``dvc repro`` expects those outputs. (c10d's dynamic rendezvous orders nodes by
host name and process id, so rank 0 could land on a helper machine and node 0's ``dvc repro`` would miss its
outputs.) The node count is a param (``common.nodes``: it changes the world size, so the results); where node 0
is and which node a machine is are environment variables: they change no result, and ``params.yaml`` and
``dvc.lock`` stay the same on every machine.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from cvflow.errors import UserError

#: node 0's ``host:port`` (several machines only)
ENDPOINT_ENV = "CVFLOW_RDZV_ENDPOINT"
#: this machine's node rank, 0 to ``common.nodes - 1`` (several machines only; 0 by default)
NODE_RANK_ENV = "CVFLOW_NODE_RANK"
#: set (to the agent's pid) for the workers of cvflow's own launcher: their agent says their outcome once, so they
#: stay quiet about it; they die with it
LAUNCHED_ENV = "CVFLOW_LAUNCHED"
#: what each worker runs (then the command's arguments): the `cvflow` console script's own entry point, so a
#: worker loads the modules a plain `cvflow` run does and the engine's code fingerprint (every cvflow module
#: loaded) is the same: a checkpoint of a one-process run is the same run's, not "other code"'s
WORKER = ("-c", "import sys; from importlib.metadata import entry_points; "
                "sys.exit(next(iter(entry_points(group='console_scripts', name='cvflow'))).load()())")


@dataclass(frozen=True)
class Plan:
    """How the agent on this machine launches a stage's processes."""

    nproc_per_node: int
    nodes: int = 1
    node_rank: int = 0
    endpoint: str = "127.0.0.1:0"

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nodes


def launcher_env() -> bool:
    """True in a process started by a launcher (``torchrun``, or cvflow's own for ``common.devices``)."""
    return "RANK" in os.environ or "LOCAL_RANK" in os.environ


def processes_per_node(devices: int | str, device: str = "auto") -> int:
    """How many training processes ``common.devices`` asks for on this machine.

    ``auto``: one per visible CUDA device when the stage computes on CUDA (``device`` auto or cuda), else one
    (CPU, MPS: today's single process). A number: that many, gloo on CPU; on CUDA no more than there are devices,
    and never with ``device: cuda:N``, which would put every process on that one device."""
    import torch

    on_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    if devices == "auto":
        return torch.cuda.device_count() if on_cuda else 1
    count = int(devices)
    if count > 1 and device.startswith("cuda:"):
        raise UserError(f"common.devices {count} with common.device {device}: every process would use that one GPU; "
                        "set common.device to cuda or auto (each process takes the GPU of its local rank)")
    if count > 1 and on_cuda and count > torch.cuda.device_count():
        raise UserError(f"common.devices {count}: only {torch.cuda.device_count()} CUDA device(s) here; set "
                        "common.devices to auto or at most that many")
    return count


def plan(common: Any) -> Plan | None:
    """The launch ``common`` (the params' ``common`` section) asks for, or None to train in this process: one
    process in all, or already a launcher's worker (``torchrun`` by hand, or this module's)."""
    devices, nodes, device = common.devices, common.nodes, common.device  # read by every process (params trace)
    if launcher_env():
        if os.environ.get(LAUNCHED_ENV):
            _die_with_agent(int(os.environ[LAUNCHED_ENV]))
        return None
    nproc = processes_per_node(devices, device)
    if nproc * nodes <= 1:
        return None
    if nodes == 1:
        return Plan(nproc)
    endpoint = os.environ.get(ENDPOINT_ENV, "").strip()
    if not re.fullmatch(r"[^\s:]+:\d{1,5}", endpoint):
        raise UserError(f"common.nodes {nodes}: set {ENDPOINT_ENV} to node 0's host:port (e.g. 10.0.0.1:29400), the "
                        f"same on every machine{'' if not endpoint else f'; {endpoint!r} is not host:port'}")
    rank = os.environ.get(NODE_RANK_ENV, "0").strip()
    if not rank.isdigit() or not 0 <= int(rank) < nodes:
        raise UserError(f"{NODE_RANK_ENV}={rank}: must be this machine's node rank, 0 to {nodes - 1} (0 on the "
                        "machine that runs dvc repro and holds the outputs)")
    return Plan(nproc, nodes, int(rank), endpoint)


@contextlib.contextmanager
def _worker_environment(plan: Plan) -> Iterator[None]:
    """The workers inherit this process's environment: mark them as launched by cvflow and, as ``torchrun``
    does, give each one OpenMP thread unless told otherwise (N processes with a thread per core each would
    fight for the cores); restored afterwards (tests run stages in one process)."""
    saved = dict(os.environ)
    os.environ[LAUNCHED_ENV] = str(os.getpid())
    if plan.nproc_per_node > 1:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _die_with_agent(agent: int) -> None:
    """End this worker when its agent (pid ``agent``) dies. The launcher starts workers in sessions of their own,
    so a killed ``dvc repro`` or agent (kill -9, the OOM killer) would leave them training on, unseen, writing the
    outputs and ending the MLflow run while a rerun starts the same stage. Linux's parent-death signal does it
    (no Python library wraps prctl); elsewhere workers outlive a killed agent, as under ``torchrun``."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL))
    if os.getppid() != agent:  # it died before the signal was asked for
        os._exit(128 + int(signal.SIGKILL))


def _config(plan: Plan, run_id: str):
    from torch.distributed.launcher.api import LaunchConfig

    common = dict(min_nodes=plan.nodes, max_nodes=plan.nodes, nproc_per_node=plan.nproc_per_node,
                  run_id=re.sub(r"[^A-Za-z0-9_-]", "_", run_id), max_restarts=0)  # a failure ends the stage
    if plan.nodes == 1:
        # local_addr: the address rank 0's store is reached at, instead of this machine's FQDN (which a
        # sandbox or a laptop may not resolve)
        return LaunchConfig(**common, rdzv_backend="c10d", rdzv_endpoint=plan.endpoint, local_addr="127.0.0.1")
    return LaunchConfig(**common, rdzv_backend="static", rdzv_endpoint=plan.endpoint,
                        rdzv_configs={"rank": plan.node_rank})


def _message(failure: Any) -> str:
    """A failed worker's recorded error (:func:`report_in_worker`), less the exception's type name."""
    message = failure.message
    if isinstance(message, dict):
        message = message.get("message", "")
    return re.sub(r"^\w+: ", "", str(message))


def launch(plan: Plan, argv: Sequence[str], name: str) -> None:
    """Run ``cvflow ARGV`` as ``plan`` says and return when every worker has finished; otherwise raise what the
    command should end with (see the module docstring)."""
    import typer
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous.api import RendezvousError
    from torch.distributed.launcher.api import elastic_launch

    from cvflow.console import info

    where = f" on node {plan.node_rank} of {plan.nodes}" if plan.nodes > 1 else ""
    info(f"{name}: {plan.world_size} training processes ({plan.nproc_per_node} here{where})")
    # The launcher's own log lines about a failed worker repeat what the worker said (or its traceback): the
    # outcome is said once, below.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        with _worker_environment(plan):
            elastic_launch(_config(plan, name), sys.executable)(*WORKER, *argv)
    except SignalException as signalled:
        if signalled.sigval == 2:  # SIGINT: the workers got it too and ended their runs KILLED
            raise KeyboardInterrupt from None
        raise typer.Exit(128 + int(signalled.sigval)) from None
    except ChildFailedError as failed:
        rank, first = failed.get_first_failure()
        codes = {f.exitcode for f in failed.failures.values()}
        if codes <= {130, -2}:
            raise KeyboardInterrupt from None
        user = [f for f in failed.failures.values() if f.exitcode == UserError.exit_code]
        if user:
            raise UserError(_message(min(user, key=lambda f: f.timestamp))) from None
        # not a user's mistake but a bug or a crash: exit 1, as a one-process stage would (its traceback is above)
        typer.echo(f"cvflow: {name}: training process rank {rank} failed (exit code {first.exitcode}); its output "
                   "above says why", err=True)
        raise typer.Exit(1) from None
    except RendezvousError as error:
        raise UserError(f"{name}: the {plan.nodes} nodes did not meet at {plan.endpoint} ({error}); start the same "
                        f"stage on every machine with {ENDPOINT_ENV} and {NODE_RANK_ENV} set") from None


def report_in_worker(error: BaseException | None) -> bool:
    """In a launched worker, record ``error`` (a user error; None: Ctrl-C) for the agent in the launcher's
    error file (the format ``torchrun`` reads too) and return True when the agent will say it, so the worker
    should not: one line for the stage, not one per process."""
    if error is not None and os.environ.get("TORCHELASTIC_ERROR_FILE"):
        from torch.distributed.elastic.multiprocessing.errors import get_error_handler

        get_error_handler().record_exception(error)
    return bool(os.environ.get(LAUNCHED_ENV))
