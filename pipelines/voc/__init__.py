"""Semantic segmentation on Pascal VOC2012 (book 13.9-13.11): the data, the book's FCN trained, scored, drawn.

Stages (see ``dvc.yaml``)::

    fetch voc    -> data/voc/VOCdevkit/VOC2012/{JPEGImages,SegmentationClass,ImageSets}
    train voc    -> data/models/voc/fcn.pt, metrics/voc/fcn{.json,_history.csv}, data/reports/voc/fcn_curves.png
    evaluate voc -> metrics/voc.json (whole val images), data/reports/voc/predictions.png

Training follows the book: random ``crop_size`` crops (image and mask at the same place), images
smaller than the crop dropped, ImageNet normalisation, the per-epoch test metrics on random crops
of the val images as ``train_ch13`` measures them. ``evaluate`` then predicts every val image
whole (padded to a multiple of 32, the logits cropped back) and scores that.

This module is the declaration alone; the schema is in ``schema.py``, each stage's function in its own module
(``fetching``, ``training``, ``evaluation``), what they share in ``common.py``. A stage depends on its own
function's module, not on this one.
"""

from __future__ import annotations

from pathlib import Path

from cvflow.pipelines.task import (DATA_PARAMS, RUN_COMMON, Effect, Number, Section, Stage, Task, curves, fetch_stage,
                                   run_files)
from cvflow.pipelines.voc.common import DATA, EXPERIMENT, RUN, run_paths
from cvflow.pipelines.voc.evaluation import evaluate, metrics_file, predictions_file
from cvflow.pipelines.voc.fetching import fetch
from cvflow.pipelines.voc.schema import VocProfile, VocTwinSize  # noqa: F401  (the schema, re-exported)
from cvflow.pipelines.voc.training import source_model, train

SOURCE_MODEL = source_model(Path()).as_posix()  # data/models/hotdog/source.pt: what weights: source starts from
MODEL = run_paths(Path()).model.as_posix()  # data/models/voc/fcn.pt
METRICS = metrics_file(Path()).as_posix()  # metrics/voc.json
PREDICTIONS = predictions_file(Path()).as_posix()  # data/reports/voc/predictions.png

#: the comparison charts (dvc.yaml's top-level plots; static copies in the report)
CHARTS = {"VOC2012 FCN mean IoU per epoch (val crops; the baseline predicts background everywhere)": curves(
    "metrics/voc/fcn_history.csv", y=["test_miou", "test_miou_baseline"])}

REPORT = (
    Section("13.9", "Semantic segmentation and the dataset",
            "Pascal VOC2012 labels every pixel with one of 21 classes (background included), a band of 255 "
            "marking uncertain borders; the book trains on random 320 x 480 crops and drops smaller images "
            "(1,114 training and 1,078 validation images remain).",
            numbers=(Number("validation images", "metrics/voc.json:val_images", 1078, fmt=".0f",
                            book_note="the book counts the val images at least 320 x 480; here every val image, "
                                      "scored whole"),)),
    Section("13.11", "Fully convolutional networks",
            "A ResNet-18 body, a 1 x 1 convolution to 21 channels and a transposed convolution initialised as "
            "bilinear upsampling (x32) turn an image into a class per pixel.",
            numbers=(Number("pixel accuracy, validation", "metrics/voc.json:pixel_acc", 0.852,
                            book_note="the book: on 320 x 480 val crops; here on whole val images"),
                     Number("pixel accuracy, all-background baseline", "metrics/voc.json:pixel_acc_baseline"),
                     Number("mean IoU, validation", "metrics/voc.json:miou"),
                     Number("mean IoU, all-background baseline", "metrics/voc.json:miou_baseline")),
            effects=(Effect("the FCN segments objects: mean IoU at least twice the all-background baseline's",
                            "metrics/voc.json:miou", ">=", "metrics/voc.json:miou_baseline", factor=2.0),
                     Effect("pixel accuracy above predicting background everywhere", "metrics/voc.json:pixel_acc", ">",
                            "metrics/voc.json:pixel_acc_baseline")),
            pictures=(PREDICTIONS,), charts=tuple(CHARTS), runs=(f"{EXPERIMENT}/{RUN}",)),
)

TASK: Task[VocProfile] = Task(
    name="voc", profile=VocProfile, title="13.9-13.11 semantic segmentation",
    stages=(
        fetch_stage(fetch, DATA, "demo | d2l | local", "Pascal VOC2012 segmentation (13.9) into data/voc/VOCdevkit/VOC2012/."),
        Stage("train", train, "The book's FCN on Pascal VOC2012 (book 13.11): random crops, ResNet-18 body, "
              "bilinear upsampling.", recipe="recipe", deps=(DATA, SOURCE_MODEL),
              params=(*RUN_COMMON, *DATA_PARAMS, "crop_size", "boundary", "weights", "recipe"),
              **run_files(EXPERIMENT, RUN), tracked=True),
        Stage("evaluate", evaluate, "metrics/voc.json: mean and per-class IoU and pixel accuracy on whole val "
              "images (and the all-background baseline); data/reports/voc/predictions.png.",
              deps=(DATA, MODEL),
              params=("common.device", "common.precision", "boundary", "grid_images"),
              outs=(PREDICTIONS,), metrics=(METRICS,), tracked=True),
    ),
    charts=CHARTS,
    report=REPORT,
)
