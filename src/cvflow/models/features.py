"""A pretrained network as a frozen feature extractor, and the small head trained on its features (book 13.14).

The book's 13.14 (PyTorch edition) keeps a whole ImageNet ResNet-34 fixed and trains only
``output_new = Linear(1000, 256) -> ReLU -> Linear(256, 120)`` on its outputs:

* :func:`imagenet_resnet34`: torchvision's ResNet-34 with ``ResNet34_Weights.IMAGENET1K_V1``
  (hash checked; offline with no cached file, the same one-line error as 13.2's weights);
* :class:`FrozenBackbone`: any network used as a fixed function (no gradients, always in
  eval mode), whose ``output`` (the network's outputs, the book's PyTorch code) or
  ``penultimate`` layer (the input of its output layer ``fc``, the book's text and MXNet
  ``net.features``) gives the features;
* :func:`feature_head`: the book's ``output_new``; the model file of a 13.14 run holds only it
  (arch ``feature_head``), since the backbone never changes.
"""

from __future__ import annotations

import torch
from torch import nn

from cvflow.errors import UserError
from cvflow.models.files import register_model

__all__ = ["LAYERS", "FrozenBackbone", "feature_head", "imagenet_resnet34"]

LAYERS = ("output", "penultimate")


def imagenet_resnet34(setting: str = "backbone.weights") -> nn.Module:
    """torchvision's ResNet-34 with its ImageNet weights (``ResNet34_Weights.IMAGENET1K_V1``, hash checked)."""
    from torchvision.models import ResNet34_Weights, resnet34

    from cvflow.models import pretrained

    model = resnet34(weights=None)
    model.load_state_dict(pretrained.state_dict(ResNet34_Weights.IMAGENET1K_V1, setting,
                                                "source or a cvflow model file PATH.pt"))
    return model


class FrozenBackbone(nn.Module):
    """``net`` as a fixed feature extractor: its parameters take no gradient and it stays in eval mode.

    ``layer``: ``output`` (the features are ``net``'s outputs) or ``penultimate`` (the input of
    its output layer ``net.fc``, which is replaced by an identity). ``train()`` leaves
    it in eval mode, so BatchNorm keeps the pretrained running statistics and the features of an
    image do not depend on the batch it came in. (The book's PyTorch code never calls
    ``eval()``: its "frozen" ResNet-34 normalises each batch by that batch's statistics and
    keeps updating its running averages.) ``dim`` is the feature size.
    """

    def __init__(self, net: nn.Module, layer: str = "output"):
        super().__init__()
        if layer not in LAYERS:
            raise UserError(f"backbone layer {layer!r}: use one of {', '.join(LAYERS)}")
        fc = getattr(net, "fc", None)
        if not isinstance(fc, nn.Linear):
            raise UserError(f"a {type(net).__name__} has no output layer `fc` (nn.Linear): its features cannot be "
                            "found; use a ResNet")
        if layer == "penultimate":
            net.fc = nn.Identity()
        self.net = net
        self.layer = layer
        self.dim = fc.out_features if layer == "output" else fc.in_features
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "FrozenBackbone":
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.net(images).float()


@register_model("feature_head")
def feature_head(in_features: int, num_classes: int, hidden: int = 256) -> nn.Sequential:
    """The book's ``output_new``: ``Linear(in_features, hidden) -> ReLU -> Linear(hidden, num_classes)``
    (PyTorch's default initialisation, as the book's PyTorch code)."""
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
