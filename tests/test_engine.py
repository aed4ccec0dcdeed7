"""The training engine: resume equals an uninterrupted run, NaN guard, checkpoints, loaders."""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from cvflow.engine.checkpoint import fingerprint, load_checkpoint
from cvflow.engine.optim import build_optimizer, build_scheduler
from cvflow.engine.runtime import Precision, resolve_device, seed_everything
from cvflow.engine.trainer import ClassificationTask, Trainer, make_loader
from cvflow.engine.runtime import DistInfo
from cvflow.errors import TrainingError, UserError
from cvflow.params import Optim


def _data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 8, 8, generator=g)
    y = torch.randint(0, 2, (n,), generator=g)
    x[:, 0] += (2 * y - 1).view(-1, 1, 1).float()  # class shows in channel 0: learnable
    return TensorDataset(x, y)


def _model():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Dropout(0.2), nn.Linear(8, 2))


class Interrupt(Exception):
    pass


class StopAfter:
    """A callback that 'kills' the run after an epoch's checkpoint is written."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, metrics):
        if metrics["epoch"] == self.epoch:
            raise Interrupt


class Recorder:
    def __init__(self):
        self.epochs = []

    def on_epoch_end(self, metrics):
        self.epochs.append(int(metrics["epoch"]))


def _trainer(tmp_path, name="ck.pt", epochs=4, lr=0.1, fp="cfg", schedule="step"):
    seed_everything(0)
    model = _model()
    cfg = Optim(lr=lr, momentum=0.9, scheduler=schedule, gamma=0.5)
    opt = build_optimizer([{"params": model.parameters()}], cfg)
    sched = build_scheduler(opt, cfg, epochs, steps_per_epoch=6)  # 96 examples / 16
    return Trainer(model, ClassificationTask(), opt, epochs, torch.device("cpu"), tmp_path / name, fp,
                   scheduler=sched)


def _loaders(seed=0):
    ds = _data()
    return make_loader(ds, 16, train=True, seed=seed), make_loader(_data(32, 1), 16, train=False)


@pytest.mark.parametrize("schedule", ["step", "onecycle"])
def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path, schedule):
    full = _trainer(tmp_path, "full.pt", schedule=schedule)
    history_full = full.fit(*_loaders())
    weights_full = {k: v.clone() for k, v in full.model.state_dict().items()}

    first = _trainer(tmp_path, "cut.pt", schedule=schedule)
    with pytest.raises(Interrupt):
        first.fit(*_loaders(), callbacks=[StopAfter(2)])
    assert load_checkpoint(tmp_path / "cut.pt")["epoch"] == 2

    second = _trainer(tmp_path, "cut.pt", schedule=schedule)  # a fresh process would build the same objects
    second.resume()
    assert second.start_epoch == 2
    recorder = Recorder()
    history = second.fit(*_loaders(), callbacks=[recorder])
    assert recorder.epochs == [3, 4]  # continues at the right epoch, nothing repeated
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    for key, value in weights_full.items():
        torch.testing.assert_close(second.model.state_dict()[key], value)
    assert [round(r["train_loss"], 6) for r in history] == [round(r["train_loss"], 6) for r in history_full]
    assert second.optimizer.param_groups[0]["lr"] == pytest.approx(full.optimizer.param_groups[0]["lr"])


def test_checkpoint_of_other_settings_is_not_resumed(tmp_path):
    first = _trainer(tmp_path, fp="lr=0.1")
    with pytest.raises(Interrupt):
        first.fit(*_loaders(), callbacks=[StopAfter(1)])
    other = _trainer(tmp_path, fp="lr=0.2")
    assert other.resume() is None and other.start_epoch == 0
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1}) != fingerprint({"a": 2})


def test_training_learns_and_reports_metrics(tmp_path):
    trainer = _trainer(tmp_path, epochs=6, lr=0.3)
    history = trainer.fit(*_loaders())
    assert history[-1]["train_acc"] > 0.75 and history[-1]["test_acc"] > 0.7
    # the last epoch's test metrics are the trained model's, recomputed here one example at a time
    model = trainer.model.eval()
    test = _data(32, 1)
    with torch.no_grad():
        logits = [model(x[None])[0] for x, _ in test]
    correct = sum(int(out.argmax()) == int(y) for out, (_, y) in zip(logits, test))
    loss = sum(-torch.log_softmax(out, dim=0)[int(y)].item() for out, (_, y) in zip(logits, test)) / len(test)
    assert history[-1]["test_acc"] == pytest.approx(correct / len(test), abs=1e-12)
    assert history[-1]["test_loss"] == pytest.approx(loss, rel=1e-5)
    assert set(history[0]) >= {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "examples_per_sec",
                               "lr", "epoch_seconds"}
    assert history[0]["examples_per_sec"] > 0


def test_nan_loss_stops_with_epoch_and_step(tmp_path):
    trainer = _trainer(tmp_path, epochs=3)
    ds = _data()
    ds.tensors[0][40] = float("nan")  # sample 40 sits in some batch of epoch 1
    loader = make_loader(ds, 16, train=True)
    with pytest.raises(TrainingError, match=r"non-finite loss \(NaN or inf\) at epoch 1, step \d+") as info:
        trainer.fit(loader)
    step = int(str(info.value).split("step ")[1].split(":")[0])
    sampler = loader.sampler
    sampler.set_epoch(0)
    order = list(iter(sampler))
    assert order.index(40) // 16 + 1 == step  # the step that really held the bad sample
    assert not (tmp_path / "ck.pt").exists()  # no checkpoint written for the broken epoch


def test_nan_check_every_n_steps_still_names_the_first_bad_step(tmp_path):
    trainer = _trainer(tmp_path, epochs=1)
    trainer.check_every = 50  # as on a GPU: fewer host syncs
    ds = _data()
    ds.tensors[0][:] = float("inf")
    with pytest.raises(TrainingError, match="at epoch 1, step 1:"):
        trainer.fit(make_loader(ds, 16, train=True))


def test_loader_order_depends_only_on_seed_and_epoch():
    loader = make_loader(_data(), 16, train=True, seed=5)
    loader.sampler.set_epoch(3)
    a = [y.tolist() for _, y in loader]
    again = make_loader(_data(), 16, train=True, seed=5)
    again.sampler.set_epoch(3)
    assert a == [y.tolist() for _, y in again]
    again.sampler.set_epoch(4)
    assert a != [y.tolist() for _, y in again]


def test_eval_shards_cover_every_example_once():
    ds = _data(50)
    seen = []
    for rank in range(3):
        loader = make_loader(ds, 8, train=False, dist_info=DistInfo(rank=rank, world_size=3))
        seen += [int(i) for i in loader.dataset.indices]
        assert loader.batch_size == 3  # the global batch is split across processes
    assert sorted(seen) == list(range(50))


def test_devices_and_precision():
    assert resolve_device("cpu").type == "cpu"
    assert Precision.resolve(torch.device("cpu")).name == "fp32"
    assert Precision.resolve(torch.device("cuda"), "auto").name == "bf16"
    assert Precision.resolve(torch.device("cpu"), "bf16").name == "bf16"
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            resolve_device("cuda")


def _all_finite(rows):
    return all(math.isfinite(v) for row in rows for v in row.values())


def test_bf16_autocast_runs_on_cpu(tmp_path):
    trainer = _trainer(tmp_path, epochs=2)
    trainer.precision = Precision.resolve(torch.device("cpu"), "bf16")
    conv_dtypes = set()
    trainer.model[0].register_forward_hook(lambda module, args, out: conv_dtypes.add(out.dtype))
    history = trainer.fit(*_loaders())
    assert conv_dtypes == {torch.bfloat16}  # autocast really ran, in training and evaluation alike
    # the guard only covers the training loss: the test loss, computed under bf16 too, must be finite as well
    assert _all_finite(history)
    assert history[-1]["train_loss"] < history[0]["train_loss"]  # bf16 arithmetic still learns


class _Poisonable(Dataset):
    """The engine test data; once armed, example ``index`` turns to NaN (a bad batch in a later epoch)."""

    def __init__(self, base, index):
        self.base, self.index, self.armed = base, index, False

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        x, y = self.base[i]
        return (torch.full_like(x, float("nan")) if self.armed and i == self.index else x), y


class _ArmAfter:
    """After ``epoch`` (its checkpoint written), poison the data and remember the weights of that epoch."""

    def __init__(self, dataset, model, epoch):
        self.dataset, self.model, self.epoch, self.weights = dataset, model, epoch, None

    def on_epoch_end(self, metrics):
        if metrics["epoch"] == self.epoch:
            self.weights = {k: v.clone() for k, v in self.model.state_dict().items()}
            self.dataset.armed = True


@pytest.mark.parametrize("check_every", [1, 50])  # 1: checked every step (CPU); 50: at the epoch's end (GPU)
def test_nan_in_a_later_epoch_keeps_the_last_good_checkpoint(tmp_path, check_every):
    trainer = _trainer(tmp_path, epochs=3)
    trainer.check_every = check_every
    data = _Poisonable(_data(), 40)
    loader = make_loader(data, 16, train=True)
    arm = _ArmAfter(data, trainer.model, epoch=1)
    loader.sampler.set_epoch(1)
    step = list(iter(loader.sampler)).index(40) // 16 + 1  # the step of epoch 2 that holds the bad example
    with pytest.raises(TrainingError, match=rf"at epoch 2, step {step}: .*\({re.escape(str(tmp_path / 'ck.pt'))}\) is kept"):
        trainer.fit(loader, callbacks=[arm])

    assert [row["epoch"] for row in trainer.history] == [1] and _all_finite(trainer.history)
    kept = load_checkpoint(tmp_path / "ck.pt")
    assert kept["epoch"] == 1  # the broken epoch wrote nothing
    assert [row["epoch"] for row in kept["history"]] == [1] and _all_finite(kept["history"])
    for key, value in arm.weights.items():
        torch.testing.assert_close(kept["model"][key], value, rtol=0, atol=0)
    assert all(torch.isfinite(v).all() for v in kept["model"].values() if v.is_floating_point())

    again = _trainer(tmp_path, epochs=3)  # a rerun resumes from the good epoch
    again.resume()
    assert again.start_epoch == 1


def test_atomic_writes_get_normal_permissions(tmp_path):
    import os

    from cvflow.fileio import write_json

    write_json(tmp_path / "m.json", {"a": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_ctrl_c_lost_in_a_garbage_collection_callback_still_stops_the_next_step():
    """CPython drops an exception raised inside a weakref callback ("Exception ignored in"): a Ctrl-C
    landing there (SQLAlchemy's, under MLflow) used to vanish and training went on to the end."""
    import subprocess
    import sys

    code = """
import os, signal, weakref
from cvflow.errors import catch_interrupts, raise_if_interrupted
catch_interrupts()
class Thing: pass
thing = Thing()
ref = weakref.ref(thing, lambda r: os.kill(os.getpid(), signal.SIGINT))
del thing                       # the callback runs; the Ctrl-C raised inside it is lost
print("went on", flush=True)
try:
    raise_if_interrupted()      # what every training step calls
except KeyboardInterrupt:
    print("stopped", flush=True)
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.stdout.split() == ["went", "on", "stopped"], run.stdout + run.stderr
    assert "Traceback" not in run.stderr and "KeyboardInterrupt" not in run.stderr, run.stderr
