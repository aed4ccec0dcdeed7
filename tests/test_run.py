"""One tracked training run (cvflow.engine.run): outputs, MLflow states, fingerprints, the book's loss reduction."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn
from torch.utils.data import Dataset

from cvflow.engine.trainer import ClassificationTask
from cvflow.engine.paths import RunPaths
from cvflow.engine.run import RunSpec, folder_digest, train_run
from cvflow.errors import TrainingError
from cvflow.fileio import sha1sum
from cvflow.models.files import load_model
from cvflow.params import Recipe
from cvflow.preprocess import inference_transform
from cvflow.pipelines import load_params
from conftest import REPO


class _Images(Dataset):
    """Random 3x8x8 images with two classes; ``trap`` raises once ``armed`` and index 0 is read."""

    def __init__(self, n: int = 32, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 3, 8, 8, generator=g)
        self.y = torch.randint(0, 2, (n,), generator=g)
        self.trap: BaseException | None = None

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        if self.trap is not None and i == 0:
            raise self.trap
        return self.x[i], self.y[i]


class _NaNAfter(nn.Module):
    """A tiny classifier whose output turns NaN from its ``after``-th forward pass in training."""

    def __init__(self, after: int):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(192, 2))
        self.after, self.calls = after, 0

    def forward(self, x):
        out = self.net(x)
        if self.training:
            self.calls += 1
            if self.calls >= self.after:
                out = out * float("nan")
        return out


def _params():
    return load_params(REPO / "params.yaml", ["common.device=cpu"])


def _recipe(epochs=2, reduction="mean"):
    return Recipe.model_validate({"epochs": epochs, "batch_size": 8, "loss_reduction": reduction,
                                  "optim": {"name": "sgd", "lr": 0.05}})


#: the served model's test transform in these runs: floats in [0, 1], normalised
SPEC = {"resize": [8, 8], "scale": "unit", "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}


def _spec(root, data_dir, train_set, build, epochs=2, name="tiny", serve=None):
    return RunSpec(paths=RunPaths(root, "unit", name), build=build, task=ClassificationTask(), train_set=train_set,
                   eval_set=_Images(16, seed=1), recipe=_recipe(epochs), config={"k": 1},
                   inputs={"unit-data": data_dir}, classes=["a", "b"], serve=serve)


@pytest.fixture
def data_dir(tmp_path):
    folder = tmp_path / "data-in"
    folder.mkdir()
    (folder / "a.txt").write_text("1234")
    return folder


def _runs(uri):
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("unit")
    return client, client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


@pytest.mark.slow
def test_outputs_hold_results_only_and_mlflow_has_the_rest(tmp_path, mlflow_uri, data_dir):
    from cvflow.models.resnet import build_resnet18

    from cvflow.serving import Servable

    example = torch.randint(0, 256, (3, 12, 10), dtype=torch.uint8)
    serve = Servable("unit-tiny", "classify", SPEC, [example])
    result = train_run(_spec(tmp_path, data_dir, _Images(), lambda: build_resnet18(2), serve=serve), _params())
    paths = RunPaths(tmp_path, "unit", "tiny")
    final = json.loads(paths.metrics.read_text())
    header = paths.history.read_text().splitlines()[0].split(",")
    # wall-clock figures differ between two identical runs: never in the files DVC hashes
    for key in ("epoch_seconds", "examples_per_sec"):
        assert key not in final and key not in header
        assert key in result.history[-1]
    assert final["epoch"] == 2 and paths.curves.stat().st_size > 1000
    model, data = load_model(paths.model)  # the architecture is recorded in the file and rebuilt
    assert data["arch"] == "resnet18" and data["classes"] == ["a", "b"] and data["meta"] == {"epochs": 2}
    assert "mlflow_run_id" not in json.dumps(data["meta"])
    client, runs = _runs(mlflow_uri)
    (run,) = runs
    assert run.info.status == "FINISHED" and run.info.run_id == result.run_id
    assert {"device", "precision", "world_size", "model_sha1"} <= set(run.data.tags)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "epoch_seconds")] == [1, 2]
    (dataset,) = run.inputs.dataset_inputs
    assert dataset.dataset.name == "unit-data" and dataset.dataset.digest == folder_digest(data_dir)
    logged = client.search_logged_models([run.info.experiment_id], filter_string=f"source_run_id='{run.info.run_id}'")
    assert [m.name for m in logged] == ["unit-tiny"]
    (version,) = client.search_model_versions("name = 'unit-tiny'")  # registered under its name
    assert version.tags["model_sha1"] == run.data.tags["model_sha1"] == sha1sum(paths.model)
    import mlflow.pyfunc

    # the served model: uint8 H x W x 3 images of any size in, its own transform, class names and probabilities out
    loaded = mlflow.pyfunc.load_model("models:/unit-tiny/1")
    assert loaded.metadata.get_input_schema().inputs[0].type == np.dtype(np.uint8)
    images = torch.randint(0, 256, (4, 20, 14, 3), dtype=torch.uint8)
    served = loaded.predict(images.numpy())
    with torch.inference_mode():
        probs = torch.softmax(model.eval()(inference_transform(SPEC)(images.permute(0, 3, 1, 2))).double(), dim=1)
    assert list(served.columns) == ["label", "a", "b"]
    assert list(served["label"]) == [["a", "b"][i] for i in probs.argmax(dim=1).tolist()]
    np.testing.assert_allclose(served[["a", "b"]].to_numpy(), probs.numpy(), atol=1e-6)


@pytest.mark.slow
def test_a_model_file_is_registered_once_per_sha1(tmp_path, mlflow_uri, data_dir):
    """19.3: the same model file logged again makes no new registered version; a changed file makes one."""
    from cvflow.models.resnet import build_resnet18
    from cvflow.models.files import save_model
    from cvflow.serving import Servable
    from cvflow.tracking import Tracker

    serve = Servable("unit-once", "classify", SPEC, [torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8)])
    train_run(_spec(tmp_path, data_dir, _Images(), lambda: build_resnet18(2), epochs=1, serve=serve), _params())
    paths = RunPaths(tmp_path, "unit", "tiny")
    tracker = Tracker(tmp_path, "unit", "again")
    tracker.start()
    modules = ["cvflow.models.resnet"]
    assert tracker.log_model(paths.model, serve, ["a", "b"], modules) == "1"  # same SHA-1: version 1 again
    torch.manual_seed(5)
    save_model(paths.model, build_resnet18(2), ["a", "b"])  # other weights
    assert tracker.log_model(paths.model, serve, ["a", "b"], modules) == "2"
    tracker.end()
    client = MlflowClient(mlflow_uri)
    assert sorted(int(v.version) for v in client.search_model_versions("name = 'unit-once'")) == [1, 2]


def test_nan_ends_the_run_failed_and_keeps_nothing_running(tmp_path, mlflow_uri, data_dir):
    with pytest.raises(TrainingError, match=r"epoch 1, step 2"):
        train_run(_spec(tmp_path, data_dir, _Images(), lambda: _NaNAfter(after=2)), _params())
    _, runs = _runs(mlflow_uri)
    assert [r.info.status for r in runs] == ["FAILED"]
    assert not RunPaths(tmp_path, "unit", "tiny").model.exists()


def _stop_after(monkeypatch, interrupt):
    """Make every Trainer.fit call ``interrupt(trainer, fit)`` (which runs the real fit as it likes)."""
    import cvflow.engine.run as run_module

    original = run_module.Trainer.fit
    monkeypatch.setattr(run_module.Trainer, "fit", lambda self, *args, **kwargs: interrupt(self, original, *args, **kwargs))


@pytest.mark.slow
def test_interrupt_is_killed_and_resume_finishes_the_same_run(tmp_path, mlflow_uri, data_dir, monkeypatch):
    from cvflow.models.resnet import build_resnet18

    train_set = _Images()

    class StopInEpoch2:  # Ctrl-C during epoch 2, after epoch 1's checkpoint
        def on_epoch_end(self, metrics):
            train_set.trap = KeyboardInterrupt()

    spec = _spec(tmp_path, data_dir, train_set, lambda: build_resnet18(2))
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        _stop_after(patch, lambda self, fit, loader, evaluation, callbacks=(), extra=None:
                    fit(self, loader, evaluation, [*callbacks, StopInEpoch2()], extra))
        train_run(spec, _params())
    client, runs = _runs(mlflow_uri)
    assert [r.info.status for r in runs] == ["KILLED"]
    assert RunPaths(tmp_path, "unit", "tiny").checkpoint.exists()
    train_set.trap = None
    result = train_run(spec, _params())
    client, runs = _runs(mlflow_uri)
    assert [r.info.status for r in runs] == ["FINISHED"] and runs[0].info.run_id == result.run_id
    assert [m.step for m in client.get_metric_history(result.run_id, "train_loss")] == [1, 2]


@pytest.mark.slow
def test_a_checkpoint_of_other_data_is_not_resumed(tmp_path, mlflow_uri, data_dir, capsys, monkeypatch):
    from cvflow.models.resnet import build_resnet18

    spec2 = _spec(tmp_path, data_dir, _Images(), lambda: build_resnet18(2), epochs=2)
    checkpoint = RunPaths(tmp_path, "unit", "tiny").checkpoint

    def one_epoch_then_stop(self, fit, *args, **kwargs):
        self.epochs = 1
        fit(self, *args, **kwargs)
        raise KeyboardInterrupt  # epoch 1's checkpoint is on disk

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        _stop_after(patch, one_epoch_then_stop)
        train_run(spec2, _params())
    assert checkpoint.exists()
    (data_dir / "a.txt").write_text("12345")  # the data changed: its identity (file sizes) too
    capsys.readouterr()
    result = train_run(spec2, _params())
    err = capsys.readouterr().err
    assert f"{checkpoint}: discarded, it was made by other data" in " ".join(err.split())
    client, runs = _runs(mlflow_uri)
    # the stale checkpoint's MLflow run was not reopened: a new run trained both epochs
    assert runs[-1].info.run_id == result.run_id and runs[-1].info.status == "FINISHED"
    assert result.run_id not in {r.info.run_id for r in runs[:-1]}
    assert [m.step for m in client.get_metric_history(result.run_id, "train_loss")] == [1, 2]


# ----------------------------------------------------------------------------- the book's reduction


def _book_train_batch_ch13(net, X, y, loss, trainer):
    """d2l 1.0.3's ``train_batch_ch13`` (d2l/torch.py), minus the device moves: the reference."""
    net.train()
    trainer.zero_grad()
    pred = net(X)
    l = loss(pred, y)  # noqa: E741 - the book's name
    l.sum().backward()
    trainer.step()
    return l.sum(), (pred.argmax(dim=1) == y).sum()


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_one_sgd_step_matches_the_books_train_batch(tmp_path, reduction):
    from cvflow.engine.optim import build_optimizer
    from cvflow.engine.trainer import Trainer
    from cvflow.params import Optim

    torch.manual_seed(0)
    reference = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    ours = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    ours.load_state_dict(reference.state_dict())
    before = reference[1].weight.detach().clone()
    X, y = torch.randn(5, 3, 2, 2), torch.tensor([0, 1, 2, 1, 0])
    lr = 0.1
    book_trainer = torch.optim.SGD(reference.parameters(), lr=lr if reduction == "sum" else lr / len(y))
    _book_train_batch_ch13(reference, X, y, nn.CrossEntropyLoss(reduction="none"), book_trainer)
    optimizer = build_optimizer([{"params": ours.parameters()}], Optim(name="sgd", lr=lr))
    trainer = Trainer(ours, ClassificationTask(reduction=reduction), optimizer, 1, torch.device("cpu"),
                      tmp_path / "c.pt", "f")
    trainer.train_epoch([(X, y)], 0)
    # sum: the book's step exactly; mean: the same step at lr / batch size (what sum means for the lr)
    for a, b in zip(reference.parameters(), ours.parameters()):
        assert torch.allclose(a, b, atol=1e-7), reduction
    assert not torch.allclose(before, ours[1].weight)  # a real step was taken


def test_model_files_are_byte_identical_wherever_they_are_written(tmp_path):
    """A model file is a DVC output: the same weights give the same bytes (torch.save would name the
    zip's inner folder after the temporary file otherwise)."""
    from cvflow.models.files import save_model
    from cvflow.models.resnet import build_resnet18

    torch.manual_seed(0)
    model = build_resnet18(2)
    first = save_model(tmp_path / "a" / "m.pt", model, ["x", "y"], {"epochs": 1})
    second = save_model(tmp_path / "b" / "other.pt", model, ["x", "y"], {"epochs": 1})
    assert first.read_bytes() == second.read_bytes()
