"""Named architectures and the one model-file format every task writes and reads.

A cvflow *model file* (``.pt``, written atomically by :func:`save_model`) is::

    {"format": 1, "arch": "resnet18", "arch_kwargs": {"num_classes": 2},
     "classes": [...], "state_dict": {...}, "meta": {...}}

``arch`` names an entry of :data:`ARCHITECTURES` and ``arch_kwargs`` its arguments, so
:func:`load_model` rebuilds the right network whatever task wrote the file. ``meta`` holds
only reproducible facts (the origin of the weights, the epochs trained): model files are DVC
outputs and must come out byte-identical when the same code trains on the same data. Run ids
and timings live in MLflow, which finds a model's run by the file's hash
(:func:`cvflow.tracking.find_run`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from cvflow.errors import UserError
from cvflow.fileio import atomic_path

MODEL_FORMAT = 1

def _resnet18(**kwargs: Any) -> nn.Module:
    from cvflow.models.resnet import build_resnet18

    return build_resnet18(**kwargs)


def _resnet18_cifar(**kwargs: Any) -> nn.Module:
    from cvflow.models.cifar import resnet18_cifar

    return resnet18_cifar(**kwargs)


def _tinyssd(**kwargs: Any) -> nn.Module:
    from cvflow.detection.ssd import TinySSD

    return TinySSD(**kwargs)


def _feature_head(**kwargs: Any) -> nn.Module:
    from cvflow.models.features import feature_head

    return feature_head(**kwargs)


#: ``arch`` name -> what builds the network from ``arch_kwargs`` (its module imported on use).
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {"resnet18": _resnet18, "resnet18_cifar": _resnet18_cifar,
                                                     "tinyssd": _tinyssd}
ARCHITECTURES["feature_head"] = _feature_head  # 13.14: the head trained on a frozen backbone's features


def _fcn_resnet18(**kwargs: Any) -> nn.Module:
    from cvflow.models.fcn import fcn_resnet18

    return fcn_resnet18(**kwargs)


ARCHITECTURES["fcn_resnet18"] = _fcn_resnet18  # 13.11: the book's FCN on a ResNet-18 body


def build_model(arch: str, **kwargs: Any) -> nn.Module:
    """The network named ``arch`` (a key of :data:`ARCHITECTURES`) built with ``kwargs``."""
    if arch not in ARCHITECTURES:
        raise UserError(f"unknown architecture {arch!r}: known ones are {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[arch](**kwargs)


def save_model(path: Path, model: nn.Module, arch: str, arch_kwargs: dict[str, Any], classes: Sequence[str],
               meta: dict[str, Any] | None = None) -> Path:
    """Write a model file atomically (see the module docstring)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}")
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
    if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT or data.get("arch") not in ARCHITECTURES:
        raise UserError(f"{path}: not a cvflow model file of format {MODEL_FORMAT}; rerun its training stage")
    return data


def load_model(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """The network a model file records (its ``arch`` rebuilt, weights loaded), and the file's fields."""
    data = read_model_file(path)
    model = build_model(data["arch"], **data["arch_kwargs"])
    model.load_state_dict(data["state_dict"])
    return model, data
