"""Neural style transfer (book 13.12): ``rainier.jpg`` in the style of ``autumn-oak.jpg``, or your photos.

Stage (see ``dvc.yaml``)::

    cvflow stylize -> data/reports/style/rainier-autumn-oak.png (the image), ..._panel.png (content, style,
                      result side by side), metrics/style.json, metrics/style/rainier-autumn-oak_history.csv

``cvflow stylize --content FILE --style FILE [--out FILE]`` runs the same code on your photos and
writes only the image (the metrics go to the console and MLflow).

This module is the declaration alone (with the command's option handling); the schema is in ``schema.py``, the
stage's function in ``stylizing.py`` (with what the MLflow run of a pair holds). The stage depends on its
function's module, not on this one.
"""

from __future__ import annotations

from pathlib import Path

from cvflow.errors import UserError
from cvflow.pipelines.style.schema import StyleLossWeights, StyleNet, StyleOptim, StyleProfile  # noqa: F401
from cvflow.pipelines.style.stylizing import (EXPERIMENT, PHOTOS, image_file, metrics_file, panel_file, run_paths,
                                              stylize)
from cvflow.pipelines.task import RUN_COMMON, Effect, Number, Option, Section, Stage, Task, curves

#: the DVC stage's pair (style.<profile>'s content and style: rainier.jpg, autumn-oak.jpg) and its files
PAIR = "rainier-autumn-oak"
IMAGE, PANEL = image_file(Path(), PAIR).as_posix(), panel_file(Path(), PAIR).as_posix()
HISTORY = run_paths(Path(), PAIR).history.as_posix()
METRICS = metrics_file(Path()).as_posix()


def _size(text: str) -> list[list[int]]:
    """``300x450`` -> ``[[300, 450]]`` (one scale), the typed value of ``scales``."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise UserError(f"--size {text!r}: give HEIGHTxWIDTH in pixels, e.g. 300x450")
    return [[int(parts[0]), int(parts[1])]]


def _lbfgs_lr(values: dict) -> dict:
    """L-BFGS takes steps of lr along its direction: lr 1 unless --lr says otherwise."""
    if values.get("optimizer") == "lbfgs" and values.get("lr") is None:
        values = {**values, "lr": 1.0}
    return values


#: the comparison charts (dvc.yaml's top-level plots; static copies in the report)
CHARTS = {"Style transfer losses per step (13.12; the style term at the effective weight 1e4)": curves(
    HISTORY, y=["content_loss", "style_loss", "tv_loss"], x="step")}

REPORT = (Section(
    "13.12", "Neural style transfer",
    "The pixels of a synthesised image are the only parameters: starting from the content photo, they are "
    "optimised so that a pretrained VGG-19's deep features stay close to the content photo's while the Gram "
    "matrices of its features approach the style image's; a total variation term keeps the image smooth. The book "
    "prints no numbers here, only the picture.",
    numbers=(Number("style loss, start", "metrics/style.json:start.style_loss", fmt=".3g"),
             Number("style loss, end", "metrics/style.json:final.style_loss", fmt=".3g"),
             Number("colour histogram distance to the style image, start",
                    "metrics/style.json:colour_hist_distance_to_style.start"),
             Number("colour histogram distance to the style image, end",
                    "metrics/style.json:colour_hist_distance_to_style.final"),
             Number("SSIM of the result to the content photo", "metrics/style.json:ssim_to_content.final"),
             Number("SSIM of the style image to the content photo", "metrics/style.json:ssim_to_content.style_image")),
    effects=(Effect("the style loss falls", "metrics/style.json:final.style_loss", "<",
                    "metrics/style.json:start.style_loss"),
             Effect("the result's colours move toward the style image's",
                    "metrics/style.json:colour_hist_distance_to_style.final", "<",
                    "metrics/style.json:colour_hist_distance_to_style.start"),
             Effect("the content stays: the result is closer to the content photo than the style image is",
                    "metrics/style.json:ssim_to_content.final", ">", "metrics/style.json:ssim_to_content.style_image")),
    pictures=(PANEL,), charts=tuple(CHARTS), runs=(f"{EXPERIMENT}/{PAIR}",)),)

TASK: Task[StyleProfile] = Task(
    name="style", profile=StyleProfile, title="13.12 neural style transfer",
    stages=(
        Stage("stylize", stylize, "Neural style transfer (book 13.12): the content photo redrawn in the style "
              "image's colours and strokes.", top_level=True, adjust=_lbfgs_lr, options=(
                  Option("content", Path, "your content photo (default: style.<profile>.content from data/photos/, "
                                          "the DVC stage)", kwarg=True),
                  Option("style", Path, "your style image (with --content)", kwarg=True),
                  Option("out", Path, "the PNG to write (default with --content: "
                                      "CONTENT-in-the-style-of-STYLE.png here)", kwarg=True),
                  Option("steps", int, "steps per scale (default: style.<profile>.steps)", key="steps"),
                  Option("size", str, "HEIGHTxWIDTH: one scale of that size (default: style.<profile>.scales)",
                         key="scales", convert=_size),
                  Option("optimizer", str, "adam (the book's) | lbfgs (lr 1 unless --lr)", key="optim.name",
                         choices=("adam", "lbfgs")),
                  Option("lr", float, "learning rate (default: style.<profile>.optim.lr)", key="optim.lr")),
              deps=(PHOTOS,), params=(*RUN_COMMON, ""),
              outs=(IMAGE, PANEL, HISTORY), metrics=(METRICS,), tracked=True),
    ),
    charts=CHARTS,
    report=REPORT,
)
