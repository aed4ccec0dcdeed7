"""How a batch's per-example losses become the loss it back-propagates (every task's, one rule)."""

from __future__ import annotations

import torch

REDUCTIONS = ("mean", "sum")


def reduce_loss(losses: torch.Tensor, reduction: str) -> torch.Tensor:
    """``mean`` of the per-example losses, or their ``sum``. The book's ``train_batch_ch13`` does
    ``l.sum().backward()``, so its learning rates for 13.1, 13.2, 13.11, 13.13 and 13.14 assume a
    summed loss; TinySSD in 13.7 back-propagates ``l.mean()``."""
    if reduction == "sum":
        return losses.sum()
    if reduction == "mean":
        return losses.mean()
    raise ValueError(f"loss reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
