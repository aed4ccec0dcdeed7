"""Image augmentation on CIFAR-10 (book 13.1): the CIFAR ResNet-18 trained with and without it.

Stages (see ``dvc.yaml``)::

    fetch cifar10 -> data/cifar10/cifar-10-batches-py/
    train cifar10 --variant augment|no-augment -> data/models/cifar10-augmentation/<variant>.pt, metrics/...
    evaluate cifar10 -> metrics/cifar10-augmentation.json (both test accuracies and their difference)

Both runs share the seed, the schedule and the data; only the train transforms differ. The
figures of the section (the augmentations on ``cat1.jpg``) are ``cvflow figures augmentation``.
"""

from __future__ import annotations

from pathlib import Path

from cvflow.console import info
from typing import Literal, Union

from pydantic import Field

from cvflow.params import CifarNet, HubData, ParamsBase as Params, Recipe, Strict, TwinSize
from cvflow.pipelines.task import (DATA_PARAMS, RUN_COMMON, Effect, Number, Section, Stage, Task, curves, fetch_stage,
                                   run_files)


# ----------------------------------------------------------------------------- params schema


class CifarData(HubData):
    source: Literal["demo", "torchvision", "local"]  # type: ignore[assignment]


class CifarAugment(Strict):
    """The train transforms of the ``augment`` run (13.1); the ``no-augment`` run uses none of them."""

    hflip: bool = Field(True, description="RandomHorizontalFlip (the book's 13.1 train_augs)")
    crop_padding: int = Field(0, ge=0, le=16, description="RandomCrop(32, padding=N) as well; 0: none (the book)")


class CifarProfile(Strict):
    """13.1 image augmentation: CIFAR-10, the book's ResNet-18 trained with and without augmentation."""

    data: CifarData
    demo: TwinSize
    train_images: Union[int, None] = Field(None, ge=10, description="the first N training images; null: all")
    net: CifarNet
    augment: CifarAugment
    recipe: Recipe


# Each stage imports what it alone needs inside its function (see pipelines/hotdog.py).


def data_dir(root: Path) -> Path:
    """Holds ``cifar-10-batches-py`` (read with :func:`cvflow.data.readers.cifar.cifar10_dataset`)."""
    return root / "data" / "cifar10"


def fetch(params: Params, root: Path, source: str | None = None, path: Path | None = None) -> dict:
    from cvflow.data.sources.cifar import fetch_cifar10

    cfg = params.task("cifar10")
    source = source or cfg.data.source
    result = fetch_cifar10(data_dir(root), source, path=path or cfg.data.path, n_train=cfg.demo.train,
                           n_test=cfg.demo.test, seed=cfg.demo.seed)
    info(f"CIFAR-10 ({source}) at {data_dir(root) / 'cifar-10-batches-py'}")
    return result


# ----------------------------------------------------------------------------- 13.1: with and without augmentation

EXPERIMENT = "cifar10-augmentation"  # MLflow experiment, and the folder of the runs' files
VARIANTS = ("augment", "no-augment")


def run_paths(root: Path, variant: str):
    """Files of the run ``variant``: see :class:`cvflow.engine.run.RunPaths`."""
    from cvflow.engine.paths import RunPaths

    return RunPaths(root, EXPERIMENT, variant)


def metrics_file(root: Path) -> Path:
    return root / "metrics" / f"{EXPERIMENT}.json"


#: the book's test_augs (ToTensor: floats in [0, 1], not normalised), as data; the resize to 32 x 32 is a no-op on
#: CIFAR-10 and lets the served model take images of any size
TEST_SPEC = {"resize": [32, 32], "scale": "unit"}


def _transforms(cfg, augment: bool):
    """The book's 13.1 train_augs (flip, and the demo's padded crop) or test_augs (:data:`TEST_SPEC`), on uint8
    tensors. As the book, images become floats in [0, 1] (``ToTensor``) and are not normalised."""
    import torch
    from torchvision.transforms import v2

    from cvflow.preprocess import inference_transform

    if not augment:
        return inference_transform(TEST_SPEC)
    steps = []
    if cfg.augment.hflip:
        steps.append(v2.RandomHorizontalFlip())
    if cfg.augment.crop_padding:
        steps.append(v2.RandomCrop(32, padding=cfg.augment.crop_padding))
    return v2.Compose([*steps, v2.ToDtype(torch.float32, scale=True)])


