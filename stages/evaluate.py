"""`cvflow evaluate TASK`: test the trained models, write the task's metrics JSON and pictures."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cvflow.stages.common import ParamsOption, SetOption, load

app = typer.Typer(help="Evaluate trained models on the test set: metrics JSON (dvc metrics) and labelled pictures.",
                  no_args_is_help=True)


@app.command("hotdog")
def hotdog(
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N | mps"),
    params_file: Path = ParamsOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """metrics/hotdog.json: test accuracy of fine-tune and scratch, and their prediction grids."""
    from cvflow.pipelines import hotdog as pipeline

    params, root = load(params_file, overrides, **{"common.device": device})
    pipeline.evaluate(params, root)


@app.command("bananas")
def bananas(
    params_file: Path = ParamsOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """metrics/bananas.json: mAP@0.5, mAP@[0.5:0.95], class error (and its all-background baseline), bbox MAE."""
    from cvflow.pipelines import bananas as pipeline

    params, root = load(params_file, overrides)
    pipeline.evaluate(params, root)


@app.command("cifar10")
def cifar10(
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N | mps"),
    params_file: Path = ParamsOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """metrics/cifar10-augmentation.json: test accuracy with and without augmentation, and the difference."""
    from cvflow.pipelines import cifar10_augmentation as pipeline

    params, root = load(params_file, overrides, **{"common.device": device})
    pipeline.evaluate(params, root)


@app.command("kaggle-cifar10")
def kaggle_cifar10(
    labels: Optional[Path] = typer.Option(None, help="id,label CSV of the test images: also score the submission"),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N | mps"),
    params_file: Path = ParamsOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """metrics/kaggle-cifar10.json: valid accuracy (and per class); with --labels the submission's test accuracy."""
    from cvflow.pipelines import kaggle_cifar10 as pipeline

    params, root = load(params_file, overrides, **{"common.device": device})
    pipeline.evaluate(params, root, labels=labels)


@app.command("kaggle-dogs")
def kaggle_dogs(
    params_file: Path = ParamsOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """metrics/kaggle-dogs.json: valid log loss (Kaggle's metric) and accuracy of the train head, and ln(breeds)."""
    from cvflow.pipelines import kaggle_dogs as pipeline

    params, root = load(params_file, overrides)
    pipeline.evaluate(params, root)


@app.command("voc")
def voc(
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N | mps"),
    params_file: Path = ParamsOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """metrics/voc.json: mean and per-class IoU and pixel accuracy on whole val images (and the
    all-background baseline); data/reports/voc/predictions.png."""
    from cvflow.pipelines import voc as pipeline

    params, root = load(params_file, overrides, **{"common.device": device})
    pipeline.evaluate(params, root)
