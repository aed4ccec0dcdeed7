"""`cvflow submit TASK`: send a task's submission file to its Kaggle competition (never run by DVC)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cvflow.stages.common import ParamsOption, SetOption, load

app = typer.Typer(help="Send a submission file to Kaggle (needs Kaggle credentials and the competition's rules "
                       "accepted).", no_args_is_help=True)


@app.command("kaggle-cifar10")
def kaggle_cifar10(
    file: Optional[Path] = typer.Option(None, "--file", help="the CSV to send (default "
                                        "data/submissions/kaggle-cifar10.csv in the project folder)"),
    message: Optional[str] = typer.Option(None, "--message", help="the submission's description (default: "
                                          "the git commit and the newest finished MLflow run)"),
    params_file: Path = ParamsOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """Submit to Kaggle competition cifar-10 (13.13)."""
    from cvflow.pipelines import kaggle_cifar10 as pipeline

    params, root = load(params_file, overrides)
    pipeline.submit(params, root, file=file, message=message)


@app.command("kaggle-dogs")
def kaggle_dogs(
    file: Optional[Path] = typer.Option(None, "--file", help="the CSV to send (default "
                                        "data/submissions/kaggle-dogs.csv in the project folder)"),
    message: Optional[str] = typer.Option(None, "--message", help="the submission's description (default: "
                                          "the git commit and the MLflow run of the head)"),
    params_file: Path = ParamsOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """Submit to Kaggle competition dog-breed-identification (13.14), after checking the file."""
    from cvflow.pipelines import kaggle_dogs as pipeline

    params, root = load(params_file, overrides)
    pipeline.submit(params, root, file=file, message=message)
