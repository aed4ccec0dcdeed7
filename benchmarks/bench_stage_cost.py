"""Benchmark: where a stage's time goes, and each stage's time in a whole `dvc repro`.

    python benchmarks/bench_stage_cost.py              # the fixed costs every stage may pay (about a minute)
    python benchmarks/bench_stage_cost.py --repro      # also: `dvc repro` in a fresh copy, timed per stage

A DVC stage is a new `cvflow` process. Before its own work it pays for the interpreter, its imports
(torch, torchvision, MLflow, matplotlib, pandas), reading and validating params.yaml, and, for a training
stage, opening the MLflow store, starting a run, logging the model (MLflow 3's default ``pt2`` format
exports the network with ``torch.export``; ``pickle`` only pickles it), and drawing its pictures. Each is
measured here the way a stage meets it:

* imports: a fresh interpreter per line (``python -c "import X"``), best of ``--repeat``, against
  ``python -c pass`` (the naive reference: the interpreter alone);
* the rest in this process, after the imports: ``cvflow.pipelines.load_params`` of the project's
  params.yaml; an MLflow run in a fresh sqlite store (create, 5 params, 20 metrics, end); logging a
  ResNet-18 (the hot dog model) as pt2 and as pickle; drawing a training-curves figure.

DVC's own share of a stage is measured the same way: after each stage DVC reads ``dvc.lock`` for update
(ruamel's round-trip loader, pure Python), writes it back, and reads it (and ``dvc.yaml``) several times
more with ruamel's safe loader: timed here on the project's own files, with ruamel's C parser
(``ruamel.yaml.clib``, a dependency of cvflow for this reason) against its pure-Python parser (the naive
reference); and cvflow's own read of params.yaml (every stage) and dvc.lock (every training stage) with
PyYAML's C parser against its pure-Python one. A warm no-op command (``cvflow --help`` through the warm
server) is the floor of a stage's cvflow side.

``--repro`` copies the repository's tracked files into a temporary git repository (as a fresh clone has
them) and runs ``dvc repro`` there, with the warm server already up, timing each stage from DVC's
"Running stage" lines to the next.
``--smoke`` adds the smoke switch (``common.smoke: true``) under ``dvc repro``, and the demo and the smoke
switch under ``dvc exp run`` (``-S common.smoke=true``), each in its own fresh copy, and prints the smoke
switch's share of the demo's time for each command. The tables are printed and written as JSON to
benchmarks/results/stage_cost.json (and stage_times.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
CVFLOW = str(Path(sys.executable).with_name("cvflow"))

IMPORTS = {
    "interpreter alone (reference)": "pass",
    "torch": "import torch",
    "torch + torchvision": "import torch, torchvision",
    "mlflow": "import mlflow",
    "mlflow.pytorch (imports torch)": "import mlflow.pytorch",
    "matplotlib.pyplot": "import matplotlib.pyplot",
    "pandas": "import pandas",
    "cvflow.pipelines (every declaration and the params schema)": "import cvflow.pipelines",
    "cvflow.stages.cli (the command layer)": "import cvflow.stages.cli",
}


def _fresh(code: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
        best = min(best, time.perf_counter() - start)
    return best


def _timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def fixed_costs(repeat: int) -> dict[str, float]:
    results = {f"import {name}": _fresh(code, repeat) for name, code in IMPORTS.items()}

    import logging

    import mlflow
    import mlflow.pytorch
    import torch

    from cvflow.models.resnet import build_resnet18
    from cvflow.pipelines import load_params
    from cvflow.plots import training_curves

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    results["load and validate params.yaml"] = _timed(lambda: load_params(REPO / "params.yaml"), repeat)
    store = Path(tempfile.mkdtemp(prefix="cvflow-bench-"))
    try:
        mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
        results["MLflow: open a new sqlite store (migrations)"] = _timed(lambda: mlflow.set_experiment("bench"))

        def run() -> None:
            with mlflow.start_run():
                mlflow.log_params({f"p{i}": i for i in range(5)})
                for step in range(4):
                    mlflow.log_metrics({f"m{i}": 0.1 * i for i in range(5)}, step=step)

        results["MLflow: a run with 5 params and 20 metrics"] = _timed(run, repeat)
        model = build_resnet18(2).eval()
        example = torch.randn(2, 3, 64, 64).numpy()
        for fmt in ("pt2", "pickle"):
            def log(fmt: str = fmt) -> None:
                with mlflow.start_run():
                    mlflow.pytorch.log_model(model, name="model", input_example=example, serialization_format=fmt,
                                             pip_requirements=["torch"])
            results[f"MLflow: log a ResNet-18 model, {fmt}"] = _timed(log, repeat)
        _log_served(model, store)  # the store's tables made first: only the logging is timed
        results["MLflow: log a ResNet-18 as cvflow serves it (pyfunc from code, example checked)"] = _timed(
            lambda: _log_served(model, store), repeat)
    finally:
        shutil.rmtree(store, ignore_errors=True)
    results.update(yaml_costs(repeat))
    history = [{"epoch": e, "train_loss": 1 / e, "test_loss": 1.1 / e, "train_acc": 1 - 1 / (e + 1),
                "test_acc": 1 - 1.2 / (e + 1)} for e in range(1, 6)]
    with tempfile.TemporaryDirectory() as folder:
        results["draw a training-curves PNG"] = _timed(
            lambda: training_curves({"a": history, "b": history}, Path(folder) / "c.png", "t"), repeat)
    return results


def yaml_costs(repeat: int) -> dict[str, float]:
    """What reading and writing the project's YAML files costs DVC and cvflow, per read."""
    import io

    import yaml
    from ruamel.yaml import YAML

    from cvflow.params import load_yaml

    lock, pipeline = (REPO / "dvc.lock").read_text(), (REPO / "dvc.yaml").read_text()
    params = (REPO / "params.yaml").read_text()
    kb = f"{len(lock) // 1000} KB"
    results = {f"DVC: read dvc.lock ({kb}) for update (ruamel round-trip, pure Python)":
               _timed(lambda: YAML(typ="rt").load(lock), repeat)}
    data = YAML(typ="rt").load(lock)

    def dump() -> None:
        writer = YAML()
        writer.default_flow_style = False
        writer.dump(data, io.StringIO())

    results["DVC: write dvc.lock back (ruamel round-trip)"] = _timed(dump, repeat)
    for name, text in (("dvc.lock", lock), ("dvc.yaml", pipeline)):
        results[f"DVC: read {name} with ruamel's safe loader, pure Python (reference)"] = _timed(
            lambda text=text: YAML(typ="safe", pure=True).load(text), repeat)
        results[f"DVC: read {name} with ruamel's safe loader, C parser (ruamel.yaml.clib)"] = _timed(
            lambda text=text: YAML(typ="safe").load(text), repeat)
    for name, text in (("params.yaml", params), ("dvc.lock", lock)):
        results[f"cvflow: read {name} with PyYAML, pure Python (reference)"] = _timed(
            lambda text=text: yaml.load(text, Loader=yaml.SafeLoader), repeat)
        results[f"cvflow: read {name} with PyYAML's C parser (cvflow.params.load_yaml)"] = _timed(
            lambda text=text: load_yaml(text), repeat)
    _warm_up()
    results["a warm no-op command (cvflow --help through the warm server)"] = _timed(
        lambda: subprocess.run([CVFLOW, "--help"], capture_output=True, cwd=REPO), max(repeat, 3))
    return results


