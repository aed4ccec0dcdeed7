"""Named architectures and the one model-file format every task writes and reads.

A cvflow *model file* (``.pt``, written atomically by :func:`save_model`) is::

    {"format": 1, "arch": "resnet18", "arch_kwargs": {"num_classes": 2},
     "classes": [...], "state_dict": {...}, "meta": {...}}

``arch`` names a builder registered with :func:`register_model` (by the module that defines it) and ``arch_kwargs`` its arguments, so
:func:`load_model` rebuilds the right network whatever task wrote the file. ``meta`` holds
only reproducible facts (the origin of the weights, the epochs trained): model files are DVC
outputs and must come out byte-identical when the same code trains on the same data. Run ids
and timings live in MLflow, which finds a model's run by the file's hash
(:func:`cvflow.tracking.find_run`).
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from cvflow.errors import UserError
from cvflow.fileio import atomic_path

MODEL_FORMAT = 1

#: ``arch`` name -> what builds the network from ``arch_kwargs``. Filled by :func:`register_model` as each
#: architecture's module is imported: loading a file runs only its own architecture's code.
_ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str | None = None, init_only: tuple[str, ...] = ()) -> Callable[[Callable[..., nn.Module]],
                                                                                  Callable[..., nn.Module]]:
    """Register a model builder under ``name`` (default: its ``__name__``), as torchvision's
    ``torchvision.models.register_model`` does for its own builders.

    Every network the builder returns records its architecture (the name and the arguments it was
    built with, those in ``init_only`` left out: they set initial weights, not the network's shape),
    so :func:`save_model` writes it and :func:`load_model` rebuilds the same network.
    """

    def wrapper(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or builder.__name__
        signature = inspect.signature(builder)

        @functools.wraps(builder)
        def build(*args: Any, **kwargs: Any) -> nn.Module:
            model = builder(*args, **kwargs)
            bound = signature.bind(*args, **kwargs).arguments
            model.cvflow_arch = (key, {k: v for k, v in bound.items() if k not in init_only})
            return model

        if key in _ARCHITECTURES:
            raise ValueError(f"an architecture is already registered as {key!r}")
        _ARCHITECTURES[key] = build
        return build

    return wrapper


def architecture_of(model: nn.Module) -> tuple[str, dict[str, Any]]:
    """``(arch, arch_kwargs)`` of a network built by a registered builder."""
    record = getattr(model, "cvflow_arch", None)
    if record is None:
        raise ValueError(f"{type(model).__name__} was not built by a builder registered with @register_model, so "
                         "its model file could not be loaded again; build it with one")
    return record


def architecture_module(arch: str) -> str:
    """The module that registers ``arch``: what a process must import to load a file of it."""
    if arch not in _ARCHITECTURES:
        raise UserError(_unknown(arch))
    return _ARCHITECTURES[arch].__module__


def list_models() -> list[str]:
    """The registered architecture names (those whose modules are imported)."""
    return sorted(_ARCHITECTURES)


def _unknown(arch: str) -> str:
    known = ", ".join(list_models()) or "none yet"
    return (f"unknown architecture {arch!r} (registered: {known}); import the module that defines it "
            "before building or loading it (cvflow's: cvflow.models.resnet, cvflow.models.cifar, cvflow.models.fcn, "
            "cvflow.models.features, cvflow.detection.ssd; each registers itself with @register_model)")


def build_model(arch: str, **kwargs: Any) -> nn.Module:
    """The network registered as ``arch`` built with ``kwargs``."""
    if arch not in _ARCHITECTURES:
        raise UserError(_unknown(arch))
    return _ARCHITECTURES[arch](**kwargs)


def save_model(path: Path, model: nn.Module, classes: Sequence[str], meta: dict[str, Any] | None = None) -> Path:
    """Write a model file atomically (see the module docstring); its architecture is the one ``model`` records."""
    arch, arch_kwargs = architecture_of(model)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    # written through a file object: torch.save names the zip's inner folder after a path it is given,
    # and the temporary file's random name would make every save differ ("archive/" instead)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save({"format": MODEL_FORMAT, "arch": arch, "arch_kwargs": dict(arch_kwargs), "classes": list(classes),
                    "state_dict": state, "meta": meta or {}}, handle)
    return Path(path)


def read_model_file(path: Path) -> dict[str, Any]:
    """A model file's fields; a one-line :class:`UserError` when it is missing or not one."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such model file; run the stage that trains it first")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
        raise UserError(f"{path}: not a readable model file ({type(exc).__name__}); rerun its training stage") from None
    if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT or not isinstance(data.get("arch"), str):
        raise UserError(f"{path}: not a cvflow model file of format {MODEL_FORMAT}; rerun its training stage")
    return data


def load_model(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """The network a model file records (its ``arch`` rebuilt, weights loaded), and the file's fields."""
    data = read_model_file(path)
    if data["arch"] not in _ARCHITECTURES:
        raise UserError(f"{path}: " + _unknown(data["arch"]))
    model = build_model(data["arch"], **data["arch_kwargs"])
    model.load_state_dict(data["state_dict"])
    return model, data
