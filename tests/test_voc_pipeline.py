"""The FCN on VOC through the real commands: train, evaluate (whole images), pictures, MLflow, resume,
one-line refusals, the upsampling figure, and a run on the real VOC slice."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from PIL import Image

from cvflow.errors import DataError
from cvflow.fileio import sha1sum
from cvflow.pipelines import load_params
from conftest import run_cvflow, shared

# a tiny twin (6 train, 3 val images), small crops, random body weights, 2 epochs
TINY = {"voc.demo.demo.train": 6, "voc.demo.demo.test": 3, "voc.demo.crop_size": [64, 96], "voc.demo.weights": "none",
        "voc.demo.recipe.batch_size": 3, "voc.demo.recipe.epochs": 2, "voc.demo.grid_images": 2}


def _write_params(project, overrides: dict) -> None:
    from cvflow.params import set_dotted

    data = yaml.safe_load((project / "params.yaml").read_text())
    for key, value in overrides.items():
        set_dotted(data, key, value)
    (project / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def _params(project):
    return load_params(project / "params.yaml", ["common.device=cpu"])


# session: the fast tier runs before the slow tests (conftest.py), so this module's two halves run apart
@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A project with the tiny twin fetched and the FCN trained straight through (in-process), its MLflow store."""
    import os

    from cvflow.pipelines import voc
    from conftest import tiny_params

    root = tmp_path_factory.mktemp("voc-project")
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    _write_params(root, TINY)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        voc.fetch(_params(root), root)
        voc.train(_params(root), root)
    finally:
        if old is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old
    return root, uri


@pytest.mark.slow
def test_train_evaluate_pictures_and_mlflow(trained, monkeypatch):
    from cvflow.pipelines import voc

    project, uri = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    result = run_cvflow("evaluate", "voc", cwd=project)  # the stage command, end to end
    assert result.returncode == 0, result.stderr[-3000:]
    voc.evaluate(_params(project), project)  # a second evaluation of the same model logs nothing new
    history = (project / "metrics" / "voc" / "fcn_history.csv").read_text().splitlines()
    assert history[0].split(",") == ["epoch", "train_loss", "train_pixel_acc", "train_miou", "test_loss",
                                     "test_pixel_acc", "test_miou", "test_pixel_acc_baseline", "test_miou_baseline",
                                     "lr"]
    assert [row.split(",")[0] for row in history[1:]] == ["1", "2"]
    metrics = json.loads((project / "metrics" / "voc.json").read_text())
    assert metrics["val_images"] == 3
    assert 0 <= metrics["miou"] <= 1 and 0 <= metrics["pixel_acc"] <= 1
    assert 0 < metrics["miou_baseline"] < 1 and 0.5 < metrics["pixel_acc_baseline"] < 1
    assert "background" in metrics["iou"] and all(" " not in k and "/" not in k for k in metrics["iou"])
    picture = Image.open(project / "data" / "reports" / "voc" / "predictions.png")
    assert picture.size[0] > 300 and picture.size[1] > 200
    model = torch.load(project / "data" / "models" / "voc" / "fcn.pt", weights_only=True)
    assert model["arch"] == "fcn_resnet18" and model["meta"] == {"weights": "none", "crop_size": [64, 96],
                                                                 "boundary": "ignore", "epochs": 2}
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("voc").experiment_id])
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "test_miou")] == [1, 2]
    points = client.get_metric_history(run.info.run_id, "eval_miou")
    assert [(m.step, m.value) for m in points] == [(2, pytest.approx(metrics["miou"]))]
    assert client.get_metric_history(run.info.run_id, "eval_iou_background")
    assert {a.path for a in client.list_artifacts(run.info.run_id, "plots")} == {"plots/predictions.png",
                                                                                 "plots/fcn_curves.png"}


@pytest.mark.slow
def test_an_interrupted_run_resumes_to_the_same_model(trained, project, mlflow_uri, monkeypatch):
    import shutil

    import cvflow.engine.run as run_module
    from cvflow.pipelines import voc

    straight = sha1sum(trained[0] / "data" / "models" / "voc" / "fcn.pt")
    _write_params(project, TINY)
    shutil.copytree(trained[0] / "data" / "voc", project / "data" / "voc")  # the same data, elsewhere
    original = run_module.Trainer.fit

    def one_epoch_then_stop(self, *args, **kwargs):
        self.epochs = 1
        original(self, *args, **kwargs)
        raise KeyboardInterrupt  # epoch 1's checkpoint is on disk

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(run_module.Trainer, "fit", one_epoch_then_stop)
        voc.train(_params(project), project)
    model = project / "data" / "models" / "voc" / "fcn.pt"
    assert (project / "data" / "checkpoints" / "voc" / "fcn.pt").exists() and not model.exists()
    voc.train(_params(project), project)
    assert sha1sum(model) == straight  # the same crops, the same steps: the same weights
    assert not (project / "data" / "checkpoints" / "voc" / "fcn.pt").exists()
    client = MlflowClient(mlflow_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("voc").experiment_id])
    assert run.info.status == "FINISHED"  # the killed run, reopened and finished
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2]


