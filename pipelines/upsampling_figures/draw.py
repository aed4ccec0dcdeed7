"""The book's upsampling check (d2l 13.11): ``cvflow figures upsampling``.

A transposed convolution with kernel 4, padding 1, stride 2, initialised with the book's
:func:`~cvflow.models.fcn.bilinear_kernel` (:func:`~cvflow.models.fcn.bilinear_upsampler`),
doubles the height and width of ``data/photos/catdog.jpg`` (``cvflow fetch photos``).
``data/reports/upsampling/catdog_x2.png`` shows the input and the output side by side, each in
its own pixel coordinates and titled with its shape, as the book prints them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.transforms.v2 import functional as TF

from cvflow.data.readers.photos import read_photo
from cvflow.params import ParamsBase as Params
from cvflow.plots import _save, plt
from cvflow.models.fcn import bilinear_upsampler

__all__ = ["FILE", "PHOTO", "figures", "load_photo", "reports_dir", "upsample"]

PHOTO = "catdog.jpg"
FILE = "catdog_x2.png"


def reports_dir(root: Path) -> Path:
    return root / "data" / "reports" / "upsampling"


def load_photo(root: Path) -> torch.Tensor:
    """``data/photos/catdog.jpg`` as the book's ``ToTensor()`` gives it: (3, h, w) float in [0, 1]."""
    return TF.to_dtype(TF.pil_to_tensor(read_photo(root, PHOTO)), torch.float32, scale=True)


@torch.no_grad()
def upsample(img: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """The book's ``Y = conv_trans(X)`` for one (3, h, w) image: (3, factor*h, factor*w)."""
    return bilinear_upsampler(img.shape[0], factor)(img.unsqueeze(0))[0]


def figures(params: Params, root: Path) -> dict[str, Path]:
    """Draw the input and its bilinear x2 upsampling into ``data/reports/upsampling/catdog_x2.png``."""
    del params  # nothing in params.yaml changes this figure
    img = load_photo(root)
    out = upsample(img)
    in_shape, out_shape = tuple(img.permute(1, 2, 0).shape), tuple(out.permute(1, 2, 0).shape)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), gridspec_kw={"width_ratios": [1, 1]})
    panels = ((axes[0], img, "input image", in_shape), (axes[1], out, "output image", out_shape))
    for ax, picture, name, shape in panels:
        ax.imshow(picture.permute(1, 2, 0).clamp(0, 1).numpy())
        ax.set_title(f"{name} shape: {shape}")
    fig.suptitle("transposed convolution, kernel 4, padding 1, stride 2, bilinear_kernel(3, 3, 4)")
    return {FILE: _save(fig, reports_dir(root) / FILE)}
