"""The book's CIFAR ResNet-18 (d2l ``resnet18``, sections 13.1 and 13.13), with a width knob.

The book adapts ResNet-18 to 32x32 images: a 3x3 stride-1 stem (64 channels, batch norm,
ReLU) and NO max pool, so the first stage still sees 32x32; then four stages of two residual
blocks with 64, 128, 256 and 512 channels (the first stage keeps the resolution, each later
stage halves it with stride 2 and a 1x1-conv shortcut), global average pooling, flatten,
linear.

Why the block is written here instead of torchvision's ``BasicBlock``: the book's
``Residual`` differs from it in two ways that change the parameter count and the function.
Every convolution of the book has a bias (``nn.LazyConv2d`` defaults, also the stem's), where
torchvision's ``conv3x3``/``conv1x1`` have none; and the book's downsampling shortcut is a
bare 1x1 convolution WITH bias, where torchvision's ``downsample`` is a bias-free 1x1
convolution followed by batch norm. Reusing ``BasicBlock`` would therefore not be the book's
network.

Module names mirror the book's ``nn.Sequential`` (``0``-``2`` the stem, ``resnet_block1``-``4``
with ``conv1``/``bn1``/``conv2``/``bn2``/``conv3`` per block, ``global_avg_pool``, ``fc``), so a
state dict of the book's network loads into :func:`resnet18_cifar` unchanged and the two
compute the same function (``tests/test_models_cifar.py`` checks this).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cvflow.models.files import register_model

__all__ = ["Residual", "resnet18_cifar", "stage_channels"]


class Residual(nn.Module):
    """The book's residual block: conv3x3-BN-ReLU-conv3x3-BN, plus the input, then ReLU.

    ``use_1x1conv`` replaces the identity shortcut by a 1x1 convolution with bias (no batch
    norm, as in the book), needed when the channels or the resolution change.
    """

    def __init__(self, in_channels: int, num_channels: int, use_1x1conv: bool = False, strides: int = 1) -> None:
        super().__init__()
        # Explicit in_channels where the book uses Lazy modules: the network is fully built at
        # construction, so its parameters exist before the first forward (optimisers, load_state_dict).
        self.conv1 = nn.Conv2d(in_channels, num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(in_channels, num_channels, kernel_size=1, stride=strides) if use_1x1conv else None
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        if self.conv3 is not None:
            x = self.conv3(x)
        return F.relu(y + x)


def stage_channels(width: int = 64) -> tuple[int, int, int, int]:
    """The four stages' channels: ``width`` times 1, 2, 4, 8 (the book: 64, 128, 256, 512)."""
    return (width, 2 * width, 4 * width, 8 * width)


def _stage(in_channels: int, out_channels: int, num_residuals: int, first_block: bool = False) -> nn.Sequential:
    """The book's ``resnet_block``: the first block of every stage but the first downsamples."""
    blocks = []
    for i in range(num_residuals):
        if i == 0 and not first_block:
            blocks.append(Residual(in_channels, out_channels, use_1x1conv=True, strides=2))
        else:
            blocks.append(Residual(in_channels if i == 0 else out_channels, out_channels))
    return nn.Sequential(*blocks)


@register_model("resnet18_cifar")
def resnet18_cifar(num_classes: int = 10, in_channels: int = 3, width: int = 64) -> nn.Module:
    """The book's ``d2l.resnet18(num_classes, in_channels)`` for 32x32 images.

    ``width`` scales every stage's channels (``width``, 2x, 4x, 8x). 64 is the book's network
    (11.2 M parameters for 10 classes); the parameter count and the compute grow about as
    ``width**2``, so ``width=16`` (0.7 M parameters, ~16x fewer multiply-adds) lets the
    offline demo train on a laptop CPU in minutes while keeping the book's architecture.
    """
    if num_classes < 1 or in_channels < 1 or width < 1:
        raise ValueError(f"num_classes, in_channels and width must be positive, got {num_classes}, "
                         f"{in_channels}, {width}")
    c1, c2, c3, c4 = stage_channels(width)
    net = nn.Sequential(nn.Conv2d(in_channels, c1, kernel_size=3, stride=1, padding=1), nn.BatchNorm2d(c1), nn.ReLU())
    net.add_module("resnet_block1", _stage(c1, c1, 2, first_block=True))
    net.add_module("resnet_block2", _stage(c1, c2, 2))
    net.add_module("resnet_block3", _stage(c2, c3, 2))
    net.add_module("resnet_block4", _stage(c3, c4, 2))
    net.add_module("global_avg_pool", nn.AdaptiveAvgPool2d((1, 1)))
    net.add_module("fc", nn.Sequential(nn.Flatten(), nn.Linear(c4, num_classes)))
    return net


def init_xavier(module: nn.Module) -> None:
    """The book's 13.1 ``init_weights``: Xavier-uniform weights for every conv and linear layer
    (``net.apply(init_xavier)``); biases and batch norms keep PyTorch's initialisation."""
    if type(module) in (nn.Linear, nn.Conv2d):
        nn.init.xavier_uniform_(module.weight)


def build_resnet18_cifar(num_classes: int, width: int, init: str = "default") -> nn.Module:
    """:func:`resnet18_cifar` initialised as ``init`` says: ``default`` (PyTorch's; the book's 13.13
    ``get_net``) or ``xavier`` (the book's 13.1 ``net.apply(init_weights)``)."""
    model = resnet18_cifar(num_classes, width=width)
    if init == "xavier":
        model.apply(init_xavier)
    elif init != "default":
        raise ValueError(f"init must be default or xavier, got {init!r}")
    return model