def _warm_up() -> None:
    """A warm server with its imports done, so that every timed run starts the same way."""
    from cvflow.stages.warm import wait_for_server

    subprocess.run([CVFLOW, "--help"], capture_output=True, cwd=REPO)  # starts one if none runs
    wait_for_server(120)
    subprocess.run([CVFLOW, "--help"], capture_output=True, cwd=REPO)  # waits for its imports


def _log_served(model, folder: Path) -> None:
    """What a training stage logs now: the model file as cvflow's pyfunc (uint8 images in), with a real-sized
    input example that MLflow checks by loading the model back."""
    import torch

    from cvflow.models.files import save_model
    from cvflow.serving import Servable
    from cvflow.tracking import Tracker

    path = save_model(folder / "model.pt", model, ["a", "b"])
    spec = {"resize": [64, 64], "scale": "unit", "mean": [0.5] * 3, "std": [0.25] * 3}
    import mlflow

    tracker = Tracker(folder, "bench-served", "run")
    mlflow.set_experiment(experiment_id=tracker.experiment_id)  # this process set another one above
    tracker.start()
    tracker.log_model(path, Servable("bench", "classify", spec, [torch.zeros(3, 96, 96, dtype=torch.uint8)],
                                     register=False), ["a", "b"], ["cvflow.models.resnet"])
    tracker.end()


