"""What every stage command shares: the project folder, params loading with overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cvflow.params import Params, load_params

ParamsOption = typer.Option(Path("params.yaml"), "--params", help="params file; its folder is the project folder")
SetOption = typer.Option(None, "--set", metavar="KEY=VALUE",
                         help="override one param for this run, e.g. --set hotdog.demo.finetune.epochs=2 (repeatable)")


def load(params_file: Path, overrides: Optional[list[str]] = None, **task_overrides) -> tuple[Params, Path]:
    """Validate the whole params file (with overrides); return it and the project folder.

    ``task_overrides`` maps dotted keys relative to the active profile of a task, e.g.
    ``{"hotdog.finetune.epochs": 3}`` sets ``hotdog.<profile>.finetune.epochs``; None values are ignored.
    """
    from cvflow.params import read_yaml

    overrides = list(overrides or [])
    data = read_yaml(params_file)
    if task_overrides:
        profile = data.get("profile", "demo")
        for key, value in task_overrides.items():
            if value is not None:
                task, _, rest = key.partition(".")
                overrides.append(f"{task}.{profile}.{rest}={value}" if task != "common" else f"{key}={value}")
    params = load_params(params_file, overrides, data=data)
    return params, params_file.resolve().parent
