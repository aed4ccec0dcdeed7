"""torchvision's pretrained weights, one way for every architecture: cached under ``$TORCH_HOME``,
downloaded with the hash checked, and one clear line when neither works (offline, no cached file)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from cvflow.errors import UserError


def cache_file(weights) -> Path:
    """Where torchvision keeps (and looks for) the file of ``weights`` (a torchvision weights enum member)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def state_dict(weights, setting: str, alternatives: str) -> dict[str, torch.Tensor]:
    """The state dict of ``weights``: from the cache, else downloaded by torchvision (``check_hash``).

    Offline with no cached file: a :class:`UserError` naming the file, where to put it and
    ``alternatives`` (what else ``setting`` may be set to)."""
    cached = cache_file(weights)
    try:
        return weights.get_state_dict(progress=cached.exists() is False, check_hash=True)
    except Exception as exc:  # noqa: BLE001 - URLError, OSError, HTTP errors: all mean "not available"
        raise UserError(
            f"ImageNet weights not available ({type(exc).__name__}): put {os.path.basename(weights.url)} "
            f"from {weights.url} at {cached} (or set TORCH_HOME), or set {setting} to {alternatives}"
        ) from None
