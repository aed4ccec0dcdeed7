"""`cvflow features TASK`: run a frozen backbone once per image and view, and store its features."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cvflow.stages.common import ParamsOption, SetOption, load

app = typer.Typer(help="Compute a frozen backbone's features once (the head then trains on them).",
                  no_args_is_help=True)


@app.command("kaggle-dogs")
def kaggle_dogs(
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N | mps"),
    params_file: Path = ParamsOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """data/features/kaggle-dogs.pt: `views` augmented views of each labelled image and the test view of every
    image (and its mirror with tta_flip), through the frozen backbone (book 13.14)."""
    from cvflow.pipelines import kaggle_dogs as pipeline

    params, root = load(params_file, overrides, **{"common.device": device})
    pipeline.features(params, root)
