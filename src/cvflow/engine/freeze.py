"""Freezing part of a network (book 13.2's discussion, what 13.14 does by hand): a linear probe trains the head alone.

A frozen module keeps the values it starts with, all of them: its parameters get no gradient (so the
optimizer is never given them) and it stays in eval mode, so its BatchNorm layers normalise with their
running statistics and never update them (``model.train()``, which the trainer calls every epoch, would
otherwise refresh those statistics from every batch: "frozen" weights on moving statistics are not the
source's features). The network itself is unchanged: the saved file has the source's architecture.

PyTorch has ``requires_grad_`` and ``eval`` but nothing that names modules to freeze and keeps them frozen
across ``train()`` calls, hence these few lines.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from cvflow.errors import UserError


def freeze(model: nn.Module, prefixes: Sequence[str], setting: str = "freeze") -> list[nn.Module]:
    """Freeze the modules of ``model`` named by ``prefixes`` (``model.named_modules()`` names: ``layer4`` freezes
    ``layer4`` and everything in it); return them, for :func:`keep_frozen`. ``setting`` names the params key in
    the error for a prefix that names no module or one that leaves nothing to train."""
    named = dict(model.named_modules())
    frozen: list[nn.Module] = []
    for prefix in prefixes:
        if prefix not in named:
            top = ", ".join(name for name, _ in model.named_children())
            raise UserError(f"{setting}: {prefix!r} names no module of the {type(model).__name__}; use names of "
                            f"its modules (at the top: {top})")
        module = named[prefix]
        module.requires_grad_(False)
        frozen.append(module)
    if frozen and not any(p.requires_grad for p in model.parameters()):
        raise UserError(f"{setting}: {', '.join(prefixes)} freezes every parameter of the {type(model).__name__}; "
                        "leave at least its head out (e.g. fc)")
    keep_frozen(frozen)
    return frozen


def keep_frozen(modules: Sequence[nn.Module]) -> None:
    """Put the frozen ``modules`` back in eval mode, after a ``model.train()`` (the trainer's, every epoch)."""
    for module in modules:
        module.eval()

