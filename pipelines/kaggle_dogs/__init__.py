"""Kaggle dog breeds (book 13.14): a frozen pretrained backbone, a small head, the probability submission.

Stages (see ``dvc.yaml``)::

    fetch kaggle-dogs       -> data/kaggle-dogs/{train,test}/<id>.jpg, labels.csv, sample_submission.csv
    prepare kaggle-dogs     -> data/kaggle-dogs-prepared/{train,valid,train_valid}/<breed>/, test/unknown/
    features kaggle-dogs    -> data/features/kaggle-dogs.pt: the frozen backbone's features, computed once per
                               image and view (``views`` augmented views of each labelled image; the test
                               transform's view, and its mirror image with ``tta_flip``, of each valid and
                               test image)
    train kaggle-dogs --variant train        (the head on train; valid for model selection)
    train kaggle-dogs --variant train_valid  (the same recipe on train + valid, as the book retrains)
    predict kaggle-dogs     -> data/submissions/kaggle-dogs.csv (the train_valid head's softmax per test image)
    evaluate kaggle-dogs    -> metrics/kaggle-dogs.json (valid log loss, Kaggle's metric, and accuracy)
    submit kaggle-dogs      -> the Kaggle API (by hand, never from dvc repro)

The head trains on the cached features (``views: N``), or, with ``views: 0``, as the book does:
every epoch runs the backbone on freshly augmented images. Valid and test images always take
the test transform, which is deterministic, so their cached features are exactly what the
backbone gives on the fly. The demo has no ImageNet; its backbone is the hot dog pipeline's
``source`` model (a ResNet-18 pretrained there on generated food): ``backbone.weights``.

This module is the declaration alone; the schema is in ``schema.py``, each stage's function in its own module
(``fetching``, ``preparing``, ``featurizing``, ``training``, ``prediction``, ``evaluation``, ``submission``), what
they share in ``common.py``. A stage depends on its own function's module, not on this one.
"""

from __future__ import annotations

from pathlib import Path

from cvflow.pipelines.kaggle_dogs.common import EXPERIMENT, SOURCE_MODEL, features_file, metrics_file, run_paths
from cvflow.pipelines.kaggle_dogs.evaluation import evaluate
from cvflow.pipelines.kaggle_dogs.featurizing import features
from cvflow.pipelines.kaggle_dogs.fetching import fetch
from cvflow.pipelines.kaggle_dogs.prediction import predict
from cvflow.pipelines.kaggle_dogs.preparing import prepare
from cvflow.pipelines.kaggle_dogs.schema import (  # noqa: F401  (the schema, re-exported)
    DogBackbone, DogTransforms, DogTwinSize, KaggleDogsProfile,
)
from cvflow.pipelines.kaggle_dogs.submission import submit
from cvflow.pipelines.kaggle_dogs.training import train
from cvflow.pipelines.task import (
    DATA_PARAMS, RUN_COMMON, Effect, Number, Section, Stage, Task, fetch_stage, prepare_stage, run_files, submit_stage,
)

#: the runs: the head on train (valid for model selection), and on train_valid (the final head, submitted)
VARIANTS = ("train", "train_valid")


def _rel(path: Path) -> str:
    return path.as_posix()


FEATURES = _rel(features_file(Path()))

#: the comparison charts (dvc.yaml's top-level plots; static copies in the report)
CHARTS = {"Kaggle dog breeds loss per epoch, train and valid (13.14; valid loss = the Kaggle log loss, unclipped)": {
    "template": "linear", "x": "epoch",
    "y": {_rel(run_paths(Path(), "train").history): ["train_loss", "test_loss"],
          _rel(run_paths(Path(), "train_valid").history): "train_loss"}}}

