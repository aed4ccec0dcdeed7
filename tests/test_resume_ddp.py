"""Real processes: a killed training resumes from its checkpoint; two-process DDP (gloo) on CPU."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from mlflow.tracking import MlflowClient
from torch import nn
from torch.utils.data import TensorDataset

from cvflow.engine.runtime import seed_everything
from cvflow.engine.trainer import ClassificationTask, Trainer, make_loader
from cvflow.engine.runtime import DistInfo

from conftest import checkpoint_epoch, run_cvflow, variants

pytestmark = pytest.mark.slow



def _fetched(project: Path) -> Path:
    result = run_cvflow("fetch", "hotdog", cwd=project)
    assert result.returncode == 0, result.stderr
    return project


def test_killed_training_resumes_without_losing_or_repeating_epochs(project, mlflow_uri):
    _fetched(project)
    epochs = "20"
    exe = str(Path(sys.executable).parent / "cvflow")
    args = [exe, "train", "hotdog", "--variant", "scratch", "--epochs", epochs]
    checkpoint = project / "data" / "checkpoints" / "hotdog" / "scratch.pt"
    process = subprocess.Popen(args, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while checkpoint_epoch(checkpoint) < 2:
        assert process.poll() is None, "training ended before it could be interrupted"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # no clean-up of any kind
    process.wait()
    killed_at = checkpoint_epoch(checkpoint)
    assert 2 <= killed_at < int(epochs)

    result = run_cvflow("train", "hotdog", "--variant", "scratch", "--epochs", epochs, cwd=project)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming scratch from {checkpoint}: {killed_at}/{epochs} epochs done" in result.stderr
    assert f"scratch epoch {killed_at}/{epochs}:" not in result.stderr  # done epochs are not redone
    assert f"scratch epoch {killed_at + 1}/{epochs}:" in result.stderr
    assert not checkpoint.exists()  # removed once the outputs are written

    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("hotdog")
    runs = client.search_runs([experiment.experiment_id], "attributes.run_name = 'scratch'")
    assert len(runs) == 1  # the killed run was reopened, not duplicated
    steps = [m.step for m in client.get_metric_history(runs[0].info.run_id, "train_loss")]
    assert steps == list(range(1, int(epochs) + 1))  # every epoch exactly once
    assert runs[0].info.status == "FINISHED"


def test_two_process_ddp_training_on_cpu(project, mlflow_uri):
    _fetched(project)
    exe = str(Path(sys.executable).parent / "cvflow")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", exe,
         "train", "hotdog", "--variant", "scratch", "--epochs", "2", "--batch-size", "8"],
        cwd=project, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("scratch epoch 2/2:") == 1  # only rank 0 reports and writes
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("hotdog")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.tags["world_size"] == "2"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "test_acc")] == [1, 2]
    models = project / "data" / "models" / "hotdog"
    assert (models / "scratch.pt").exists()
    # The two-rank test accuracy equals a single-process evaluation of the same weights: a rank that
    # reports only its own shard, or shards that overlap or leave images out, change it. (A ratio cannot
    # see every image counted twice: test_ddp_evaluation_counts_every_example_once counts them.)
    for variant in (v for v in variants("hotdog") if v != "scratch"):  # `evaluate hotdog` tests every variant
        shutil.copy(models / "scratch.pt", models / f"{variant}.pt")
    result = run_cvflow("evaluate", "hotdog", "--device", "cpu", cwd=project)
    assert result.returncode == 0, result.stderr[-3000:]
    single = json.loads((project / "metrics" / "hotdog.json").read_text())
    assert single["test_images"] == 12
    assert run.data.metrics["test_acc"] == pytest.approx(single["scratch"]["test_acc"], abs=1e-6), \
        "the two-rank test accuracy is not the saved model's (see test_ddp_evaluation_after_training_is_the_saved_models)"
    trained = json.loads((project / "metrics" / "hotdog" / "scratch.json").read_text())
    assert trained["test_acc"] == pytest.approx(single["scratch"]["test_acc"], abs=1e-6)


class _CountingTask(ClassificationTask):
    """Classification sums plus the sum and square sum of example ids: each example once, or not."""

    def eval_step(self, model, batch):
        images, labels, ids = batch
        ids = ids.to(torch.float64)
        return {**super().eval_step(model, (images, labels)), "id_sum": ids.sum(), "id_sq_sum": (ids * ids).sum()}


def _eval_data(n: int) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 8, 8, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    return TensorDataset(x, y, torch.arange(n))


def _eval_trainer(tmp: Path, dist_info: DistInfo) -> Trainer:
    seed_everything(0)  # the same initial weights in every process
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return Trainer(model, _CountingTask(), optimizer, 1, torch.device("cpu"), tmp / f"ck{dist_info.world_size}.pt",
                   "eval", dist_info=dist_info)


def _ddp_eval_worker(rank: int, world_size: int, tmp: str, n: int, batch_size: int, train: bool) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/rendezvous", rank=rank, world_size=world_size,
                            timeout=datetime.timedelta(seconds=120))
    try:
        dist_info = DistInfo(rank=rank, world_size=world_size)
        trainer = _eval_trainer(Path(tmp), dist_info)
        if train:  # one DDP epoch first: the weights (and BatchNorm statistics) rank 0 saves are the model
            data = _eval_data(32)
            trainer.fit(make_loader(TensorDataset(*data.tensors[:2]), 8, train=True, dist_info=dist_info))
            if dist_info.is_main:
                torch.save(trainer.model.state_dict(), Path(tmp) / "model.pt")
        sums = trainer.evaluate(make_loader(_eval_data(n), batch_size, train=False, dist_info=dist_info))
        (Path(tmp) / f"rank{rank}.json").write_text(json.dumps(sums))
    finally:
        dist.destroy_process_group()


def _two_rank_evaluation(tmp_path: Path, n: int, train: bool) -> tuple[dict, dict]:
    """(sums reduced over two gloo ranks, the same sums from one process with rank 0's weights)."""
    world_size, batch_size = 2, 4
    torch.multiprocessing.spawn(_ddp_eval_worker, args=(world_size, str(tmp_path), n, batch_size, train),
                                nprocs=world_size, join=True)
    reduced = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(world_size)]
    assert reduced[0] == reduced[1]  # every rank holds the same reduced sums
    single = _eval_trainer(tmp_path, DistInfo())
    if train:
        single.model.load_state_dict(torch.load(tmp_path / "model.pt"))
    reference = single.evaluate(make_loader(_eval_data(n), batch_size, train=False))
    assert reference["count"] == n  # the reference itself: one process, every example
    return reduced[0], reference


@pytest.mark.parametrize("n", [13, 16])  # 13: shards of unequal size (padding would repeat an example)
def test_ddp_evaluation_counts_every_example_once(tmp_path, n):
    sums, single = _two_rank_evaluation(tmp_path, n, train=False)
    assert sums["count"] == n
    assert sums["id_sum"] == n * (n - 1) / 2
    assert sums["id_sq_sum"] == sum(i * i for i in range(n))
    assert sums["correct"] == single["correct"]  # the same weights judge each example as one process does
    assert sums["loss"] == pytest.approx(single["loss"], rel=1e-6)


def test_ddp_evaluation_after_training_is_the_saved_models(tmp_path):
    """After DDP training every rank must evaluate the model rank 0 saves, BatchNorm statistics included."""
    sums, single = _two_rank_evaluation(tmp_path, 13, train=True)
    assert sums["count"] == 13
    assert sums["correct"] == single["correct"]
    assert sums["loss"] == pytest.approx(single["loss"], rel=1e-6), \
        "the ranks evaluated a model other than the saved one (BatchNorm running statistics differ across ranks?)"
