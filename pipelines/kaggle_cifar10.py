"""Kaggle CIFAR-10 (book 13.13), end to end to a submission file.

Stages (see ``dvc.yaml``)::

    fetch kaggle-cifar10    -> data/kaggle-cifar10/{train,test}/<id>.png, trainLabels.csv
    prepare kaggle-cifar10  -> data/kaggle-cifar10-prepared/{train,valid,train_valid}/<label>/, test/unknown/
    train kaggle-cifar10 --variant train        (on train; valid for model selection)
    train kaggle-cifar10 --variant train_valid  (the same recipe on train + valid, as the book retrains)
    predict kaggle-cifar10  -> data/submissions/kaggle-cifar10.csv (the train_valid model on every test image)
    evaluate kaggle-cifar10 -> metrics/kaggle-cifar10.json (valid accuracy, per class; --labels FILE: the
                               submission's test accuracy)
    submit kaggle-cifar10   -> the Kaggle API (by hand, never from dvc repro)
"""

from __future__ import annotations

from pathlib import Path

from cvflow.console import info
from pydantic import Field, field_validator

from cvflow.params import CifarNet, KaggleProfile, ParamsBase as Params, Recipe, Strict
from cvflow.pipelines.task import (
    DATA_PARAMS, RUN_COMMON, Effect, Number, Option, Section, Stage, Task, curves, fetch_stage, prepare_stage,
    run_files, submit_stage,
)


# ----------------------------------------------------------------------------- params schema


class KaggleCifarTransforms(Strict):
    """The book's 13.13 transforms: Resize, a square RandomResizedCrop, flip, CIFAR-10 normalisation."""

    resize: int = Field(40, ge=8, le=1024, description="Resize(r) before the crop (the book: 40)")
    crop: int = Field(32, ge=8, le=1024, description="RandomResizedCrop size (the book: 32)")
    crop_scale: tuple[float, float] = Field((0.64, 1.0), description="its area range (the book: 0.64-1, ratio 1)")
    hflip: bool = True
    mean: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
    std: tuple[float, float, float] = (0.2023, 0.1994, 0.2010)

    @field_validator("crop_scale")
    @classmethod
    def _scale(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] <= value[1] <= 1:
            raise ValueError("must be two numbers with 0 < low <= high <= 1")
        return value


class KaggleCifarProfile(KaggleProfile):
    """13.13: train on train (valid for selection), retrain on train_valid, predict test."""

    net: CifarNet
    transforms: KaggleCifarTransforms
    recipe: Recipe






def competition():
    """Kaggle's ``cifar-10`` in this project: a :class:`cvflow.competition.Competition`."""
    from cvflow.competition import Competition

    return Competition("cifar-10", "kaggle-cifar10", "trainLabels.csv", "kaggle_cifar10_tiny", "Kaggle CIFAR-10")


def fetch(params: Params, root: Path, source: str | None = None, path: Path | None = None) -> dict:
    from cvflow.twins.cifar import generate_kaggle_cifar10

    from cvflow.competition import fetch as fetch_files

    cfg = params.task("kaggle_cifar10")
    return fetch_files(competition(), root, source or cfg.data.source, path or cfg.data.path, params.common.hub_url,
                       generate=lambda folder: generate_kaggle_cifar10(folder, cfg.demo.train, cfg.demo.test,
                                                                       cfg.demo.seed))


def prepare(params: Params, root: Path) -> dict:
    from cvflow.competition import prepare as reorganise

    cfg = params.task("kaggle_cifar10")
    return reorganise(competition(), root, cfg.valid_ratio, params.common.seed, cfg.reorg)


# ----------------------------------------------------------------------------- training, prediction

EXPERIMENT = "kaggle-cifar10"
VARIANTS = ("train", "train_valid")
FINAL = "train_valid"  # the model the submission comes from: the one registered


def run_paths(root: Path, variant: str):
    """Files of the run ``variant``: see :class:`cvflow.engine.run.RunPaths`."""
    from cvflow.engine.paths import RunPaths

    return RunPaths(root, EXPERIMENT, variant)



def metrics_file(root: Path) -> Path:
    return root / "metrics" / "kaggle-cifar10.json"


