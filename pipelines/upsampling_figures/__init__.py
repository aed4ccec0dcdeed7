"""Transposed convolution (13.11): the bilinear kernel doubling catdog.jpg, drawn by :mod:`.draw`."""

from __future__ import annotations

from cvflow.pipelines.task import Stage, Task

TASK: Task[None] = Task(
    name="upsampling", module=f"{__name__}.draw", title="13.11 transposed convolution (figure)",
    stages=(Stage("figures", "figures", "Transposed convolution (13.11): the bilinear kernel doubles "
                  "data/photos/catdog.jpg, data/reports/upsampling/.", deps=("data/photos",),
                  outs=("data/reports/upsampling",), echo_paths=True),),
)
