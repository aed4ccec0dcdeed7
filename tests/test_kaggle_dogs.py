"""13.14 Kaggle dog breeds: the book's head on a frozen backbone, the feature cache, the probability
submission and its checks, resuming the head's training, Kaggle's clipped log loss."""

from __future__ import annotations

import csv
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from torch import nn

from cvflow.data.submissions import check_dog_submission, multiclass_log_loss, write_dog_submission
from cvflow.errors import DataError
from cvflow.models.features import FrozenBackbone, feature_head
from conftest import REPO

TINY = {"demo": {"train": 36, "test": 6, "seed": 14, "breeds": 3}, "views": 2, "tta_flip": True,
        "transforms": {"train_crop": 32, "test_resize": 36, "test_crop": 32},
        "recipe": {"epochs": 3, "batch_size": 8}}


def _write_params(root: Path, **changes) -> None:
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    section = data["kaggle_dogs"]["demo"]
    for key, value in {**TINY, **changes}.items():
        if isinstance(value, dict):
            section[key].update(value)
        else:
            section[key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def _params(root: Path):
    from cvflow.pipelines import load_params

    return load_params(root / "params.yaml")


# session: the fast tier runs before the slow tests (conftest.py), so this module's two halves run apart
@pytest.fixture(scope="session")
def dogs(tmp_path_factory) -> Path:
    """A tiny project: the generated twin (3 breeds, 36 + 6 images), prepared, a random ResNet-18 as the
    hot dog source model (the demo's backbone), and the feature cache."""
    from cvflow.models.files import save_model
    from cvflow.models.resnet import build_resnet18
    from cvflow.pipelines import kaggle_dogs as pipeline
    from cvflow.pipelines.kaggle_dogs.common import SOURCE_MODEL

    root = tmp_path_factory.mktemp("dogs")
    _write_params(root)
    params = _params(root)
    pipeline.fetch(params, root)
    pipeline.prepare(params, root)
    torch.manual_seed(0)
    save_model(root / SOURCE_MODEL, build_resnet18(10), [str(i) for i in range(10)], {"origin": "test"})
    pipeline.features(params, root)
    return root


def _cache(root: Path) -> dict:
    from cvflow.pipelines.kaggle_dogs.common import features_file

    return torch.load(features_file(root), map_location="cpu", weights_only=True)


# ----------------------------------------------------------------------------- the model


def test_the_books_head_on_a_frozen_backbone(tmp_path):
    from cvflow.models.files import load_model, save_model
    from cvflow.models.resnet import build_resnet18

    head = feature_head(1000, 120)  # output_new: Linear(1000, 256), ReLU, Linear(256, 120)
    assert [tuple(p.shape) for p in head.parameters()] == [(256, 1000), (256,), (120, 256), (120,)]
    assert isinstance(head[1], nn.ReLU) and head(torch.randn(4, 1000)).shape == (4, 120)

    torch.manual_seed(0)
    backbone = FrozenBackbone(build_resnet18(7), "output")
    assert backbone.dim == 7 and FrozenBackbone(build_resnet18(7), "penultimate").dim == 512
    backbone.train()  # the engine calls train() every epoch: the backbone stays in eval mode
    assert not any(m.training for m in backbone.modules())
    images = torch.randn(3, 3, 32, 32)
    running = backbone.net.bn1.running_mean.clone()
    model = nn.Sequential(backbone, feature_head(backbone.dim, 5, hidden=8))
    model(images).sum().backward()
    assert torch.equal(backbone.net.bn1.running_mean, running)  # no BatchNorm statistics drift
    assert all(p.grad is None and not p.requires_grad for p in backbone.parameters())
    assert all(p.grad is not None for p in model[1].parameters())
    # the model file holds the head alone, rebuilt from its architecture
    saved = save_model(tmp_path / "head.pt", model[1], list("abcde"))
    loaded, data = load_model(saved)
    assert data["arch"] == "feature_head"
    features = backbone(images)
    assert torch.equal(loaded(features), model[1](features))


# ----------------------------------------------------------------------------- the feature cache


def test_cached_features_equal_the_backbone_on_the_fly(dogs):
    from cvflow.data.readers.images import DecodedImageFolder, ImageIdFolder
    from cvflow.engine.features import BackboneTask
    from cvflow.pipelines.kaggle_dogs.common import competition, frozen_backbone, transforms

    params = _params(dogs)
    cache = _cache(dogs)
    backbone, identity = frozen_backbone(params, dogs)
    assert cache["config"]["backbone"] == identity and cache["dim"] == 512  # penultimate layer of a ResNet-18
    task = BackboneTask(backbone=backbone)  # what training with views: 0 runs in every step
    _, test_tf, flip_tf = transforms(params.task("kaggle_dogs"))
    valid = DecodedImageFolder(competition().prepared_dir(dogs) / "valid", cache["classes"], test_tf)
    assert cache["valid"]["names"] == [p.name for p in valid.paths]
    assert torch.equal(cache["valid"]["labels"], valid.targets)
    on_the_fly = task._features(torch.stack([valid[i][0] for i in range(len(valid))]))
    torch.testing.assert_close(cache["valid"]["test_view"], on_the_fly, rtol=1e-5, atol=1e-5)
    test = ImageIdFolder(competition().prepared_dir(dogs) / "test" / "unknown", flip_tf)
    assert cache["test"]["ids"] == [str(i) for i in test.ids]
    mirrored = task._features(torch.stack([test[i][0] for i in range(len(test))]))
    torch.testing.assert_close(cache["test"]["flip_view"], mirrored, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(cache["test"]["flip_view"], cache["test"]["test_view"])
    # the augmented views: 2 per labelled image, unlike each other and unlike the test view
    views = cache["labelled"]["views"]
    assert views.shape == (len(cache["labelled"]["names"]), 2, 512)
    assert not torch.allclose(views[:, 0], views[:, 1])
    row_of = {name: i for i, name in enumerate(cache["labelled"]["names"])}
    rows = torch.tensor([row_of[name] for name in cache["valid"]["names"]])
    assert not torch.allclose(views[rows, 0], cache["valid"]["test_view"])


def test_feature_cache_is_reproducible_and_refused_when_stale(dogs, tmp_path):
    from cvflow.errors import UserError
    from cvflow.fileio import sha1sum
    from cvflow.pipelines import kaggle_dogs as pipeline
    from cvflow.pipelines.kaggle_dogs.common import features_file

    before = sha1sum(features_file(dogs))
    project = tmp_path / "copy"
    shutil.copytree(dogs, project, symlinks=True)
    pipeline.features(_params(project), project)
    assert sha1sum(features_file(project)) == before  # byte for byte: dvc.lock reproduces
    _write_params(project, views=3)
    with pytest.raises(UserError, match="made with other views than params.yaml; rerun `cvflow features"):
        pipeline.train(_params(project), project, "train")


# ----------------------------------------------------------------------------- the submission


def _softmax(rows: int, classes: int, seed: int = 0) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(rows, classes))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_submission_checks_refuse_wrong_files(tmp_path):
    classes = ["pug", "akita", "beagle"]  # the model's order; without a sample the columns are sorted
    probs = _softmax(2, 3)
    out = tmp_path / "submission.csv"
    write_dog_submission(["b2", "a1"], probs, classes, None, out, expected_ids=["a1", "b2"])
    rows = list(csv.reader(out.open(newline="")))
    assert rows[0] == ["id", "akita", "beagle", "pug"] and [r[0] for r in rows[1:]] == ["b2", "a1"]
    assert [float(v) for v in rows[1][1:]] == [probs[0, 1], probs[0, 2], probs[0, 0]]
    assert check_dog_submission(out, expected_ids=["a1", "b2"]) == {"rows": 2, "breeds": 3}

    wrong = tmp_path / "wrong.csv"
    bad_sum = probs * 0.9
    nan = probs.copy()
    nan[1, 2] = np.nan
    negative = np.array([[1.2, -0.2, 0.0], probs[1]])
    for ids, table, expected, message in [
        (["b2", "a1"], bad_sum, None, "2 row(s) do not sum to 1"),
        (["b2", "a1"], nan, None, "not finite and >= 0"),
        (["b2", "a1"], negative, None, "not finite and >= 0"),
        (["b2", "b2"], probs, None, "duplicate id"),
        (["b2"], probs[:1], ["a1", "b2"], "1 test id(s) have no prediction"),
        (["b2", "zz"], probs, ["b2"], "not test images"),
        (["b2", "a1"], probs[:, :2], None, "shape"),
    ]:
        with pytest.raises(DataError, match=re.escape(message)):
            write_dog_submission(ids, table, classes, None, wrong, expected_ids=expected)
    assert not wrong.exists()  # refused before anything is written

    # the file checker (cvflow submit) refuses a file edited by hand, or one that is not the sample's shape
    sample = tmp_path / "sample_submission.csv"
    sample.write_text("id,pug,akita,beagle\na1,0.3,0.3,0.4\nb2,0.3,0.3,0.4\n")
    good = write_dog_submission(["a1", "b2"], probs, classes, sample, tmp_path / "good.csv")
    assert check_dog_submission(good, sample_submission=sample) == {"rows": 2, "breeds": 3}
    text = good.read_text().splitlines()
    for edit, message in [
        (lambda t: [t[0], t[1], "b2,0.5,0.5,0.5"], "do not sum to 1"),
        (lambda t: [t[0], t[1], "b2,inf,0.5,0.5"], "not finite"),
        (lambda t: [t[0], t[1], "b2,x,0.5,0.5"], "not a number"),
        (lambda t: [t[0], t[1], t[1]], "duplicate id"),
        (lambda t: [t[0], t[1]], "1 of its ids have no prediction"),
        (lambda t: ["id,akita,pug,beagle", *t[1:]], "columns differ from sample_submission.csv"),
    ]:
        wrong.write_text("\n".join(edit(text)) + "\n")
        with pytest.raises(DataError, match=re.escape(message)):
            check_dog_submission(wrong, sample_submission=sample)


# ----------------------------------------------------------------------------- the metric


def test_log_loss_is_kaggles_clipped_multiclass_log_loss():
    probs = [[0.7, 0.2, 0.1],
             [0.1, 0.1, 0.8],
             [0.5, 0.5, 0.0],   # the true class at 0: clipped to 1e-15, costs 34.54 instead of inf
             [2.0, 1.0, 1.0]]   # not normalised: Kaggle divides each row by its sum first
    labels = [0, 2, 2, 0]
    by_hand = -(math.log(0.7) + math.log(0.8) + math.log(1e-15) + math.log(0.5)) / 4
    assert multiclass_log_loss(probs, labels) == pytest.approx(by_hand, rel=1e-12)
    # unclipped it is the cross-entropy of the log-probabilities
    logits = torch.randn(5, 4, dtype=torch.float64)
    target = torch.tensor([0, 3, 1, 1, 2])
    expected = nn.functional.cross_entropy(logits, target).item()
    assert multiclass_log_loss(torch.softmax(logits, 1).numpy(), target.numpy()) == pytest.approx(expected, rel=1e-9)
    assert multiclass_log_loss(np.full((3, 10), 0.1), [1, 2, 3]) == pytest.approx(math.log(10))  # uniform: ln K


# ----------------------------------------------------------------------------- training, resume, outputs


@pytest.mark.slow
def test_head_training_resumes_where_it_stopped(dogs, mlflow_uri, monkeypatch):
    """An interrupted head training, rerun, ends where an uninterrupted one does (the drawn views too)."""
    import cvflow.engine.run as run_module
    from cvflow.pipelines import kaggle_dogs as pipeline
    from cvflow.pipelines.kaggle_dogs.common import run_paths

    params = _params(dogs)
    paths = run_paths(dogs, "train")
    pipeline.train(params, dogs, "train")
    uninterrupted = paths.model.read_bytes()
    history = paths.history.read_text()
    paths.model.unlink()

    original = run_module.Trainer.fit

    def stop_after_epoch_1(self, *args, **kwargs):
        self.epochs = 1
        original(self, *args, **kwargs)
        raise KeyboardInterrupt  # epoch 1's checkpoint is on disk

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(run_module.Trainer, "fit", stop_after_epoch_1)
        pipeline.train(params, dogs, "train")
    assert paths.checkpoint.exists()
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("kaggle-dogs")
    killed = [r for r in client.search_runs([experiment.experiment_id]) if r.info.status == "KILLED"]
    assert len(killed) == 1
    pipeline.train(params, dogs, "train")
    assert paths.model.read_bytes() == uninterrupted and paths.history.read_text() == history
    run = client.get_run(killed[0].info.run_id)
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "test_loss")] == [1, 2, 3]
    assert not paths.checkpoint.exists()