def repro_times(command: tuple[str, ...] = ("repro",), smoke: bool = False) -> dict[str, float]:
    """`dvc COMMAND` in a fresh copy of the tracked files (with ``smoke``: params.yaml's ``common.smoke``
    set true first); seconds per stage and in all."""
    with tempfile.TemporaryDirectory(prefix="cvflow-repro-") as folder:
        root = Path(folder) / "cvflow"
        files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True)
        for name in filter(None, files.stdout.split("\0")):
            if (REPO / name).is_file():
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / name, root / name)
        env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
               "GIT_COMMITTER_EMAIL": "b@b", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        env.pop("MLFLOW_TRACKING_URI", None)
        if smoke:
            params = root / "params.yaml"
            text, found = re.subn(r"(?m)^(  smoke: )false", r"\1true", params.read_text())
            if found != 1:
                raise SystemExit("params.yaml: no `common.smoke: false` line to switch")
            params.write_text(text)
        for step in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):
            subprocess.run(step, cwd=root, check=True, env=env, capture_output=True)
        _warm_up()
        times: dict[str, float] = {}
        start = last_time = time.perf_counter()
        last = None
        process = subprocess.Popen([sys.executable, "-m", "dvc", *command], cwd=root, env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for line in process.stdout:
            found = re.match(r"Running stage '([^']+)'", line)
            if found:
                now = time.perf_counter()
                if last:
                    times[last] = now - last_time
                last, last_time = found.group(1), now
        process.wait()
        now = time.perf_counter()
        if last:
            times[last] = now - last_time
        if process.returncode:
            raise SystemExit(f"dvc {' '.join(command)} failed (exit {process.returncode})")
        times["TOTAL"] = now - start
        return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--repro", action="store_true", help="also time `dvc repro` per stage in a fresh copy")
    parser.add_argument("--smoke", action="store_true", help="with --repro: also the smoke switch, as a share of it")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    machine = {"python": platform.python_version(), "cpus": os.cpu_count()}
    costs = fixed_costs(args.repeat)
    reference = costs["import interpreter alone (reference)"]
    print(f"{'seconds':>8}  {'x interpreter':>13}  what")
    for name, seconds in costs.items():
        print(f"{seconds:8.2f}  {seconds / reference:13.0f}  {name}")
    (RESULTS / "stage_cost.json").write_text(json.dumps({"machine": machine, "seconds": costs}, indent=1) + "\n")
    if args.repro:
        # each smoke run beside the demo run by the same DVC command (the smoke switch's share of the demo)
        pairs = {"dvc repro": (repro_times(), repro_times(smoke=True) if args.smoke else None)}
        if args.smoke:
            pairs["dvc exp run"] = (repro_times(("exp", "run")),
                                    repro_times(("exp", "run", "-S", "common.smoke=true")))
        columns = {f"{command}{', smoke' if index else ''}": times for command, pair in pairs.items()
                   for index, times in enumerate(pair) if times is not None}
        print("  ".join(f"{name:>18}" for name in columns) + "  stage (seconds)")
        for stage in next(iter(columns.values())):
            print("  ".join(f"{times.get(stage, float('nan')):18.1f}" for times in columns.values()) + f"  {stage}")
        for command, (demo, smoke) in pairs.items():
            if smoke is not None:
                print(f"{command}: the smoke switch {smoke['TOTAL']:.1f} s, the demo {demo['TOTAL']:.1f} s: "
                      f"{smoke['TOTAL'] / demo['TOTAL']:.1%}")
        (RESULTS / "stage_times.json").write_text(json.dumps({"machine": machine, "seconds": columns}, indent=1) + "\n")


if __name__ == "__main__":
    main()
