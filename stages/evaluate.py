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
