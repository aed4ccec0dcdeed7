"""Image augmentation on CIFAR-10 (book 13.1): the CIFAR ResNet-18 trained with and without it.

Stages (see ``dvc.yaml``)::

    fetch cifar10 -> data/cifar10/cifar-10-batches-py/
    train cifar10 --variant augment|no-augment -> data/models/cifar10-augmentation/<variant>.pt, metrics/...
    evaluate cifar10 -> metrics/cifar10-augmentation.json (both test accuracies and their difference)

Both runs share the seed, the schedule and the data; only the train transforms differ. The
figures of the section (the augmentations on ``cat1.jpg``) are ``cvflow figures augmentation``.

This module is the declaration alone; the schema is in ``schema.py``, each stage's function in its own module
(``fetching``, ``training``, ``evaluation``), what they share in ``common.py``. A stage depends on its own
function's module, not on this one.
"""

from __future__ import annotations

from pathlib import Path

from cvflow.pipelines.cifar10_augmentation.common import DATA, EXPERIMENT, metrics_file, run_paths
from cvflow.pipelines.cifar10_augmentation.evaluation import evaluate
from cvflow.pipelines.cifar10_augmentation.fetching import fetch
from cvflow.pipelines.cifar10_augmentation.schema import (  # noqa: F401  (the schema, re-exported)
    CifarAugment, CifarData, CifarProfile)
from cvflow.pipelines.cifar10_augmentation.training import train
from cvflow.pipelines.task import (DATA_PARAMS, RUN_COMMON, Effect, Number, Section, Stage, Task, curves, fetch_stage,
                                   run_files)

#: the runs compared: the same run with and without the train transforms
VARIANTS = ("augment", "no-augment")


def _file(variant: str, kind: str) -> str:
    """A run's file, relative to the project folder (``RunPaths`` names them)."""
    return getattr(run_paths(Path(), variant), kind).as_posix()


HISTORIES = tuple(_file(variant, "history") for variant in VARIANTS)

#: the comparison charts (dvc.yaml's top-level plots; static copies in the report)
CHARTS = {"CIFAR-10 test accuracy per epoch, with and without augmentation (13.1)": curves(
    *HISTORIES, y="test_acc")}

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
        fetch_stage(fetch, DATA, "demo | torchvision | local",
                    "CIFAR-10 for augmentation (13.1) into data/cifar10/cifar-10-batches-py/.", params=("",)),
        Stage("train", train, "The CIFAR ResNet-18 with and without image augmentation (book 13.1).",
              variants=VARIANTS, variant_help="augment: the book's train_augs (flip; the demo adds a padded crop); "
              "no-augment: the same run without them", recipe="recipe", deps=(DATA,),
              params=(*RUN_COMMON, *DATA_PARAMS, "train_images", "net"),
              variant_params={"augment": ("augment", "recipe"), "no-augment": ("recipe",)}, **run_files(EXPERIMENT), tracked=True),
        Stage("evaluate", evaluate, "metrics/cifar10-augmentation.json: test accuracy with and without "
              "augmentation, and the difference.",
              deps=(DATA, *(_file(variant, "model") for variant in VARIANTS), *HISTORIES,
                    "data/reports/augmentation"),
              params=("common.device", "common.precision"),
              outs=((run_paths(Path(), "augment").reports / "curves.png").as_posix(),),
              metrics=(metrics_file(Path()).as_posix(),), tracked=True),
    ),
    charts=CHARTS,
    report=REPORT,
)
