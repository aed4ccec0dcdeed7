"""Region-of-interest pooling (d2l 13.8, Fast R-CNN / Mask R-CNN).

Thin, documented wrappers over :func:`torchvision.ops.roi_pool` and
:func:`torchvision.ops.roi_align`, with the book's argument names.
"""

from __future__ import annotations

from collections.abc import Sequence

import torchvision
from torch import Tensor

__all__ = ["roi_pool", "roi_align"]


def roi_pool(
    features: Tensor,
    rois: Tensor | Sequence[Tensor],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
) -> Tensor:
    """RoI max pooling: a fixed-size feature for each region of interest (Fast R-CNN).

    Each region, given in *input-image* pixels, is scaled by ``spatial_scale`` (the
    feature map's size relative to the image, e.g. 0.1) and its corners are rounded to the
    nearest feature cell; the region, inclusive of both corners, is then cut into an
    ``output_size`` grid of sub-windows (boundaries floored/ceiled, so neighbouring
    sub-windows may share a row or column) and each sub-window is max-pooled.

    Args:
        features: ``(N, C, H, W)`` feature maps.
        rois: ``(K, 5)`` rows ``(batch_index, x1, y1, x2, y2)``, or a list of ``N``
            ``(K_i, 4)`` tensors of ``(x1, y1, x2, y2)``, one per image.
        output_size: ``(h, w)`` of each pooled feature (or one int for both).
        spatial_scale: feature size / image size.

    Returns:
        ``(K, C, h, w)``.

    Example (the book's)::

        X = torch.arange(16.).reshape(1, 1, 4, 4)
        rois = torch.Tensor([[0, 0, 0, 20, 20], [0, 0, 10, 30, 30]])
        roi_pool(X, rois, output_size=(2, 2), spatial_scale=0.1)
        # [[[[5, 6], [9, 10]]], [[[9, 11], [13, 15]]]]
    """
    return torchvision.ops.roi_pool(features, rois, output_size=output_size, spatial_scale=spatial_scale)


def roi_align(
    features: Tensor,
    rois: Tensor | Sequence[Tensor],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """RoI align (Mask R-CNN): like :func:`roi_pool` without rounding.

    The scaled region is split into an exact ``output_size`` grid; each bin averages
    ``sampling_ratio`` x ``sampling_ratio`` bilinearly interpolated samples (adaptive when
    ``-1``). ``aligned=True`` shifts boxes by -0.5 pixel so that pixel centres line up
    (recommended; ``False`` is torchvision's historical default). Arguments and result as
    in :func:`roi_pool`.
    """
    return torchvision.ops.roi_align(
        features,
        rois,
        output_size=output_size,
        spatial_scale=spatial_scale,
        sampling_ratio=sampling_ratio,
        aligned=aligned,
    )
