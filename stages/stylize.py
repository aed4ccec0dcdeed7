"""`cvflow stylize`: neural style transfer (book 13.12), the book's photos or your own."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from cvflow.errors import UserError
from cvflow.stages.common import ParamsOption, SetOption, load


class StyleOptimizer(str, Enum):
    adam = "adam"
    lbfgs = "lbfgs"


def _size(text: Optional[str]) -> Optional[str]:
    """``300x450`` -> ``[[300, 450]]`` (one scale), for the params override."""
    if text is None:
        return None
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise UserError(f"--size {text!r}: give HEIGHTxWIDTH in pixels, e.g. 300x450")
    return f"[[{int(parts[0])}, {int(parts[1])}]]"


def stylize(
    content: Optional[Path] = typer.Option(None, help="your content photo (default: style.<profile>.content "
                                                      "from data/photos/, the DVC stage)"),
    style: Optional[Path] = typer.Option(None, help="your style image (with --content)"),
    out: Optional[Path] = typer.Option(None, help="the PNG to write (default with --content: "
                                                  "CONTENT-in-the-style-of-STYLE.png here)"),
    steps: Optional[int] = typer.Option(None, help="steps per scale (default: style.<profile>.steps)"),
    size: Optional[str] = typer.Option(None, help="HEIGHTxWIDTH: one scale of that size (default: style.<profile>.scales)"),
    optimizer: Optional[StyleOptimizer] = typer.Option(None, help="adam (the book's) | lbfgs (lr 1 unless --lr)"),
    lr: Optional[float] = typer.Option(None, help="learning rate (default: style.<profile>.optim.lr)"),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N | mps"),
    params_file: Path = ParamsOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """Neural style transfer (book 13.12): the content photo redrawn in the style image's colours and strokes."""
    from cvflow.pipelines import style as pipeline

    name = optimizer.value if optimizer is not None else None
    if name == "lbfgs" and lr is None:
        lr = 1.0
    params, root = load(params_file, overrides, **{
        "style.steps": steps, "style.scales": _size(size), "style.optim.name": name, "style.optim.lr": lr,
        "common.device": device})
    pipeline.stylize(params, root, content=content, style=style, out=out)