REPORT = (Section(
    "13.14", "Dog breed identification (ImageNet dogs) on Kaggle",
    "A ResNet-34 pretrained on ImageNet stays frozen; a small head on its outputs learns the 120 breeds, and "
    "the submission holds each test image's softmax over them (Kaggle scores the log loss). The book prints its "
    "run on the dog_tiny sample (demo = True).",
    numbers=(Number("train run: valid log loss", "metrics/kaggle-dogs.json:valid_log_loss", 1.545,
                    book_note="the book: dog_tiny, 10 epochs"),
             Number("train run: valid accuracy", "metrics/kaggle-dogs.json:valid_acc"),
             Number("log loss of a uniform guess, ln(breeds)", "metrics/kaggle-dogs.json:uniform_log_loss"),
             Number("train run: train loss, last epoch", f"metrics/{EXPERIMENT}/train.json:train_loss", 1.240),
             Number("train_valid run: train loss, last epoch", f"metrics/{EXPERIMENT}/train_valid.json:train_loss",
                    1.217),
             Number("submission rows", "metrics/kaggle-dogs.json:submission_rows", fmt=".0f")),
    effects=(Effect("the head learns: valid log loss below a uniform guess's",
                    "metrics/kaggle-dogs.json:valid_log_loss", "<", "metrics/kaggle-dogs.json:uniform_log_loss"),),
    charts=tuple(CHARTS), runs=(f"{EXPERIMENT}/train", f"{EXPERIMENT}/train_valid")),)

#: what predict and evaluate read: the feature cache's settings, checked against params.yaml before it is used
#: (common.load_features), and the test-time flip
FEATURES_CHECKED = ("common.seed", "backbone.layer", "transforms", "views", "tta_flip")

TASK: Task[KaggleDogsProfile] = Task(
    name="kaggle-dogs", profile=KaggleDogsProfile, title="13.14 Kaggle dog breeds",
    stages=(
        fetch_stage(fetch, "data/kaggle-dogs", "demo | d2l | kaggle | local",
                    "Kaggle dog breeds (13.14) into data/kaggle-dogs/ (train/, test/, labels.csv)."),
        prepare_stage(prepare, "kaggle-dogs"),
        Stage("features", features, "data/features/kaggle-dogs.pt: `views` augmented views of each labelled image "
              "and the test view of every image (and its mirror with tta_flip), through the frozen backbone "
              "(book 13.14).", deps=("data/kaggle-dogs-prepared", str(SOURCE_MODEL)),
              params=("common.seed", "common.precision", "common.device", "common.num_workers", "reorg", "backbone",
                      "transforms", "views", "tta_flip"),
              outs=(FEATURES,)),
        Stage("train", train, "The head on a frozen pretrained backbone's features, Kaggle's dog breeds "
              "(book 13.14).", variants=VARIANTS, variant_help="train: on train, valid for model selection; "
              "train_valid: the same recipe on all labelled images (the final head)", recipe="recipe",
              deps=(FEATURES, "data/kaggle-dogs-prepared", str(SOURCE_MODEL)),
              params=(*RUN_COMMON, *DATA_PARAMS, "valid_ratio", "reorg", "backbone", "hidden", "transforms", "views",
                      "tta_flip", "recipe"), **run_files(EXPERIMENT), tracked=True),
        Stage("predict", predict, "data/submissions/kaggle-dogs.csv: the train_valid head's softmax for every "
              "test image, checked.", deps=(FEATURES, "data/kaggle-dogs", "data/kaggle-dogs-prepared",
                                            _rel(run_paths(Path(), "train_valid").model)),
              params=FEATURES_CHECKED, outs=("data/submissions/kaggle-dogs.csv",), tracked=True),
        Stage("evaluate", evaluate, "metrics/kaggle-dogs.json: valid log loss (Kaggle's metric) and accuracy of "
              "the train head, and ln(breeds).",
              deps=(FEATURES, "data/kaggle-dogs", "data/kaggle-dogs-prepared", _rel(run_paths(Path(), "train").model),
                    "data/submissions/kaggle-dogs.csv"),
              params=FEATURES_CHECKED, metrics=(_rel(metrics_file(Path())),), tracked=True),
        submit_stage(submit, "dog-breed-identification (13.14)", "data/submissions/kaggle-dogs.csv",
                     "the git commit and the MLflow run of the head"),
    ),
    charts=CHARTS,
    report=REPORT,
)