@pytest.mark.slow
def test_features_train_predict_evaluate_to_a_checked_submission(dogs, mlflow_uri):
    from cvflow.pipelines import kaggle_dogs as pipeline
    from cvflow.pipelines.kaggle_dogs.common import run_paths

    params = _params(dogs)
    for variant in pipeline.VARIANTS:
        pipeline.train(params, dogs, variant)
    path = pipeline.predict(params, dogs)
    metrics = pipeline.evaluate(params, dogs)
    with path.open(newline="") as handle, (dogs / "data" / "kaggle-dogs" / "sample_submission.csv").open() as s:
        rows, sample = list(csv.reader(handle)), list(csv.reader(s))
    test_ids = sorted(p.stem for p in (dogs / "data" / "kaggle-dogs" / "test").glob("*.jpg"))
    assert rows[0] == sample[0] and len(rows[0]) == 4  # id + the 3 breeds in the sample's order
    assert [r[0] for r in rows[1:]] == [r[0] for r in sample[1:]] and sorted(r[0] for r in rows[1:]) == test_ids
    assert all(abs(sum(map(float, r[1:])) - 1) < 1e-6 for r in rows[1:])
    assert metrics["submission_rows"] == 6 and metrics["submission_breeds"] == 3 and metrics["valid_images"] == 3
    assert metrics["uniform_log_loss"] == pytest.approx(math.log(3))
    # Kaggle's log loss and the accuracy, recomputed by hand from the saved `train` head on the cached valid views
    log_loss, accuracy = _valid_scores_by_hand(dogs, run_paths(dogs, "train").model, params)
    assert metrics["valid_log_loss"] == pytest.approx(log_loss, rel=1e-9)
    assert metrics["valid_acc"] == pytest.approx(accuracy, abs=1e-12)
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("kaggle-dogs")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert [a.path for a in client.list_artifacts(runs["train_valid"].info.run_id, "submission")] == \
        ["submission/kaggle-dogs.csv"]
    assert runs["train"].data.metrics["eval_valid_log_loss"] == pytest.approx(metrics["valid_log_loss"])
    assert runs["train"].data.metrics["eval_valid_acc"] == pytest.approx(metrics["valid_acc"])


