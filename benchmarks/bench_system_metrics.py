"""Benchmark: what MLflow's system metrics (``common.system_metrics``) cost a training run, on this machine.

    python benchmarks/bench_system_metrics.py [--repeats 5] [--epochs 3] [--images 512] [--threads 1]

The same small tracked training (:func:`cvflow.engine.run.train_run`: the book's ResNet-18 on ``--images`` random
32x32 images, batch 32, ``--epochs`` epochs, on the CPU, into one sqlite MLflow store in a scratch folder) runs
``--repeats`` times in each of three settings, interleaved and in a rotating order so that a machine whose load
drifts (other processes) spreads the drift over all three:

* ``off``: ``common.system_metrics=false``;
* ``on``: the default, a sample every ``common.system_metrics_interval`` (10 s) and one as the run ends;
* ``on, 1 s``: ten times as many samples, to show the per-sample cost where the default takes too few to see.

Printed and written to ``benchmarks/results/system_metrics.json``: each setting's median and minimum wall time of
the run and its median CPU time (the process's, every thread's: what the monitor's thread adds, and much less
moved by other processes than the wall time of a shared machine), the ratios to ``off``, and the monitor's own cost measured directly: one sample of the machine (psutil:
CPU, memory, disk, network; NVML when a GPU answers), the thread's work once per interval (a sample, the run's
status read, the aggregate logged to the store), and starting plus stopping a monitor (the thread, the last
samples logged to the run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "system_metrics.json"
SETTINGS = {"off": ["common.system_metrics=false"], "on": [],
            "on, 1 s": ["common.system_metrics_interval=1"]}


def _train(folder: Path, overrides: list[str], epochs: int, images: int) -> tuple[float, float]:
    """Wall and CPU seconds (this process's, every thread's) of one tracked training whose files go to
    ``folder``, as a stage runs it."""
    import torch
    from torch.utils.data import TensorDataset

    from cvflow.engine.paths import RunPaths
    from cvflow.engine.run import RunSpec, train_run
    from cvflow.engine.trainer import ClassificationTask
    from cvflow.models.resnet import build_resnet18
    from cvflow.params import Recipe
    from cvflow.pipelines import load_params

    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(images, 3, 32, 32, generator=g), torch.randint(0, 2, (images,), generator=g))
    recipe = Recipe.model_validate({"epochs": epochs, "batch_size": 32, "optim": {"name": "sgd", "lr": 0.05}})
    inputs = folder / "data-in"
    inputs.mkdir(parents=True)
    (inputs / "a.txt").write_text("1234")
    spec = RunSpec(paths=RunPaths(folder, "bench", "tiny"), build=lambda: build_resnet18(2),
                   task=ClassificationTask(), train_set=data, eval_set=None, recipe=recipe, config={},
                   inputs={"bench-data": inputs}, classes=["a", "b"])
    params = load_params(ROOT / "params.yaml", ["common.device=cpu", *overrides])
    wall, cpu = time.perf_counter(), time.process_time()
    train_run(spec, params)
    return time.perf_counter() - wall, time.process_time() - cpu


def _monitor_costs(folder: Path, samples: int = 200) -> dict:
    """One sample of the machine, and a monitor started and stopped on a run, each timed on its own."""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    from cvflow.tracking import Tracker

    folder.mkdir(parents=True)
    tracker = Tracker(folder, "bench", "monitor")
    run_id = tracker.start()
    monitor = SystemMetricsMonitor(run_id, tracking_uri=tracker.uri)
    monitor.collect_metrics()  # psutil's first CPU reading has nothing to compare with
    start = time.perf_counter()
    for _ in range(samples):
        monitor.collect_metrics()
    sample_ms = (time.perf_counter() - start) / samples * 1000
    # what the monitor's thread does once per interval: a sample, a look at the run's status, the aggregate logged
    from mlflow.tracking import MlflowClient

    start = time.perf_counter()
    for _ in range(samples // 10):
        monitor.collect_metrics()
        MlflowClient(tracker.uri).get_run(run_id)
        monitor.publish_metrics(monitor.aggregate_metrics())
        monitor.mlflow_logger.flush()
    interval_ms = (time.perf_counter() - start) / (samples // 10) * 1000
    tracker.end()
    cycles = []
    for _ in range(5):
        start = time.perf_counter()
        tracker.start(run_id, system_metrics=10.0)
        tracker.end()
        cycles.append(time.perf_counter() - start)
    baseline = []
    for _ in range(5):
        start = time.perf_counter()
        tracker.start(run_id)
        tracker.end()
        baseline.append(time.perf_counter() - start)
    return {"sample_ms": sample_ms, "interval_work_ms": interval_ms,
            "gpu_sampled": any(type(m).__name__ in ("GPUMonitor", "ROCMMonitor") for m in monitor.monitors),
            "start_stop_ms": (statistics.median(cycles) - statistics.median(baseline)) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch's threads: one by default, so that on a shared machine the CPU time counts "
                        "work, not threads spinning while they wait for a core")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("CVFLOW_WARM", "0")
    walls: dict[str, list[float]] = {name: [] for name in SETTINGS}
    cpus: dict[str, list[float]] = {name: [] for name in SETTINGS}
    names = list(SETTINGS)
    with tempfile.TemporaryDirectory(prefix="cvflow-bench-sysmetrics-") as scratch:
        # one store for every run (a new sqlite store's tables take seconds to make, which would drown what is
        # measured), the runs' artifacts in ./mlruns beside it
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(scratch) / 'mlflow.db'}"
        os.chdir(scratch)
        _train(Path(scratch) / "warmup", SETTINGS["off"], 1, 64)  # first-use costs (imports, the store) out
        for repeat in range(args.repeats):
            order = names[repeat % len(names):] + names[:repeat % len(names)]
            for name in order:
                wall, cpu = _train(Path(scratch) / f"{repeat}-{names.index(name)}", SETTINGS[name], args.epochs,
                                   args.images)
                walls[name].append(wall)
                cpus[name].append(cpu)
                print(f"repeat {repeat + 1}/{args.repeats} {name:8s} {wall:6.2f} s wall {cpu:6.2f} s CPU", flush=True)
        costs = _monitor_costs(Path(scratch) / "monitor")
        os.chdir(ROOT)
    wall_off, cpu_off = statistics.median(walls["off"]), statistics.median(cpus["off"])
    result = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "setup": {"repeats": args.repeats, "epochs": args.epochs, "images": args.images, "threads": args.threads},
        "settings": {name: {"median_wall_s": statistics.median(walls[name]), "min_wall_s": min(walls[name]),
                            "median_cpu_s": statistics.median(cpus[name]), "wall_s": walls[name], "cpu_s": cpus[name],
                            "wall_over_off": statistics.median(walls[name]) / wall_off,
                            "cpu_over_off": statistics.median(cpus[name]) / cpu_off} for name in SETTINGS},
        "monitor": costs,
    }
    print()
    print(f"{'setting':10s} {'median wall s':>14s} {'min wall s':>11s} {'wall / off':>11s} {'median CPU s':>13s} "
          f"{'CPU / off':>10s}")
    for name, row in result["settings"].items():
        print(f"{name:10s} {row['median_wall_s']:14.2f} {row['min_wall_s']:11.2f} {row['wall_over_off']:11.3f} "
              f"{row['median_cpu_s']:13.2f} {row['cpu_over_off']:10.3f}")
    print(f"one sample of the machine: {costs['sample_ms']:.2f} ms (GPU sampled: {costs['gpu_sampled']}); the "
          f"thread's work per interval (sample, run status, log): {costs['interval_work_ms']:.1f} ms, "
          f"{costs['interval_work_ms'] / 100:.3f}% of a 10 s interval; a monitor started and stopped on a run: "
          f"{costs['start_stop_ms']:.1f} ms")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
