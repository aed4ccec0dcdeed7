"""The book's FCN (13.11) and its bilinear kernel: the network, apart from the segmentation task.

Here, not in :mod:`cvflow.segmentation`, so that rebuilding any model file
(registered with :func:`cvflow.models.files.register_model`) reaches no VOC or task code; the book's names are
re-exported by :mod:`cvflow.segmentation`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cvflow.models.files import register_model

__all__ = ["FCN", "STRIDE", "bilinear_kernel", "bilinear_upsampler", "fcn_resnet18"]

#: The FCN's output stride: ResNet-18 halves the resolution five times.
STRIDE = 32


def bilinear_kernel(in_channels: int, out_channels: int, kernel_size: int) -> torch.Tensor:
    """The book's ``bilinear_kernel``: a transposed-convolution weight that upsamples each channel by
    bilinear interpolation (channel i to channel i; the others zero)."""
    factor = (kernel_size + 1) // 2
    if kernel_size % 2 == 1:
        center = factor - 1
    else:
        center = factor - 0.5
    og = (torch.arange(kernel_size).reshape(-1, 1), torch.arange(kernel_size).reshape(1, -1))
    filt = (1 - torch.abs(og[0] - center) / factor) * (1 - torch.abs(og[1] - center) / factor)
    weight = torch.zeros((in_channels, out_channels, kernel_size, kernel_size))
    weight[range(in_channels), range(out_channels), :, :] = filt
    return weight


def bilinear_upsampler(channels: int, factor: int = 2, bias: bool = False) -> nn.ConvTranspose2d:
    """The book's ``conv_trans``: ``ConvTranspose2d(kernel_size=2f, padding=f/2, stride=f)`` with the
    bilinear kernel, which makes height and width ``f`` times larger (f = 2: the catdog example)."""
    if factor < 2 or factor % 2:
        raise ValueError(f"factor must be an even number >= 2, got {factor}")
    layer = nn.ConvTranspose2d(channels, channels, kernel_size=2 * factor, padding=factor // 2, stride=factor,
                               bias=bias)
    with torch.no_grad():
        layer.weight.copy_(bilinear_kernel(channels, channels, 2 * factor))
    return layer


class FCN(nn.Sequential):
    """The book's ``net`` (an ``nn.Sequential``: the ResNet body, ``final_conv``, ``transpose_conv``) that
    takes images of any size: height and width are padded (bottom, right; zeros, the mean colour
    after normalisation) to a multiple of 32 and the logits cropped back, so every pixel gets a
    prediction. Inputs that are multiples of 32 (the book's 320x480 crops) pass unchanged."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % STRIDE, -w % STRIDE
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        y = super().forward(x)
        return y[..., :h, :w] if pad_h or pad_w else y


@register_model("fcn_resnet18", init_only=("backbone",))
def fcn_resnet18(num_classes: int = 21, backbone: nn.Module | None = None) -> FCN:
    """The book's FCN: ``nn.Sequential(*list(pretrained_net.children())[:-2])``, a 1x1 ``final_conv`` to
    ``num_classes`` (PyTorch's default init, as the book's PyTorch code) and ``transpose_conv``
    (kernel 64, padding 16, stride 32) initialised with :func:`bilinear_kernel`.

    ``backbone``: a torchvision ResNet-18 holding the starting weights (ImageNet in the book);
    None builds one with random weights (what loading a model file starts from).
    """
    if backbone is None:
        from torchvision.models import resnet18

        backbone = resnet18(weights=None)
    net = FCN(*list(backbone.children())[:-2])
    net.add_module("final_conv", nn.Conv2d(512, num_classes, kernel_size=1))
    net.add_module("transpose_conv", nn.ConvTranspose2d(num_classes, num_classes, kernel_size=64, padding=16,
                                                        stride=32))
    with torch.no_grad():
        net.transpose_conv.weight.copy_(bilinear_kernel(num_classes, num_classes, 64))
    return net
