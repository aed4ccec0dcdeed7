"""Banana detection (book 13.6-13.7): the data, TinySSD trained, evaluated (mAP) and drawn.

Stages (see ``dvc.yaml``)::

    fetch bananas    -> data/banana-detection/bananas_{train,val}/
    train bananas    -> data/models/bananas/tinyssd.pt, metrics/bananas/tinyssd{.json,_history.csv}
    evaluate bananas -> metrics/bananas.json
    predict bananas  -> data/reports/bananas/predictions.png

This module is the declaration alone; the schema is in ``schema.py``, each stage's function in its own module
(``fetching``, ``training``, ``evaluation``, ``prediction``), what they share in ``common.py``. A stage depends on
its own function's module, not on this one.
"""

from __future__ import annotations

from pathlib import Path

from cvflow.pipelines.bananas.common import DATA, EXPERIMENT, RUN, run_paths
from cvflow.pipelines.bananas.evaluation import evaluate, metrics_file
from cvflow.pipelines.bananas.fetching import fetch
from cvflow.pipelines.bananas.prediction import predict, predictions_file
from cvflow.pipelines.bananas.schema import BananasProfile  # noqa: F401  (the schema, re-exported)
from cvflow.pipelines.bananas.training import train
from cvflow.pipelines.task import (DATA_PARAMS, RUN_COMMON, Effect, Number, Section, Stage, Task, curves, fetch_stage,
                                   run_files)

MODEL = run_paths(Path()).model.as_posix()  # data/models/bananas/tinyssd.pt
METRICS = metrics_file(Path()).as_posix()  # metrics/bananas.json
PREDICTIONS = predictions_file(Path()).as_posix()  # data/reports/bananas/predictions.png

#: the comparison charts (dvc.yaml's top-level plots; static copies in the report)
CHARTS = {"bananas class error per epoch (validation; the baseline predicts background everywhere)": curves(
    "metrics/bananas/tinyssd_history.csv", y=["test_class_err", "test_class_err_baseline"])}

REPORT = (
    Section("13.6", "The object detection dataset",
            "The banana detection set: 256 x 256 images with one banana each, its box as (class, x1, y1, x2, y2) "
            "scaled to [0, 1]; 1,000 training and 100 validation images in the book's set.",
            numbers=(Number("validation images", "metrics/bananas.json:val_images", 100, fmt=".0f",
                            book_note="the demo twin is smaller"),)),
    Section("13.7", "Single shot multibox detection",
            "TinySSD predicts a class and box offsets for every anchor of five feature maps at once, and is trained "
            "on anchor labels (13.4) with cross-entropy and an L1 box loss; non-maximum suppression keeps its "
            "best boxes.",
            numbers=(Number("class error, last epoch (training images)", f"metrics/{EXPERIMENT}/{RUN}.json:train_class_err",
                            3.27e-3, fmt=".2e", book_note="the book prints the training images' error"),
                     Number("bbox MAE, last epoch (training images)", f"metrics/{EXPERIMENT}/{RUN}.json:train_bbox_mae",
                            3.08e-3, fmt=".2e"),
                     Number("class error, validation", "metrics/bananas.json:val_class_err", fmt=".2e"),
                     Number("class error, validation, all-background baseline",
                            "metrics/bananas.json:val_class_err_baseline", fmt=".2e"),
                     Number("bbox MAE, validation", "metrics/bananas.json:val_bbox_mae", fmt=".2e"),
                     Number("mAP@0.5, validation", "metrics/bananas.json:map_50"),
                     Number("mAP@[0.5:0.95], validation", "metrics/bananas.json:map")),
            effects=(Effect("the detector beats its all-background floor: lower anchor class error on validation "
                            "images than predicting background everywhere", "metrics/bananas.json:val_class_err", "<",
                            "metrics/bananas.json:val_class_err_baseline"),
                     Effect("it finds bananas: mAP@0.5 on validation images above 0.5", "metrics/bananas.json:map_50",
                            ">", 0.5)),
            pictures=(PREDICTIONS,), charts=tuple(CHARTS), runs=(f"{EXPERIMENT}/{RUN}",)),
)

TASK: Task[BananasProfile] = Task(
    name="bananas", profile=BananasProfile, title="13.6-13.7 TinySSD on bananas",
    stages=(
        fetch_stage(fetch, DATA, "demo | d2l | local",
                    "Banana detection (13.6) into data/banana-detection/bananas_{train,val}/."),
        Stage("train", train, "TinySSD on the banana detection set (book 13.7).", recipe="recipe", deps=(DATA,),
              # the thresholds go into the registered model: its served answers use them
              params=(*RUN_COMMON, *DATA_PARAMS, "image_size", "recipe", "prior_prob", "augment", "input_max",
                      "nms_threshold", "conf_threshold"),
              **run_files(EXPERIMENT, RUN), tracked=True),
        Stage("evaluate", evaluate, "metrics/bananas.json: mAP@0.5, mAP@[0.5:0.95], class error (and its "
              "all-background baseline), bbox MAE.", deps=(DATA, MODEL),
              params=("common.device", "common.precision", "image_size", "input_max", "nms_threshold"),
              metrics=(METRICS,), tracked=True),
        Stage("predict", predict, "data/reports/bananas/predictions.png: boxes above conf_threshold on "
              "validation images.", deps=(DATA, MODEL),
              params=("common.device", "common.precision", "image_size", "input_max", "nms_threshold", "conf_threshold",
                      "grid_images"), outs=(PREDICTIONS,), tracked=True),
    ),
    charts=CHARTS,
    report=REPORT,
)
