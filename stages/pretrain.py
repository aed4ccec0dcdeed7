"""`cvflow pretrain TASK`: make the source model a fine-tune starts from."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cvflow.stages.common import ParamsOption, SetOption, load

app = typer.Typer(help="Make a fine-tune's starting weights: ImageNet weights, a model pretrained on generated "
                       "data (demo), random, or your own file.", no_args_is_help=True)


@app.command("hotdog")
def hotdog(
    weights: Optional[str] = typer.Option(None, help="imagenet | source | none | PATH.pth (default: hotdog.<profile>.weights)"),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N | mps"),
    params_file: Path = ParamsOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """data/models/hotdog/source.pt: the ResNet-18 that `train hotdog --variant finetune` starts from."""
    from cvflow.pipelines import hotdog as pipeline

    params, root = load(params_file, overrides, **{"hotdog.weights": weights, "common.device": device})
    pipeline.pretrain(params, root)
