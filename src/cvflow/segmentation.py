"""Semantic segmentation (book 13.9-13.11): transposed convolution, the bilinear kernel, the FCN, its task.

* 13.10 :func:`trans_conv` (the book's definition, vectorised) and :func:`kernel2matrix` (the
  matrix-multiplication view): the tests show both equal ``nn.ConvTranspose2d`` / its matrix.
* 13.11 :func:`bilinear_kernel` (the book's), :func:`bilinear_upsampler` (the book's ``conv_trans``)
  and :func:`fcn_resnet18`, the book's FCN: ResNet-18 without its last pooling and linear layer,
  ``final_conv`` (1x1 to the classes) and ``transpose_conv`` (kernel 64, padding 16, stride 32)
  initialised bilinear. :class:`FCN` is the book's ``nn.Sequential`` (same layer names, same
  state dict) that also predicts whole images of any size: the input is padded to a multiple of
  32 and the logits cropped back (the book predicts only 320x480 crops).
* :class:`SegmentationTask`: the engine's task. The book's loss (per-pixel cross-entropy, averaged
  over each image's pixels: ``.mean(1).mean(1)``), the book's pixel accuracy, and per-class
  confusion counts from which :meth:`~SegmentationTask.summarize` gives the mean IoU the field
  reports, with the all-background baselines beside them.
* :func:`score_images`: whole-image scoring with torchmetrics (mean and per-class IoU, pixel
  accuracy, and the same for an all-background prediction).

The boundary: VOC marks a band around every object 255 ("void"). ``boundary: background`` counts
it as class 0 in the loss and the pixel accuracy, as the book does (its ``voc_label_indices`` maps
the void colour (224, 224, 192), absent from ``VOC_COLORMAP``, to 0); ``boundary: ignore`` leaves
it out of both, as the field does. IoU always ignores it (the VOC benchmark's rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn
from torch.nn import functional as F

from cvflow.data.readers.voc import IGNORE_INDEX, VOC_CLASSES, voc_palette
from cvflow.losses import reduce_loss
from cvflow.models.fcn import FCN, STRIDE, bilinear_kernel, bilinear_upsampler, fcn_resnet18

__all__ = [
    "BOUNDARIES",
    "FCN",
    "STRIDE",
    "SegmentationTask",
    "bilinear_kernel",
    "bilinear_upsampler",
    "fcn_resnet18",
    "kernel2matrix",
    "label2image",
    "score_images",
    "trans_conv",
]

BOUNDARIES = ("background", "ignore")


# --------------------------------------------------------------------------- 13.10 transposed convolution


def trans_conv(X: torch.Tensor, K: torch.Tensor, stride: int = 1, padding: int = 0) -> torch.Tensor:
    """The book's ``trans_conv``: every input element times the kernel, placed at the element's
    position (``stride`` apart), the copies summed; ``padding`` rows and columns then removed from
    each side of the output (padding applies to the output in a transposed convolution).

    ``X`` (nh, nw) and ``K`` (kh, kw) as in the book, or several channels: ``X`` (ci, nh, nw) and
    ``K`` (ci, co, kh, kw) (``nn.ConvTranspose2d``'s weight layout) give (co, H, W).
    The book loops over the input's elements; here one ``einsum`` makes every scaled copy of the
    kernel and ``F.fold`` sums the overlapping copies into place (no Python loop over pixels).
    """
    plain = X.dim() == 2
    if plain:
        X, K = X[None], K[None, None]
    if X.dim() != 3 or K.dim() != 4 or K.shape[0] != X.shape[0]:
        raise ValueError(f"expected X (ci, h, w) and K (ci, co, kh, kw), got {tuple(X.shape)} and {tuple(K.shape)}")
    ci, nh, nw = X.shape
    co, kh, kw = K.shape[1:]
    copies = torch.einsum("chw,cokl->oklhw", X, K).reshape(1, co * kh * kw, nh * nw)
    height, width = (nh - 1) * stride + kh, (nw - 1) * stride + kw
    Y = F.fold(copies, (height, width), (kh, kw), stride=stride)[0]
    if padding:
        Y = Y[:, padding:height - padding, padding:width - padding]
    return Y[0] if plain else Y


def kernel2matrix(K: torch.Tensor, input_shape: tuple[int, int]) -> torch.Tensor:
    """The book's ``kernel2matrix`` for any kernel and input size: the sparse ``W`` with
    ``corr2d(X, K).reshape(-1) == W @ X.reshape(-1)``; then ``trans_conv(Y, K)`` is ``W.T @ Y``.

    Row ``l`` holds ``K`` at the input positions output ``l`` reads: ``F.unfold`` of the identity
    (one image per input pixel) says which kernel entry meets which pixel.
    """
    h, w = input_shape
    identity = torch.eye(h * w, dtype=K.dtype, device=K.device).reshape(h * w, 1, h, w)
    patches = F.unfold(identity, tuple(K.shape))  # (pixel p, kernel entry k, output l)
    return torch.einsum("k,pkl->lp", K.reshape(-1), patches)


# --------------------------------------------------------------------------- 13.11 the FCN


def label2image(pred: torch.Tensor) -> torch.Tensor:
    """The book's ``label2image``: class indices (H, W) -> colours (H, W, 3) uint8 in the VOC palette
    (255, the boundary, in its own colour (224, 224, 192))."""
    palette = torch.tensor(voc_palette(), dtype=torch.uint8, device=pred.device).reshape(256, 3)
    return palette[pred.long()]


# --------------------------------------------------------------------------- the engine's task


def _check_boundary(boundary: str) -> None:
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {', '.join(BOUNDARIES)}, got {boundary!r}")


@dataclass
class SegmentationTask:
    """Per-pixel classification for :class:`cvflow.engine.Trainer` (see the module docstring).

    Per-batch sums: ``loss`` (per-image losses), ``count`` (images: examples/s counts images),
    ``correct`` / ``pixels`` (the book's pixel accuracy), ``background`` (pixels whose target is 0:
    the all-background pixel accuracy) and, per class ``c``, ``tp_c``, ``pred_c``, ``true_c``
    (confusion counts without the 255 pixels) for the IoU.
    """

    num_classes: int = len(VOC_CLASSES)
    boundary: str = "background"
    reduction: str = "mean"

    def __post_init__(self) -> None:
        _check_boundary(self.boundary)

    def targets(self, labels: torch.Tensor) -> torch.Tensor:
        """What the loss and the pixel accuracy compare with: 255 -> 0 (``background``), or kept (``ignore``)."""
        if self.boundary == "background":
            return labels.masked_fill(labels == IGNORE_INDEX, 0)
        return labels

    def losses(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One loss per image: the book's ``F.cross_entropy(..., reduction='none').mean(1).mean(1)``, or
        with ``ignore`` the mean over the image's non-boundary pixels."""
        targets = self.targets(labels)
        pixel = F.cross_entropy(logits.float(), targets, reduction="none", ignore_index=IGNORE_INDEX)
        if self.boundary == "background":
            return pixel.mean(1).mean(1)
        return pixel.sum((1, 2)) / (targets != IGNORE_INDEX).sum((1, 2)).clamp(min=1)

    def train_step(self, model, batch):
        images, labels = batch
        logits = model(images)
        losses = self.losses(logits, labels)
        return reduce_loss(losses, self.reduction), self.sums(logits, labels, losses)

    def eval_step(self, model, batch):
        images, labels = batch
        logits = model(images)
        return self.sums(logits, labels, self.losses(logits, labels))

    def sums(self, logits: torch.Tensor, labels: torch.Tensor, losses: torch.Tensor) -> dict[str, torch.Tensor]:
        from torchmetrics.functional.classification import multiclass_confusion_matrix

        pred = logits.detach().argmax(dim=1)
        targets = self.targets(labels)
        counted = targets != IGNORE_INDEX
        out = {
            "loss": losses.detach().sum(),
            "count": torch.full((), float(labels.shape[0]), device=labels.device),
            "correct": ((pred == targets) & counted).sum(),
            "pixels": counted.sum(),
            "background": (targets == 0).sum(),
        }
        # rows: truth, columns: prediction; 255 pixels left out (validate_args=False: no host sync)
        confusion = multiclass_confusion_matrix(pred, labels, self.num_classes, ignore_index=IGNORE_INDEX,
                                                validate_args=False)
        tp, true, predicted = confusion.diagonal(), confusion.sum(1), confusion.sum(0)
        for c in range(self.num_classes):
            out[f"tp_{c}"], out[f"true_{c}"], out[f"pred_{c}"] = tp[c], true[c], predicted[c]
        return out

    def iou(self, sums: dict[str, float]) -> dict[int, float]:
        """IoU of every class that occurs in the truth or the predictions (others have no IoU)."""
        out = {}
        for c in range(self.num_classes):
            tp, union = sums[f"tp_{c}"], sums[f"true_{c}"] + sums[f"pred_{c}"] - sums[f"tp_{c}"]
            if union > 0:
                out[c] = tp / union
        return out

    def summarize(self, sums, split):
        count, pixels = max(sums["count"], 1.0), max(sums["pixels"], 1.0)
        ious = self.iou(sums)
        out = {f"{split}_loss": sums["loss"] / count, f"{split}_pixel_acc": sums["correct"] / pixels,
               f"{split}_miou": sum(ious.values()) / max(len(ious), 1)}
        if split != "train":  # what predicting background everywhere scores on the same pixels
            scored = sum(sums[f"true_{c}"] for c in range(self.num_classes))
            present = sum(1 for c in range(self.num_classes) if c == 0 or sums[f"true_{c}"] > 0)
            out[f"{split}_pixel_acc_baseline"] = sums["background"] / pixels
            out[f"{split}_miou_baseline"] = sums["true_0"] / max(scored, 1.0) / present
        return out


# --------------------------------------------------------------------------- whole-image scoring


@torch.inference_mode()
def score_images(model: nn.Module, pairs: Iterable[tuple[torch.Tensor, torch.Tensor]], *,
                 boundary: str = "background", num_classes: int = len(VOC_CLASSES),
                 device: torch.device | str = "cpu", precision=None, keep: int = 0
                 ) -> tuple[dict, list[torch.Tensor]]:
    """Predict every whole image of ``pairs`` (image float, normalised, (3, H, W), any size; label
    (H, W), read one pair at a time) and score it with torchmetrics: mean IoU over the classes present
    (``MulticlassJaccardIndex``,
    ``average='macro'``, 255 ignored), per-class IoU, the book's pixel accuracy (255 per ``boundary``),
    and the same three for an all-background prediction. Returns ``(scores, predictions)``: the
    class maps of the first ``keep`` images (CPU, uint8) for pictures.
    """
    from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

    _check_boundary(boundary)
    device = torch.device(device)
    task = SegmentationTask(num_classes, boundary)

    def metrics():
        return {"miou": MulticlassJaccardIndex(num_classes, average="macro", ignore_index=IGNORE_INDEX),
                "iou": MulticlassJaccardIndex(num_classes, average="none", ignore_index=IGNORE_INDEX),
                "pixel_acc": MulticlassAccuracy(num_classes, average="micro", ignore_index=IGNORE_INDEX)}

    model_scores = {k: m.to(device) for k, m in metrics().items()}
    baseline = {k: m.to(device) for k, m in metrics().items()}
    kept: list[torch.Tensor] = []
    was_training = model.training
    model.to(device).eval()
    try:
        for index, (image, label) in enumerate(pairs):
            x = image.to(device, non_blocking=True)[None]
            if precision is not None:
                with precision.autocast():
                    logits = model(x)
            else:
                logits = model(x)
            pred = logits.argmax(dim=1)
            label = label.to(device, non_blocking=True).long()[None]
            target = task.targets(label)
            zeros = torch.zeros_like(pred)
            for scores, guess in ((model_scores, pred), (baseline, zeros)):
                scores["miou"].update(guess, label)
                scores["iou"].update(guess, label)
                scores["pixel_acc"].update(guess, target)
            if index < keep:
                kept.append(pred[0].to(torch.uint8).cpu())
    finally:
        model.train(was_training)
    # a class with no pixel in the truth and none predicted has no IoU (torchmetrics' macro average skips it)
    confusion = model_scores["iou"].confmat  # MulticlassJaccardIndex keeps the confusion matrix
    occurs = (confusion.sum(0) + confusion.sum(1) > 0).tolist()
    per_class = model_scores["iou"].compute().tolist()
    result = {
        "miou": float(model_scores["miou"].compute()),
        "pixel_acc": float(model_scores["pixel_acc"].compute()),
        "iou": {VOC_CLASSES[c] if num_classes == len(VOC_CLASSES) else str(c): per_class[c]
                for c in range(num_classes) if occurs[c]},
        "miou_baseline": float(baseline["miou"].compute()),
        "pixel_acc_baseline": float(baseline["pixel_acc"].compute()),
    }
    return result, kept