def test_refusals_are_one_line(project):
    from cvflow.errors import UserError
    from cvflow.pipelines import voc

    _write_params(project, {**TINY, "voc.demo.weights": "source"})
    result = run_cvflow("train", "voc", cwd=project)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cvflow pretrain hotdog" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    with pytest.raises(UserError, match="cvflow train voc"):
        voc.evaluate(_params(project), project)


def test_upsampling_figure_doubles_the_photo(tmp_path):
    from cvflow.pipelines.upsampling_figures import draw as figures

    photos = tmp_path / "data" / "photos"
    photos.mkdir(parents=True)
    Image.fromarray((torch.rand(45, 61, 3) * 255).byte().numpy()).save(photos / "catdog.jpg")
    written = figures.figures(None, tmp_path)  # params: nothing in them changes the figure
    assert list(written) == ["catdog_x2.png"] and Image.open(written["catdog_x2.png"]).size[0] > 400
    img = figures.load_photo(tmp_path)
    assert img.shape == (3, 45, 61) and figures.upsample(img).shape == (3, 90, 122)
    first = written["catdog_x2.png"].read_bytes()
    assert figures.figures(None, tmp_path)["catdog_x2.png"].read_bytes() == first  # reruns are byte-identical
    (photos / "catdog.jpg").unlink()
    with pytest.raises(DataError, match="cvflow fetch photos"):
        figures.figures(None, tmp_path)


@pytest.mark.slow
def test_real_voc_slice_trains_and_predicts(project):
    """11 real train and 6 real val images (../shared/data/voc-mini): fetched as `--source local` does, one
    short epoch on real crops, every val image predicted whole and scored."""
    from cvflow.pipelines import voc

    slice_ = shared("voc-mini")
    _write_params(project, {**TINY, "voc.demo.crop_size": [96, 128], "voc.demo.recipe.batch_size": 6,
                            "voc.demo.recipe.epochs": 1})
    counts = voc.fetch(_params(project), project, source="local", path=slice_)
    assert counts == {"train": 11, "val": 6}
    final = voc.train(_params(project), project)
    history = (project / "metrics" / "voc" / "fcn_history.csv").read_text().splitlines()
    last = dict(zip(history[0].split(","), history[-1].split(",")))
    for key in ("test_miou", "test_pixel_acc", "test_pixel_acc_baseline"):  # what train returns is its last epoch
        assert final[key] == pytest.approx(float(last[key]), rel=1e-6), key
    metrics = voc.evaluate(_params(project), project)
    assert metrics["val_images"] == 6
    assert set(metrics["iou"]) > {"background"}  # the real masks hold objects
    # every score recomputed by hand (numpy) from the saved model's predictions of the whole val images
    by_hand = _scores_by_hand(project)
    for key in ("miou", "pixel_acc", "miou_baseline", "pixel_acc_baseline"):
        assert metrics[key] == pytest.approx(by_hand[key], abs=1e-6), (key, metrics[key], by_hand[key])
    assert metrics["iou"] == {k: pytest.approx(v, abs=1e-6) for k, v in by_hand["iou"].items()}


def _scores_by_hand(project) -> dict:
    """IoU per class (tp / (tp + fp + fn) over all val pixels, 255 left out, classes present in the truth or
    the predictions), their mean, pixel accuracy on the non-255 pixels, and both for background everywhere."""
    import numpy as np

    from cvflow.data.readers.voc import VOC_CLASSES, VOCSegDataset
    import cvflow.models.fcn  # noqa: F401  (registers the architecture the file names)
    from cvflow.models.files import load_model

    model, _ = load_model(project / "data" / "models" / "voc" / "fcn.pt")
    model.eval()
    val = VOCSegDataset(project / "data" / "voc", "val", crop_size=None)
    boundary = yaml.safe_load((project / "params.yaml").read_text())["voc"]["demo"]["boundary"]
    n = len(VOC_CLASSES)
    truth, predicted = [], []
    with torch.inference_mode():
        for i in range(len(val)):
            image, label = val[i]
            truth.append(label.numpy().astype(np.int64).ravel())
            predicted.append(model(image[None])[0].argmax(dim=0).numpy().astype(np.int64).ravel())
    truth = np.concatenate(truth)
    counted = truth != 255
    # pixel accuracy: the 255 band left out (boundary: ignore) or counted as background (the book's)
    acc_truth = truth[counted] if boundary == "ignore" else np.where(counted, truth, 0)

    def scores(pred):
        t, p = truth[counted], pred[counted]
        confusion = np.bincount(t * n + p, minlength=n * n).reshape(n, n)
        tp = np.diag(confusion)
        union = confusion.sum(0) + confusion.sum(1) - tp
        iou = {VOC_CLASSES[c].replace(" ", "_").replace("/", "_"): tp[c] / union[c] for c in range(n) if union[c]}
        acc = (acc_truth == (p if boundary == "ignore" else pred)).mean()
        return {"iou": iou, "miou": float(np.mean(list(iou.values()))), "pixel_acc": float(acc)}

    model_scores, background = scores(np.concatenate(predicted)), scores(np.zeros_like(truth))
    return {**model_scores, "miou_baseline": background["miou"], "pixel_acc_baseline": background["pixel_acc"]}
    assert (project / "data" / "reports" / "voc" / "predictions.png").exists()