def _test_spec(cfg) -> dict:
    """The book's 13.13 transform_test (ToTensor, Normalize) as data; the resize to the training size is a
    no-op on the competition's 32 x 32 images and lets the served model take images of any size."""
    t = cfg.transforms
    return {"resize": [t.crop, t.crop], "scale": "unit", "mean": list(t.mean), "std": list(t.std)}


def _transforms(cfg):
    """The book's 13.13 transform_train and transform_test (:func:`_test_spec`), on uint8 tensors."""
    import torch
    from torchvision.transforms import v2

    from cvflow.preprocess import inference_transform

    t = cfg.transforms
    finish = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(t.mean), list(t.std))]
    train = [v2.Resize(t.resize, antialias=True),
             v2.RandomResizedCrop(t.crop, scale=tuple(t.crop_scale), ratio=(1.0, 1.0), antialias=True)]
    if t.hflip:
        train.append(v2.RandomHorizontalFlip())
    return v2.Compose(train + finish), inference_transform(_test_spec(cfg))


def _folder(params: Params, root: Path, split: str, transform, classes=None):
    """A prepared split (``train``, ``valid``, ``train_valid``) as an image folder, decoded once."""
    from cvflow.competition import split as prepared_split

    return prepared_split(competition(), root, split, transform, params.task("kaggle_cifar10").reorg,
                          f"kaggle_cifar10.{params.profile}.reorg", params.common, classes)


def train(params: Params, root: Path, variant: str) -> dict:
    """The book's 13.13 training: ``train`` (valid for model selection) or ``train_valid`` (the final model)."""
    from cvflow.engine.trainer import ClassificationTask
    from cvflow.engine.run import train_variant
    from cvflow.errors import UserError
    from cvflow.models.cifar import build_resnet18_cifar
    from cvflow.pipelines.lineage import dvc_digests
    from cvflow.serving import Servable

    if variant not in VARIANTS:  # before the folder named after it is looked for
        raise UserError(f"--variant {variant!r}: use one of {', '.join(VARIANTS)}")
    cfg = params.task("kaggle_cifar10")
    train_tf, test_tf = _transforms(cfg)
    train_set = _folder(params, root, variant, train_tf)
    valid_set = _folder(params, root, "valid", test_tf, train_set.classes) if variant == "train" else None
    config = {"net": cfg.net.model_dump(mode="json"), "transforms": cfg.transforms.model_dump(mode="json"),
              "valid_ratio": cfg.valid_ratio, "data": cfg.data.model_dump(mode="json"),
              "demo": cfg.demo.model_dump(mode="json")}
    prepared = "data/kaggle-cifar10-prepared"
    result = train_variant(
        params, root, EXPERIMENT, variant, VARIANTS, recipe=cfg.recipe,
        data={"kaggle-cifar10-prepared": competition().prepared_dir(root)},
        digests={"kaggle-cifar10-prepared": dvc_digests(root, prepared).get(prepared, "")}, config=config,
        build=lambda: build_resnet18_cifar(len(train_set.classes), cfg.net.width, cfg.net.init),
        task=ClassificationTask(), train_set=train_set, eval_set=valid_set, classes=train_set.classes,
        title=f"Kaggle CIFAR-10: {variant}",
        serve=Servable(f"{EXPERIMENT}-{variant}", "classify", _test_spec(cfg), [train_set.image(0)],
                       register=variant == FINAL))
    if result.dist.is_main and "test_acc" in result.final:
        info(f"{variant}: valid accuracy {result.final['test_acc']:.3f} after {len(result.history)} epochs")
    return result.final


