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