def _split(cfg, root: Path, train: bool, augment: bool):
    """The CIFAR-10 training (its first ``train_images``) or test split, decoded once."""
    import torch

    from cvflow.data.readers.cifar import cifar10_dataset
    from cvflow.data.readers.images import TensorImages

    data = cifar10_dataset(data_dir(root), train=train)
    count = cfg.train_images if train and cfg.train_images else len(data.targets)
    images = torch.from_numpy(data.data[:count]).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor(data.targets[:count], dtype=torch.long)
    return TensorImages(images, labels, _transforms(cfg, augment and train))


def train(params: Params, root: Path, variant: str) -> dict:
    """The book's 13.1 experiment: the CIFAR ResNet-18 trained with (``augment``) or without
    (``no-augment``) augmentation, same seed, schedule and data, as one tracked run each."""
    from cvflow.data.readers.cifar import CIFAR10_CLASSES
    from cvflow.engine.trainer import ClassificationTask
    from cvflow.engine.run import train_variant
    from cvflow.models.cifar import build_resnet18_cifar
    from cvflow.pipelines.lineage import dvc_digests
    from cvflow.serving import Servable

    cfg = params.task("cifar10")
    augment = variant == "augment"
    test_set = _split(cfg, root, False, False)
    config = {"net": cfg.net.model_dump(mode="json"),
              "augment": cfg.augment.model_dump(mode="json") if augment else None,
              "train_images": cfg.train_images, "data": cfg.data.model_dump(mode="json"),
              "demo": cfg.demo.model_dump(mode="json")}
    data = "data/cifar10"
    result = train_variant(
        params, root, EXPERIMENT, variant, VARIANTS, recipe=cfg.recipe, data={"cifar10": data_dir(root)},
        digests={"cifar10": dvc_digests(root, data).get(data, "")}, config=config,
        build=lambda: build_resnet18_cifar(len(CIFAR10_CLASSES), cfg.net.width, cfg.net.init),
        task=ClassificationTask(), train_set=_split(cfg, root, True, augment), eval_set=test_set,
        classes=CIFAR10_CLASSES, title=f"CIFAR-10 ResNet-18, {variant}",
        serve=Servable(f"cifar10-{variant}", "classify", TEST_SPEC, [test_set.images[0]]))
    if result.dist.is_main:
        info(f"{variant}: test accuracy {result.final['test_acc']:.3f} after {len(result.history)} epochs")
    return result.final


def evaluate(params: Params, root: Path) -> dict:
    """Test both models on ``common.device``: ``metrics/cifar10-augmentation.json`` holds their test
    accuracies and the difference the book's section is about; the curves of both on one chart."""
    import pandas as pd
    import torch

    from cvflow.engine.runtime import Precision, resolve_device
    from cvflow.engine.trainer import make_loader
    from cvflow.fileio import sha1sum, write_json
    from cvflow.models.files import load_model
    import cvflow.models.cifar  # noqa: F401  (registers the architecture the model file names)
    from cvflow.plots import training_curves
    from cvflow.tracking import find_run

    cfg = params.task("cifar10")
    device = resolve_device(params.common.device)
    precision = Precision.resolve(device, params.common.precision)
    test_set = _split(cfg, root, False, False)
    loader = make_loader(test_set, 512, train=False)
    results: dict = {}
    for variant in VARIANTS:
        model_file = run_paths(root, variant).model
        model, data = load_model(model_file)
        model.to(device).eval()
        correct = torch.zeros((), dtype=torch.long, device=device)
        with torch.inference_mode():
            for images, labels in loader:
                with precision.autocast():
                    logits = model(images.to(device, non_blocking=True))
                correct += (logits.argmax(dim=1) == labels.to(device)).sum()
        results[variant.replace("-", "_")] = {"test_acc": int(correct) / len(test_set)}
        tracker = find_run(root, EXPERIMENT, sha1sum(model_file))
        if tracker is not None:
            tracker.log_evaluation(results[variant.replace("-", "_")], step=int(data["meta"].get("epochs", 0)))
            gallery = root / "data" / "reports" / "augmentation"  # `cvflow figures augmentation`, when drawn
            for picture in sorted(gallery.glob("*.png")) if gallery.is_dir() else []:
                tracker.log_artifact(picture, "augmentation")
    results["augment_minus_no_augment"] = results["augment"]["test_acc"] - results["no_augment"]["test_acc"]
    results["test_images"] = len(test_set)
    write_json(metrics_file(root), results)
    histories = {v: pd.read_csv(run_paths(root, v).history).to_dict("records") for v in VARIANTS}
    training_curves(histories, run_paths(root, "augment").reports / "curves.png",
                    "CIFAR-10: with and without augmentation")
    info(f"CIFAR-10 test accuracy: augment {results['augment']['test_acc']:.3f}, "
         f"no-augment {results['no_augment']['test_acc']:.3f}")
    return results


