"""Pictures for people: training curves and labelled image grids (PNG, written atomically)."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # headless; no display needed
import matplotlib.pyplot as plt  # noqa: E402

from cvflow.fileio import atomic_path  # noqa: E402

if TYPE_CHECKING:  # only in annotations: drawing curves imports no torch
    import torch


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes (the same settings as the files written here), and closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def line_chart(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], title: str = "", xlabel: str = "epoch",
               ylabel: str = "") -> bytes:
    """One line per series (``label -> (x, y)``), as PNG bytes: a static copy of a ``dvc plots`` chart."""
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for index, (label, (xs, ys)) in enumerate(series.items()):
        ax.plot(list(xs), list(ys), "-o" if len(xs) <= 30 else "-", color=f"C{index}", markersize=3, label=label)
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return png_bytes(fig)


def training_curves(histories: dict[str, list[dict]], path: Path, title: str = "", metric: str = "acc",
                    metric_label: str = "accuracy") -> Path:
    """Loss and one metric per epoch (the book's Animator plot); one colour per run.

    Solid lines are ``train_*``, dashed ``test_*``. ``metric`` names the right panel's
    columns (``train_<metric>``, ``test_<metric>``); accuracies get the axis 0..1. A
    ``test_<metric>_baseline`` column (what a trivial predictor scores) is drawn dotted.
    """
    from matplotlib.ticker import MaxNLocator

    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.8))
    for index, (run, history) in enumerate(histories.items()):
        epochs = [row["epoch"] for row in history]
        color = f"C{index}"  # one colour per run; solid = train, dashed = test, dotted = baseline
        panels = (("train_loss", ax_loss, "-"), ("test_loss", ax_loss, "--"), (f"train_{metric}", ax_metric, "-"),
                  (f"test_{metric}", ax_metric, "--"), (f"test_{metric}_baseline", ax_metric, ":"))
        for key, ax, style in panels:
            if history and key in history[0]:
                ax.plot(epochs, [row[key] for row in history], style, color=color,
                        marker="" if style == ":" else "o", label=f"{run} {key}")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_metric.set_xlabel("epoch")
    ax_metric.set_ylabel(metric_label)
    if metric == "acc":
        ax_metric.set_ylim(0, 1.02)
    for ax in (ax_loss, ax_metric):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def prediction_grid(
    images: Sequence[torch.Tensor], predicted: Sequence[str], actual: Sequence[str], path: Path,
    columns: int = 8, title: str = "",
) -> Path:
    """Images (uint8 CHW) with 'predicted / true' captions, green when right, red when wrong."""
    count = len(images)
    rows = max(1, math.ceil(count / columns))
    cols = min(columns, max(count, 1))
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.1 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, pred, true in zip(axes.flat, images, predicted, actual):
        ax.imshow(image.permute(1, 2, 0).cpu().numpy())
        ax.set_title(f"{pred}\n(true: {true})", fontsize=8, color="green" if pred == true else "red")
    if title:
        fig.suptitle(title)
    return _save(fig, path)