def _valid_scores_by_hand(root: Path, model_file: Path, params) -> tuple[float, float]:
    """(Kaggle's multi-class log loss, accuracy) of the head in ``model_file`` on the valid images: softmax of
    each cached view (the test view, and its mirror when tta_flip), averaged; each row divided by its sum,
    clipped to [1e-15, 1 - 1e-15]; minus the mean log-probability of the true breed."""
    from cvflow.models.files import load_model

    cache = _cache(root)["valid"]
    head, _ = load_model(model_file)
    head.eval()
    views = [cache["test_view"]] + ([cache["flip_view"]] if params.task("kaggle_dogs").tta_flip else [])
    with torch.inference_mode():
        probs = np.mean([torch.softmax(head(v).double(), dim=1).numpy() for v in views], axis=0)
    labels = cache["labels"].numpy()
    probs = np.clip(probs / probs.sum(axis=1, keepdims=True), 1e-15, 1 - 1e-15)
    log_loss = -sum(math.log(probs[i, y]) for i, y in enumerate(labels)) / len(labels)
    accuracy = sum(int(np.argmax(probs[i]) == y) for i, y in enumerate(labels)) / len(labels)
    return log_loss, accuracy


@pytest.mark.slow
def test_views_0_trains_the_head_on_the_fly_as_the_book(dogs, tmp_path, mlflow_uri):
    from cvflow.models.files import read_model_file
    from cvflow.pipelines import kaggle_dogs as pipeline
    from cvflow.pipelines.kaggle_dogs.common import run_paths

    project = tmp_path / "book"
    shutil.copytree(dogs, project, symlinks=True, ignore=shutil.ignore_patterns("checkpoints", "mlflow.db", "mlruns"))
    _write_params(project, views=0, tta_flip=False, recipe={"epochs": 1, "batch_size": 8})
    params = _params(project)
    pipeline.features(params, project)
    book, cached = _cache(project), _cache(dogs)
    assert book["labelled"]["views"].shape[1] == 0  # only valid and test views are cached
    assert book["labelled"]["names"] == cached["labelled"]["names"] and book["classes"] == cached["classes"]
    assert torch.equal(book["labelled"]["labels"], cached["labelled"]["labels"])  # listed, not decoded
    final = pipeline.train(params, project, "train")
    assert set(final) >= {"train_loss", "train_acc", "test_loss", "test_acc"}
    data = read_model_file(run_paths(project, "train").model)
    assert data["arch"] == "feature_head" and data["arch_kwargs"] == {"in_features": 512, "num_classes": 3,
                                                                     "hidden": 256}
    assert set(data["state_dict"]) == {"0.weight", "0.bias", "2.weight", "2.bias"}  # the head alone


