"""`cvflow fetch DATASET`: download, verify and unpack a data set, or generate its offline twin."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cvflow.stages.common import ParamsOption, SetOption, load

app = typer.Typer(help="Get a data set into data/: download (SHA-1 checked), a local copy, or the offline demo twin.",
                  no_args_is_help=True)


@app.command("hotdog")
def hotdog(
    source: Optional[str] = typer.Option(None, help="demo | d2l | local (default: hotdog.<profile>.data.source)"),
    path: Optional[Path] = typer.Option(None, help="folder or archive for --source local"),
    params_file: Path = ParamsOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """The hot dog set (book 13.2) into data/hotdog/{train,test}/{hotdog,not-hotdog}/."""
    from cvflow.pipelines import hotdog as pipeline

    params, root = load(params_file, overrides, **{"hotdog.data.source": source, "hotdog.data.path": path})
    pipeline.fetch(params, root, source=source, path=path)
