"""`cvflow prepare DATASET`: reorganise a fetched data set the way its chapter section does."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cvflow.stages.common import ParamsOption, SetOption, load

app = typer.Typer(help="Reorganise a fetched data set (the book's train / valid / train_valid / test split), "
                       "with hard links or manifests instead of copies.", no_args_is_help=True)


def _register(name: str, section: str, module: str) -> None:
    def command(
        valid_ratio: Optional[float] = typer.Option(None, help=f"default: {section}.<profile>.valid_ratio"),
        reorg: Optional[str] = typer.Option(None, help="link | manifest"),
        params_file: Path = ParamsOption,
        overrides: Optional[list[str]] = SetOption,
    ) -> None:
        import importlib

        pipeline = importlib.import_module(f"cvflow.pipelines.{module}")
        params, root = load(params_file, overrides, **{f"{section}.valid_ratio": valid_ratio,
                                                        f"{section}.reorg": reorg})
        pipeline.prepare(params, root)

    command.__doc__ = (f"data/{name}-prepared/{{train,valid,train_valid,test/unknown}}: per class "
                       "max(floor(n_min x valid_ratio), 1) images to valid (the book's rule), seeded.")
    app.command(name)(command)


_register("kaggle-cifar10", "kaggle_cifar10", "kaggle_cifar10")
_register("kaggle-dogs", "kaggle_dogs", "kaggle_dogs")
