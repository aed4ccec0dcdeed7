"""Test-time preprocessing as data: one function builds every evaluation's test transform and every
served model's (:mod:`cvflow.serving`), so a served model sees the tensors evaluation feeds it."""

from __future__ import annotations

from typing import Any, Mapping

import torch

#: A test transform, as data: ``resize`` (an int: the shorter side; ``[h, w]``: that size; None),
#: ``crop`` (a centre crop's side; None), ``scale`` (``unit``: floats in [0, 1]; ``byte``: floats in
#: 0-255), ``mean`` and ``std`` (per channel; None: no normalisation).
Preprocess = Mapping[str, Any]

def inference_transform(spec: Preprocess, mirrored: bool = False):
    """The ``transforms.v2`` pipeline ``spec`` describes, on uint8 images ``(..., 3, H, W)``: resize,
    centre crop, (``mirrored``: a horizontal flip, test-time augmentation's second view), floats, normalise."""
    from torchvision.transforms import v2

    steps: list[Any] = []
    if spec.get("resize") is not None:
        resize = spec["resize"]
        steps.append(v2.Resize(list(resize) if isinstance(resize, (list, tuple)) else int(resize), antialias=True))
    if spec.get("crop") is not None:
        steps.append(v2.CenterCrop(int(spec["crop"])))
    if mirrored:
        steps.append(v2.RandomHorizontalFlip(p=1.0))
    scale = spec.get("scale", "unit")
    if scale not in ("unit", "byte"):
        raise ValueError(f"preprocess scale must be 'unit' or 'byte', got {scale!r}")
    steps.append(v2.ToDtype(torch.float32, scale=scale == "unit"))
    if spec.get("mean") is not None:
        steps.append(v2.Normalize(list(spec["mean"]), list(spec["std"])))
    return v2.Compose(steps)