def predict(params: Params, root: Path) -> Path:
    """Every test image through the ``train_valid`` model: the checked submission file, logged to its run."""
    from cvflow.data.readers.images import ImageIdFolder
    from cvflow.data.submissions import write_cifar10_submission
    from cvflow.engine.runtime import Precision, resolve_device
    from cvflow.engine.predict import predict_labels
    from cvflow.engine.runtime import resolve_workers
    from cvflow.fileio import sha1sum
    from cvflow.models.files import load_model
    import cvflow.models.cifar  # noqa: F401  (registers the architecture the model file names)
    from cvflow.tracking import find_run

    cfg = params.task("kaggle_cifar10")
    model_file = run_paths(root, "train_valid").model
    model, data = load_model(model_file)
    classes = list(data["classes"])
    device = resolve_device(params.common.device)
    test = ImageIdFolder(competition().prepared_dir(root) / "test" / "unknown", _transforms(cfg)[1],
                         cache=params.common.image_cache, cache_max_bytes=params.common.image_cache_mb * 2**20)
    ids, predicted = predict_labels(model, test, batch_size=cfg.recipe.batch_size, device=device,
                                    precision=Precision.resolve(device, params.common.precision),
                                    num_workers=resolve_workers(params.common.num_workers, device))
    sample = competition().data_dir(root) / "sampleSubmission.csv"
    path = write_cifar10_submission(ids, [classes[int(i)] for i in predicted], competition().submission_file(root),
                                    classes=classes, expected_ids=test.ids,
                                    sample_submission=sample if sample.exists() else None)
    tracker = find_run(root, EXPERIMENT, sha1sum(model_file))
    if tracker is not None:
        tracker.log_artifact(path, "submission")
    info(f"submission: {len(ids)} test images -> {path}")
    return path


def evaluate(params: Params, root: Path, labels: Path | None = None) -> dict:
    """Valid accuracy (and per class) of the ``train`` model; with ``labels`` (``id,label`` for the
    test images) also the submission's test accuracy."""
    import torch

    from cvflow.data.submissions import score_submission
    from cvflow.engine.runtime import Precision, resolve_device
    from cvflow.engine.trainer import make_loader
    from cvflow.fileio import sha1sum, write_json
    from cvflow.models.files import load_model
    import cvflow.models.cifar  # noqa: F401  (registers the architecture the model file names)
    from cvflow.tracking import find_run

    cfg = params.task("kaggle_cifar10")
    model_file = run_paths(root, "train").model
    model, data = load_model(model_file)
    classes = list(data["classes"])
    device = resolve_device(params.common.device)
    precision = Precision.resolve(device, params.common.precision)
    valid = _folder(params, root, "valid", _transforms(cfg)[1], classes)
    model.to(device).eval()
    predictions = []
    with torch.inference_mode():
        for images, _ in make_loader(valid, 512, train=False):
            with precision.autocast():
                predictions.append(model(images.to(device, non_blocking=True)).argmax(dim=1))
    predicted = torch.cat(predictions).cpu()
    correct = predicted == valid.targets
    results: dict = {"valid_acc": correct.float().mean().item(), "valid_images": len(valid),
                     "valid_acc_per_class": {c: correct[valid.targets == i].float().mean().item()
                                             for i, c in enumerate(classes) if (valid.targets == i).any()}}
    submission = competition().submission_file(root)
    results["submission_rows"] = sum(1 for _ in submission.open(encoding="utf-8")) - 1 if submission.exists() else 0
    if labels is not None:
        scored = score_submission(submission, labels, classes=classes)
        results.update(test_acc=scored["accuracy"], test_scored=scored["scored"],
                       test_acc_per_class=scored["per_class"])
    write_json(metrics_file(root), results)
    tracker = find_run(root, EXPERIMENT, sha1sum(model_file))
    if tracker is not None:
        tracker.log_evaluation({k: v for k, v in results.items() if isinstance(v, float)},
                               step=int(data["meta"].get("epochs", 0)))
    info(f"Kaggle CIFAR-10: valid accuracy {results['valid_acc']:.3f} on {len(valid)} images"
         + (f"; submission test accuracy {results['test_acc']:.3f} on {results['test_scored']} labelled images"
            if labels is not None else ""))
    return results


def submit(params: Params, root: Path, file: Path | None = None, message: str | None = None) -> dict:
    """Send the submission (default ``data/submissions/kaggle-cifar10.csv``) to Kaggle's ``cifar-10`` after
    checking it; the default message names the git commit and the MLflow run of the model that made the file."""
    from cvflow.data.sources.kaggle import check_submission_file

    check_submission_file(file if file is not None else competition().submission_file(root))
    from cvflow.competition import submit as send

    return send(competition(), root, file, message, model_file=run_paths(root, "train_valid").model)


