"""Transposed convolution (13.11): the bilinear kernel doubling catdog.jpg, drawn by :mod:`.draw`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cvflow.pipelines.task import Section, Stage, Task


def figures(params: Any, root: Path) -> dict[str, Path]:
    """The stage's function: :func:`.draw.figures`, imported when it runs (it imports torch; the declaration, read
    by every command, stays cheap)."""
    from cvflow.pipelines.upsampling_figures.draw import figures as draw

    return draw(params, root)

TASK: Task[None] = Task(
    name="upsampling", title="13.11 transposed convolution (figure)",
    stages=(Stage("figures", figures, "Transposed convolution (13.11): the bilinear kernel doubles "
                  "data/photos/catdog.jpg, data/reports/upsampling/.", deps=("data/photos",),
                  outs=("data/reports/upsampling",), echo_paths=True),),
    report=(Section("13.10", "Transposed convolution",
                    "A transposed convolution broadcasts every input element through the kernel: it enlarges its "
                    "input, the reverse of a convolution's shapes. Initialised with the bilinear kernel (13.11.3), "
                    "a stride-2 transposed convolution doubles catdog.jpg.",
                    pictures=("data/reports/upsampling/catdog_x2.png",)),),
)
