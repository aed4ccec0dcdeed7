"""ResNet-18 (torchvision) and where its starting weights come from.

``weights`` values used across cvflow:

* ``imagenet``: torchvision's ``ResNet18_Weights.IMAGENET1K_V1``, cached under ``$TORCH_HOME``.
  Offline with no cached file, a :class:`~cvflow.errors.UserError` names the file, where to
  put it, and the alternatives.
* ``PATH.pth``: a state dict (or a cvflow model file) of a ResNet-18.
* ``none``: random initialisation.

Model files (architecture recorded, rebuilt on load) are :mod:`cvflow.models.files`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet18_Weights, resnet18

from cvflow.errors import UserError
from cvflow.models import pretrained
from cvflow.models.files import register_model

IMAGENET_WEIGHTS = ResNet18_Weights.IMAGENET1K_V1


def imagenet_cache_file() -> Path:
    """Where torchvision keeps (and looks for) the ImageNet ResNet-18 weights."""
    return pretrained.cache_file(IMAGENET_WEIGHTS)


def imagenet_state_dict(setting: str = "weights") -> dict[str, torch.Tensor]:
    """The ImageNet ResNet-18 state dict: from the cache, else downloaded by torchvision."""
    return pretrained.state_dict(IMAGENET_WEIGHTS, setting, "source, none or a PATH.pth")


@register_model("resnet18")
def build_resnet18(num_classes: int) -> nn.Module:
    return resnet18(weights=None, num_classes=num_classes)


def replace_head(model: nn.Module, num_classes: int) -> nn.Linear:
    """A new output layer (Xavier-uniform weights, as in the book); returns it."""
    head = nn.Linear(model.fc.in_features, num_classes)
    nn.init.xavier_uniform_(head.weight)
    nn.init.zeros_(head.bias)
    model.fc = head
    return head


def read_state_dict(path: Path, setting: str = "weights") -> dict[str, torch.Tensor]:
    """A ResNet state dict from a plain state-dict file or a cvflow model file."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{setting}: {path} does not exist; give an existing .pth file, or imagenet, source or none")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{setting}: {path} is not a readable PyTorch weights file ({type(exc).__name__})") from None
    if isinstance(data, dict) and "state_dict" in data:
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise UserError(f"{setting}: {path} holds no state dict of tensors")
    return data


def load_backbone(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load every weight but the output layer; the rest must match exactly."""
    body = {k: v for k, v in state.items() if not k.startswith("fc.")}
    try:
        missing, unexpected = model.load_state_dict(body, strict=False)
    except RuntimeError as exc:  # shape mismatches
        detail = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), "shape mismatch")
        raise UserError(f"{source}: not a ResNet-18 state dict ({detail})") from None
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise UserError(f"{source}: not a ResNet-18 state dict ({detail})")