#: the comparison charts (dvc.yaml's top-level plots; static copies in the report)
CHARTS = {"Kaggle CIFAR-10 training loss per epoch, train against train+valid (13.13)": curves(
    f"metrics/{EXPERIMENT}/train_history.csv", f"metrics/{EXPERIMENT}/train_valid_history.csv", y="train_loss")}

REPORT = (Section(
    "13.13", "Image classification (CIFAR-10) on Kaggle",
    "The full competition workflow: reorganise Kaggle's files into train / valid / train_valid / test folders, "
    "train with valid for model selection, retrain on train + valid, predict every test image and write the "
    "submission file. The book prints its run on the 1,000-image cifar10_tiny sample (demo = True).",
    numbers=(Number("train run: valid accuracy", "metrics/kaggle-cifar10.json:valid_acc", 0.438,
                    book_note="the book: cifar10_tiny, 20 epochs"),
             Number("train run: train accuracy, last epoch", f"metrics/{EXPERIMENT}/train.json:train_acc", 0.789),
             Number("train_valid run: train accuracy, last epoch", f"metrics/{EXPERIMENT}/train_valid.json:train_acc",
                    0.786),
             Number("train_valid run: train loss, last epoch", f"metrics/{EXPERIMENT}/train_valid.json:train_loss",
                    0.608),
             Number("submission rows", "metrics/kaggle-cifar10.json:submission_rows", fmt=".0f")),
    effects=(Effect("the model learns: valid accuracy above chance (1 in 10)", "metrics/kaggle-cifar10.json:valid_acc",
                    ">", 0.1),),
    charts=tuple(CHARTS), runs=(f"{EXPERIMENT}/train", f"{EXPERIMENT}/train_valid")),)

TASK: Task[KaggleCifarProfile] = Task(
    name="kaggle-cifar10", profile=KaggleCifarProfile, title="13.13 Kaggle CIFAR-10",
    stages=(
        fetch_stage(fetch, "data/kaggle-cifar10", "demo | d2l | kaggle | local",
                    "Kaggle CIFAR-10 (13.13) into data/kaggle-cifar10/ (train/, test/, trainLabels.csv)."),
        prepare_stage(prepare, "kaggle-cifar10"),
        Stage("train", train, "The CIFAR ResNet-18 on Kaggle's CIFAR-10 (book 13.13).", variants=VARIANTS,
              variant_help="train: on train, valid for model selection; train_valid: the same recipe on all "
              "labelled images (the final model)", recipe="recipe", deps=("data/kaggle-cifar10-prepared",),
              params=(*RUN_COMMON, *DATA_PARAMS, "valid_ratio", "reorg", "net", "transforms", "recipe"),
              **run_files(EXPERIMENT), tracked=True),
        Stage("predict", predict, "data/submissions/kaggle-cifar10.csv: every test image through the "
              "train_valid model, checked, id,label.",
              deps=("data/kaggle-cifar10", "data/kaggle-cifar10-prepared", "data/models/kaggle-cifar10/train_valid.pt"),
              params=("common.device", "common.precision", "common.num_workers", "transforms", "recipe.batch_size"),
              outs=("data/submissions/kaggle-cifar10.csv",), tracked=True),
        Stage("evaluate", evaluate, "metrics/kaggle-cifar10.json: valid accuracy (and per class); with --labels "
              "the submission's test accuracy.",
              options=(Option("labels", Path, "id,label CSV of the test images: also score the submission",
                              kwarg=True),),
              deps=("data/kaggle-cifar10-prepared", "data/models/kaggle-cifar10/train.pt",
                    "data/submissions/kaggle-cifar10.csv"),
              params=("common.device", "common.precision", "reorg", "transforms"), metrics=("metrics/kaggle-cifar10.json",),
              tracked=True),
        submit_stage(submit, "cifar-10 (13.13)", "data/submissions/kaggle-cifar10.csv",
                     "the git commit and the newest finished MLflow run"),
    ),
    charts=CHARTS,
    report=REPORT,
)
