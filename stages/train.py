"""`cvflow train TASK`: train a model with the engine, tracked in MLflow; resumes an interrupted run."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from cvflow.stages.common import ParamsOption, SetOption, load

app = typer.Typer(help="Train a model (checkpoint every epoch; rerun to resume; torchrun for several GPUs).",
                  no_args_is_help=True)


class HotdogVariant(str, Enum):
    finetune = "finetune"
    scratch = "scratch"


@app.command("hotdog")
def hotdog(
    variant: HotdogVariant = typer.Option(..., help="finetune: from the source model, new head at 10x lr; "
                                                     "scratch: random init, one lr"),
    epochs: Optional[int] = typer.Option(None, help="override the recipe's epochs"),
    lr: Optional[float] = typer.Option(None, help="override the recipe's learning rate"),
    batch_size: Optional[int] = typer.Option(None, help="override the recipe's (global) batch size"),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N | mps"),
    params_file: Path = ParamsOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """Fine-tune vs scratch on the hot dog set (book 13.2)."""
    from cvflow.pipelines import hotdog as pipeline

    v = variant.value
    params, root = load(params_file, overrides, **{
        f"hotdog.{v}.epochs": epochs, f"hotdog.{v}.optim.lr": lr, f"hotdog.{v}.batch_size": batch_size,
        "common.device": device,
    })
    pipeline.train(params, root, v)


@app.command("bananas")
def bananas(
    epochs: Optional[int] = typer.Option(None, help="override the recipe's epochs"),
    lr: Optional[float] = typer.Option(None, help="override the recipe's learning rate"),
    batch_size: Optional[int] = typer.Option(None, help="override the recipe's (global) batch size"),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N | mps"),
    params_file: Path = ParamsOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """TinySSD on the banana detection set (book 13.7)."""
    from cvflow.pipelines import bananas as pipeline

    params, root = load(params_file, overrides, **{
        "bananas.recipe.epochs": epochs, "bananas.recipe.optim.lr": lr, "bananas.recipe.batch_size": batch_size,
        "common.device": device,
    })
    pipeline.train(params, root)
