"""Optimizers and schedules from params, with parameter groups (the new head at a higher rate)."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn


def head_and_body(model: nn.Module, head: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    head_ids = {id(p) for p in head.parameters()}
    body = [p for p in model.parameters() if id(p) not in head_ids]
    return list(head.parameters()), body


def build_optimizer(groups: Iterable[dict], cfg) -> torch.optim.Optimizer:
    """``groups``: torch parameter groups, each may carry ``lr_mult``; ``cfg``: :class:`cvflow.params.Optim`.

    Only parameters that train (``requires_grad``) are given to the optimizer: a frozen one
    (:mod:`cvflow.engine.freeze`) is no optimizer's, and a group left empty (a frozen body's) goes.
    """
    param_groups = []
    for group in groups:
        group = dict(group)
        params = group["params"]
        group["params"] = [p for p in ([params] if isinstance(params, torch.Tensor) else params) if p.requires_grad]
        if not group["params"]:
            continue
        mult = group.pop("lr_mult", 1.0)
        group["lr"] = cfg.lr * mult
        param_groups.append(group)
    if cfg.name == "sgd":
        return torch.optim.SGD(param_groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.name == "adam":
        return torch.optim.Adam(param_groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(param_groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg, epochs: int, steps_per_epoch: int = 1):
    """The schedule named by ``cfg.scheduler``, or None.

    ``onecycle`` steps after every batch (it needs ``steps_per_epoch``); the others once per epoch.
    The engine tells them apart with :func:`steps_per_batch`.
    """
    if cfg.scheduler == "onecycle":
        peaks = [group["lr"] for group in optimizer.param_groups]  # keeps each group's multiplier
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, epochs=epochs,
                                                   steps_per_epoch=max(1, steps_per_epoch))
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    return None


def steps_per_batch(scheduler) -> bool:
    """True for schedules that advance after every optimizer step (one-cycle)."""
    return isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR)
