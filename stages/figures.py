"""`cvflow figures NAME`: the book's explanatory figures as PNGs in data/reports/."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cvflow.stages.common import ParamsOption, SetOption, load

app = typer.Typer(help="Draw the book's explanatory figures as PNGs under data/reports/.", no_args_is_help=True)


@app.callback()
def _figures() -> None:
    """Draw the book's explanatory figures as PNGs under data/reports/."""


@app.command("anchors")
def anchors(
    params_file: Path = ParamsOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """Anchor boxes (13.4) and multiscale anchors (13.5) on data/photos/catdog.jpg into data/reports/anchors/."""
    from cvflow.pipelines import anchors as pipeline

    params, root = load(params_file, overrides)
    for path in pipeline.figures(params, root).values():
        typer.echo(str(path))


@app.command("augmentation")
def augmentation(
    params_file: Path = ParamsOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """Image augmentation (13.1): 8 augmented copies of data/photos/cat1.jpg per augmenter, data/reports/augmentation/."""
    from cvflow.pipelines import augmentation_figures as pipeline

    params, root = load(params_file, overrides)
    for path in pipeline.figures(params, root).values():
        typer.echo(str(path))


@app.command("upsampling")
def upsampling(
    params_file: Path = ParamsOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """Transposed convolution (13.11): the bilinear kernel doubles data/photos/catdog.jpg, data/reports/upsampling/."""
    from cvflow.pipelines import upsampling_figures as pipeline

    params, root = load(params_file, overrides)
    for path in pipeline.figures(params, root).values():
        typer.echo(str(path))
