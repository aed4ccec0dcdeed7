"""Checkpoints: written atomically every epoch, read back to resume an interrupted run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from cvflow.errors import TrainingError
from cvflow.fileio import atomic_path


def fingerprint(config: Any) -> str:
    """A stable hash of a run's configuration: a checkpoint only resumes the run it was made by."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()


def save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict | None:
    """The checkpoint at ``path``, or None when there is none."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        # Our own files, but they hold RNG states and optimizer state: not weights_only.
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
        raise TrainingError(
            f"{path}: unreadable checkpoint ({type(exc).__name__}); delete it to start the run afresh"
        ) from None


def saved_world_size(state: dict) -> int:
    """How many processes trained the run that wrote ``state``: it holds one RNG state per rank."""
    return len(state.get("rng") or []) or 1


def check_world_size(path: Path, state: dict, world_size: int) -> None:
    """A checkpoint resumes only on the world size that wrote it: its per-rank RNG states, data shards and
    per-rank batch hold for that many processes, so another count would not end where the run would have.
    Said in one line (exit 2) with both ways out, rather than resumed wrongly or discarded silently."""
    saved = saved_world_size(state)
    if saved != world_size:
        raise TrainingError(
            f"{path}: this checkpoint was written by {saved} training process(es), this run has {world_size}; set "
            f"common.devices (x common.nodes) back to {saved} process(es) to resume it, or delete {path} to start the "
            "run over"
        )