#: the comparison charts (dvc.yaml's top-level plots; static copies in the report)
CHARTS = {"CIFAR-10 test accuracy per epoch, with and without augmentation (13.1)": curves(
    f"metrics/{EXPERIMENT}/augment_history.csv", f"metrics/{EXPERIMENT}/no-augment_history.csv", y="test_acc")}

REPORT = (Section(
    "13.1", "Image augmentation",
    "Random changes to the training images (flips, crops, colours) make a small set look larger and the model "
    "less dependent on where and how an object appears. The book trains the CIFAR ResNet-18 with random "
    "horizontal flips; this pipeline also trains it without them, to show what augmentation buys on the test set.",
    numbers=(Number("with augmentation: test accuracy", f"metrics/{EXPERIMENT}.json:augment.test_acc", 0.810),
             Number("with augmentation: train accuracy, last epoch", f"metrics/{EXPERIMENT}/augment.json:train_acc",
                    0.925),
             Number("without augmentation: test accuracy", f"metrics/{EXPERIMENT}.json:no_augment.test_acc",
                    book_note="the book leaves training without augmentation as an exercise"),
             Number("without augmentation: train accuracy, last epoch",
                    f"metrics/{EXPERIMENT}/no-augment.json:train_acc")),
    effects=(Effect("augmentation beats no augmentation on the test images",
                    f"metrics/{EXPERIMENT}.json:augment.test_acc", ">", f"metrics/{EXPERIMENT}.json:no_augment.test_acc"),),
    charts=tuple(CHARTS), runs=(f"{EXPERIMENT}/augment", f"{EXPERIMENT}/no-augment")),)

TASK: Task[CifarProfile] = Task(
    name="cifar10", profile=CifarProfile, title="13.1 image augmentation",
    stages=(
        fetch_stage(fetch, "data/cifar10", "demo | torchvision | local",
                    "CIFAR-10 for augmentation (13.1) into data/cifar10/cifar-10-batches-py/.", params=("",)),
        Stage("train", train, "The CIFAR ResNet-18 with and without image augmentation (book 13.1).",
              variants=VARIANTS, variant_help="augment: the book's train_augs (flip; the demo adds a padded crop); "
              "no-augment: the same run without them", recipe="recipe", deps=("data/cifar10",),
              params=(*RUN_COMMON, *DATA_PARAMS, "train_images", "net"),
              variant_params={"augment": ("augment", "recipe"), "no-augment": ("recipe",)}, **run_files(EXPERIMENT), tracked=True),
        Stage("evaluate", evaluate, "metrics/cifar10-augmentation.json: test accuracy with and without "
              "augmentation, and the difference.",
              deps=("data/cifar10", f"data/models/{EXPERIMENT}/augment.pt", f"data/models/{EXPERIMENT}/no-augment.pt",
                    f"metrics/{EXPERIMENT}/augment_history.csv", f"metrics/{EXPERIMENT}/no-augment_history.csv",
                    "data/reports/augmentation"),
              params=("common.device", "common.precision"), outs=(f"data/reports/{EXPERIMENT}/curves.png",),
              metrics=(f"metrics/{EXPERIMENT}.json",), tracked=True),
    ),
    charts=CHARTS,
    report=REPORT,
)
