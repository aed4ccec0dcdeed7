"""VGG-19's convolutional layers (``features``), the feature network of style transfer (book 13.12).

``weights``:

* ``imagenet``: torchvision's ``VGG19_Weights.IMAGENET1K_V1`` (hash checked; offline with no cached
  file, one line says which file to put where), the book's ``torchvision.models.vgg19(pretrained=True)``;
* ``random``: the same layers with torchvision's own VGG initialisation (Kaiming-normal, fan-out, zero
  biases), at ``width`` channels in the first block (64 is VGG-19; the layer indices do not change);
* ``PATH.pth``: a state dict of a VGG-19 (``features.*`` keys, or a bare ``features`` state dict).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import VGG19_Weights, vgg19
from torchvision.models.vgg import cfgs, make_layers

from cvflow.errors import UserError
from cvflow.models import pretrained

IMAGENET_WEIGHTS = VGG19_Weights.IMAGENET1K_V1
VGG19_LAYOUT = cfgs["E"]  # 64, 64, M, 128, 128, M, 256 x4, M, 512 x4, M, 512 x4, M


def vgg19_layout(width: int = 64) -> list:
    """VGG-19's layer list with every block's channels scaled by ``width / 64`` (pools unchanged)."""
    return [v if v == "M" else max(1, v * width // 64) for v in VGG19_LAYOUT]


def vgg19_features(weights: str = "imagenet", width: int = 64, upto: int | None = None,
                   setting: str = "weights") -> nn.Sequential:
    """VGG-19's ``features`` (conv, ReLU, max-pool modules; index as the book prints them), layers
    ``0..upto``, frozen and in eval mode. ``setting`` names the param in error messages."""
    if weights == "imagenet":
        if width != 64:
            raise UserError(f"{setting}: imagenet weights exist for VGG-19's own width 64, not {width}")
        state = pretrained.state_dict(IMAGENET_WEIGHTS, setting, "random or a PATH.pth")  # fails fast offline
        model = vgg19(weights=None)
        model.load_state_dict(state)
        features = model.features
    else:
        features = make_layers(vgg19_layout(width), batch_norm=False)
        if weights == "random":
            # torchvision's VGG initialisation (VGG._initialize_weights), here without building the
            # 100M-parameter classifier that the features never use
            for module in features.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.zeros_(module.bias)
        else:
            _load_features(features, Path(weights), setting)
    layers = list(features.children())[: (upto + 1) if upto is not None else None]
    net = nn.Sequential(*layers).eval()
    net.requires_grad_(False)  # the image is the only variable; the book leaves these on, unused
    return net


def _load_features(features: nn.Sequential, path: Path, setting: str) -> None:
    if not path.exists():
        raise UserError(f"{setting}: {path} does not exist; give an existing .pth file, or imagenet or random")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{setting}: {path} is not a readable PyTorch weights file ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise UserError(f"{setting}: {path} holds no state dict")
    if any(k.startswith("features.") for k in state):
        state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    try:
        features.load_state_dict(state)
    except RuntimeError as exc:
        detail = str(exc).splitlines()[0][:120]
        raise UserError(f"{setting}: {path} is not a VGG-19 state dict of this width ({detail})") from None