# ----------------------------------------------------------------------------- the real profile's edges


def test_imagenet_resnet34_offline_gives_one_clear_line(tmp_path, monkeypatch):
    from torchvision.models import ResNet34_Weights

    from cvflow.errors import UserError
    from cvflow.models.features import imagenet_resnet34

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    name = ResNet34_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1]
    monkeypatch.setattr(ResNet34_Weights.IMAGENET1K_V1.value, "url", f"http://127.0.0.1:9/{name}")
    with pytest.raises(UserError) as info:
        imagenet_resnet34("kaggle_dogs.real.backbone.weights")
    message = str(info.value)
    assert name in message and str(tmp_path / "torch") in message and "\n" not in message
    assert "set kaggle_dogs.real.backbone.weights to source or a cvflow model file" in message


def test_submit_checks_the_file_before_sending_it(tmp_path, mlflow_uri, monkeypatch):
    from cvflow.data.sources import kaggle
    from cvflow.pipelines import kaggle_dogs as pipeline
    from cvflow.pipelines.kaggle_dogs.common import competition
    from conftest import run_cvflow

    sent: list = []
    monkeypatch.setattr(kaggle, "kaggle_submit", lambda *args, **kw: sent.append(args) or {"ok": "1"})
    _write_params(tmp_path)
    path = write_dog_submission(["a1", "b2"], _softmax(2, 3), ["pug", "akita", "beagle"], None,
                                competition().submission_file(tmp_path))
    pipeline.submit(_params(tmp_path), tmp_path, message="m")
    assert sent == [("dog-breed-identification", path, "m")]
    bad = tmp_path / "bad.csv"
    bad.write_text("id,akita,beagle,pug\na1,0.2,0.2,0.2\n")
    with pytest.raises(DataError, match="do not sum to 1"):
        pipeline.submit(_params(tmp_path), tmp_path, file=bad, message="m")
    assert len(sent) == 1
    result = run_cvflow("submit", "kaggle-dogs", "--file", str(bad), cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(f"cvflow: error: {bad}: 1 row(s) do not sum to 1")
