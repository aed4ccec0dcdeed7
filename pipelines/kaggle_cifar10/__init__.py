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

This module is the declaration alone; the schema is in ``schema.py``, each stage's function in its own module
(``fetching``, ``preparing``, ``training``, ``prediction``, ``evaluation``, ``submission``), what they share in
``common.py``. A stage depends on its own function's module, not on this one.
"""

from __future__ import annotations

from pathlib import Path

from cvflow.pipelines.kaggle_cifar10.common import EXPERIMENT, FINAL, metrics_file, run_paths
from cvflow.pipelines.kaggle_cifar10.evaluation import evaluate
from cvflow.pipelines.kaggle_cifar10.fetching import fetch
from cvflow.pipelines.kaggle_cifar10.prediction import predict
from cvflow.pipelines.kaggle_cifar10.preparing import prepare
from cvflow.pipelines.kaggle_cifar10.schema import (  # noqa: F401  (the schema, re-exported)
    KaggleCifarProfile, KaggleCifarTransforms)
from cvflow.pipelines.kaggle_cifar10.submission import submit
from cvflow.pipelines.kaggle_cifar10.training import train
from cvflow.pipelines.task import (
    DATA_PARAMS, RUN_COMMON, Effect, Number, Option, Section, Stage, Task, curves, fetch_stage, prepare_stage,
    run_files, submit_stage,
)

#: the runs: on train (valid for model selection), and the final one on train + valid
VARIANTS = ("train", "train_valid")


def _file(variant: str, kind: str) -> str:
    """A run's file, relative to the project folder (``RunPaths`` names them)."""
    return getattr(run_paths(Path(), variant), kind).as_posix()


#: the comparison charts (dvc.yaml's top-level plots; static copies in the report)
CHARTS = {"Kaggle CIFAR-10 training loss per epoch, train against train+valid (13.13)": curves(
    *(_file(variant, "history") for variant in VARIANTS), y="train_loss")}

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
              deps=("data/kaggle-cifar10", "data/kaggle-cifar10-prepared", _file(FINAL, "model")),
              params=("common.device", "common.precision", "common.num_workers", "transforms", "recipe.batch_size"),
              outs=("data/submissions/kaggle-cifar10.csv",), tracked=True),
        Stage("evaluate", evaluate, "metrics/kaggle-cifar10.json: valid accuracy (and per class); with --labels "
              "the submission's test accuracy.",
              options=(Option("labels", Path, "id,label CSV of the test images: also score the submission",
                              kwarg=True),),
              deps=("data/kaggle-cifar10-prepared", _file("train", "model"),
                    "data/submissions/kaggle-cifar10.csv"),
              params=("common.device", "common.precision", "reorg", "transforms"),
              metrics=(metrics_file(Path()).as_posix(),), tracked=True),
        submit_stage(submit, "cifar-10 (13.13)", "data/submissions/kaggle-cifar10.csv",
                     "the git commit and the newest finished MLflow run"),
    ),
    charts=CHARTS,
    report=REPORT,
)
