"""Anchor boxes (13.4) and multiscale anchors (13.5): the book's figures, drawn by :mod:`.draw`."""

from __future__ import annotations

from cvflow.pipelines.task import Stage, Task

TASK: Task[None] = Task(
    name="anchors", module=f"{__name__}.draw", title="13.4-13.5 anchor boxes",
    stages=(Stage("figures", "figures", "Anchor boxes (13.4) and multiscale anchors (13.5) on data/photos/catdog.jpg "
                  "into data/reports/anchors/.", deps=("data/photos",), outs=("data/reports/anchors",),
                  echo_paths=True),),
)
