"""`cvflow predict TASK`: draw a trained model's predictions for people to look at."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cvflow.stages.common import ParamsOption, SetOption, load

app = typer.Typer(help="Draw predictions on held-out images (PNG, logged to MLflow).", no_args_is_help=True)


@app.command("bananas")
def bananas(
    params_file: Path = ParamsOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """data/reports/bananas/predictions.png: boxes above conf_threshold on validation images."""
    from cvflow.pipelines import bananas as pipeline

    params, root = load(params_file, overrides)
    pipeline.predict(params, root)


@app.command("kaggle-cifar10")
def kaggle_cifar10(
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N | mps"),
    params_file: Path = ParamsOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """data/submissions/kaggle-cifar10.csv: every test image through the train_valid model, checked, id,label."""
    from cvflow.pipelines import kaggle_cifar10 as pipeline

    params, root = load(params_file, overrides, **{"common.device": device})
    pipeline.predict(params, root)


@app.command("kaggle-dogs")
def kaggle_dogs(
    params_file: Path = ParamsOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """data/submissions/kaggle-dogs.csv: the train_valid head's softmax for every test image, checked."""
    from cvflow.pipelines import kaggle_dogs as pipeline

    params, root = load(params_file, overrides)
    pipeline.predict(params, root)
