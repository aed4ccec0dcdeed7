"""Single Shot Multibox Detection (d2l 13.7): TinySSD, its loss and evaluation helpers.

The model is the book's PyTorch TinySSD, module for module (so parameter names and
state dicts match ``blk_i`` / ``cls_i`` / ``bbox_i``): a base network of three
down-sampling blocks (16-32-64 channels), three more down-sampling blocks (128 channels)
and a global max pool, each of the five scales predicting classes and offsets for
``len(sizes) + len(ratios) - 1 = 4`` anchors per feature-map cell. A 256 x 256 input gives
``(32^2 + 16^2 + 8^2 + 4^2 + 1) * 4 = 5444`` anchors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from cvflow.detection.boxes import multibox_prior
from cvflow.losses import reduce_loss
from cvflow.models.files import register_model

__all__ = [
    "SIZES",
    "RATIOS",
    "cls_predictor",
    "bbox_predictor",
    "flatten_pred",
    "concat_preds",
    "down_sample_blk",
    "base_net",
    "get_blk",
    "blk_forward",
    "TinySSD",
    "init_class_prior",
    "calc_loss",
    "MultiboxLoss",
    "cls_eval",
    "bbox_eval",
]

#: Anchor sizes per scale: 0.2 ... 0.88 in equal steps, and sqrt(s_i * s_{i+1}).
SIZES: list[list[float]] = [[0.2, 0.272], [0.37, 0.447], [0.54, 0.619], [0.71, 0.79], [0.88, 0.961]]
#: Anchor aspect ratios per scale.
RATIOS: list[list[float]] = [[1, 2, 0.5]] * 5


def cls_predictor(num_inputs: int, num_anchors: int, num_classes: int) -> nn.Conv2d:
    """3x3 conv predicting ``num_classes + 1`` scores for each anchor of each cell."""
    return nn.Conv2d(num_inputs, num_anchors * (num_classes + 1), kernel_size=3, padding=1)


def bbox_predictor(num_inputs: int, num_anchors: int) -> nn.Conv2d:
    """3x3 conv predicting 4 offsets for each anchor of each cell."""
    return nn.Conv2d(num_inputs, num_anchors * 4, kernel_size=3, padding=1)


def flatten_pred(pred: Tensor) -> Tensor:
    """``(B, C, H, W)`` -> ``(B, H * W * C)``, channels last (so one anchor's values adjoin)."""
    return torch.flatten(pred.permute(0, 2, 3, 1), start_dim=1)


def concat_preds(preds: Sequence[Tensor]) -> Tensor:
    """Concatenate the flattened predictions of all scales along dimension 1."""
    return torch.cat([flatten_pred(p) for p in preds], dim=1)


def down_sample_blk(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two (3x3 conv, batch norm, ReLU) layers then a 2x2 max pool: halves height and width."""
    blk: list[nn.Module] = []
    for _ in range(2):
        blk.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
        blk.append(nn.BatchNorm2d(out_channels))
        blk.append(nn.ReLU())
        in_channels = out_channels
    blk.append(nn.MaxPool2d(2))
    return nn.Sequential(*blk)


def base_net() -> nn.Sequential:
    """Three down-sampling blocks, 3 -> 16 -> 32 -> 64 channels (256x256 -> 32x32)."""
    num_filters = [3, 16, 32, 64]
    return nn.Sequential(*[down_sample_blk(num_filters[i], num_filters[i + 1]) for i in range(len(num_filters) - 1)])


def get_blk(i: int) -> nn.Module:
    """Block ``i`` of TinySSD: base net, three down-sampling blocks, global max pool."""
    if i == 0:
        return base_net()
    if i == 1:
        return down_sample_blk(64, 128)
    if i == 4:
        return nn.AdaptiveMaxPool2d((1, 1))
    return down_sample_blk(128, 128)


def blk_forward(
    X: Tensor,
    blk: nn.Module,
    size: Sequence[float],
    ratio: Sequence[float],
    cls_predictor: nn.Module,
    bbox_predictor: nn.Module,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Run one scale: feature map ``Y``, its anchors, class and offset predictions."""
    Y = blk(X)
    anchors = multibox_prior(Y, sizes=size, ratios=ratio)
    cls_preds = cls_predictor(Y)
    bbox_preds = bbox_predictor(Y)
    return (Y, anchors, cls_preds, bbox_preds)


def init_class_prior(predictor: nn.Conv2d, num_classes: int, prior_prob: float) -> None:
    """Set a class predictor's biases so each anchor starts as an object with probability ``prior_prob``.

    The predictor's channels are ``num_anchors`` groups of ``num_classes + 1`` scores
    (background first, :func:`flatten_pred`'s order). Background gets bias 0 and each class
    ``log(prior_prob / (num_classes * (1 - prior_prob)))``, so the softmax of the biases is
    ``1 - prior_prob`` for background and ``prior_prob / num_classes`` for each class (the
    softmax form of RetinaNet's sigmoid prior). The weights keep their initialisation.
    """
    if not 0.0 < prior_prob < 1.0:
        raise ValueError(f"prior_prob must be in (0, 1), got {prior_prob}")
    if predictor.bias is None or predictor.out_channels % (num_classes + 1):
        raise ValueError(f"predictor has {predictor.out_channels} channels, not a multiple of {num_classes + 1}")
    with torch.no_grad():
        bias = predictor.bias.view(-1, num_classes + 1)
        bias[:, 0] = 0.0
        bias[:, 1:] = math.log(prior_prob / (num_classes * (1.0 - prior_prob)))


class TinySSD(nn.Module):
    """The book's five-scale single-shot detector.

    ``forward(X)`` returns ``(anchors, cls_preds, bbox_preds)`` shaped ``(1, A, 4)``,
    ``(B, A, num_classes + 1)`` and ``(B, 4A)``; ``A = 5444`` for 256 x 256 inputs. Feed
    ``cls_preds`` through a softmax and permute to ``(B, num_classes + 1, A)`` for
    :func:`cvflow.detection.multibox_detection`.

    ``prior_prob``: ``None`` (default) keeps PyTorch's default initialisation, as the book
    does. A probability ``pi`` (0.01 is usual) instead starts every class predictor's
    biases so that each anchor begins with probability ``pi`` of being an object, split
    evenly over the classes (:func:`init_class_prior`). This is the prior initialisation of
    RetinaNet (Lin et al., *Focal Loss for Dense Object Detection*, 2017, section 4.1).
    Nearly every anchor is background: about 0.3% of them on bananas. Starting near
    p = 0.5 makes the first steps spend themselves learning "background everywhere" and
    leaves the few object anchors below the arg-max. On the demo bananas (96 px, AdamW)
    the default init ends 20 epochs at class error 3.27e-3, hardly under the
    all-background 3.47e-3, with mAP@0.5 0.80; with 0.01, 15 epochs reach 2.25e-3 and 0.89.
    """

    def __init__(
        self,
        num_classes: int,
        sizes: Sequence[Sequence[float]] = SIZES,
        ratios: Sequence[Sequence[float]] = RATIOS,
        prior_prob: float | None = None,
    ) -> None:
        super().__init__()
        if len(sizes) != 5 or len(ratios) != 5:
            raise ValueError("TinySSD has five scales: give five size lists and five ratio lists")
        self.num_classes = num_classes
        self.sizes = [list(s) for s in sizes]
        self.ratios = [list(r) for r in ratios]
        num_anchors = {len(s) + len(r) - 1 for s, r in zip(self.sizes, self.ratios)}
        if len(num_anchors) != 1:
            raise ValueError("every scale needs the same number of anchors per cell")
        self.num_anchors = num_anchors.pop()
        idx_to_in_channels = [64, 128, 128, 128, 128]
        for i in range(5):
            # The book's attribute names (self.blk_i, self.cls_i, self.bbox_i).
            setattr(self, f"blk_{i}", get_blk(i))
            setattr(self, f"cls_{i}", cls_predictor(idx_to_in_channels[i], self.num_anchors, num_classes))
            setattr(self, f"bbox_{i}", bbox_predictor(idx_to_in_channels[i], self.num_anchors))
        self.prior_prob = prior_prob
        if prior_prob is not None:
            for i in range(5):
                init_class_prior(getattr(self, f"cls_{i}"), num_classes, prior_prob)

    def forward(self, X: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        anchors, cls_preds, bbox_preds = [None] * 5, [None] * 5, [None] * 5
        for i in range(5):
            X, anchors[i], cls_preds[i], bbox_preds[i] = blk_forward(
                X,
                getattr(self, f"blk_{i}"),
                self.sizes[i],
                self.ratios[i],
                getattr(self, f"cls_{i}"),
                getattr(self, f"bbox_{i}"),
            )
        all_anchors = torch.cat(anchors, dim=1)
        all_cls = concat_preds(cls_preds)
        all_cls = all_cls.reshape(all_cls.shape[0], -1, self.num_classes + 1)
        return all_anchors, all_cls, concat_preds(bbox_preds)


def calc_loss(
    cls_preds: Tensor,
    cls_labels: Tensor,
    bbox_preds: Tensor,
    bbox_labels: Tensor,
    bbox_masks: Tensor,
    *,
    ignore_index: int | None = None,
) -> Tensor:
    """The book's SSD loss, one value per example: ``(B,)``.

    Cross-entropy over the anchors' classes (mean over the anchors of the example) plus
    the L1 distance of the masked offsets (mean over the ``4A`` offsets), exactly as
    ``calc_loss`` in d2l 13.7. Take ``.mean()`` (or ``.sum()``) to train.

    ``ignore_index``: for targets that mark anchors to leave out of the class loss (for
    example ``-1`` from a labeller that flags padding or ambiguous anchors). Those anchors
    then add nothing, and the class term is the mean over the remaining anchors of the
    example (0 when none remain). ``None`` (default) is the book: every anchor counts.
    Padded *ground-truth rows* need no option: :func:`multibox_target` already ignores
    them, and the offset mask is 0 for every anchor they might have touched.
    """
    batch_size, num_classes = cls_preds.shape[0], cls_preds.shape[2]
    logits, targets = cls_preds.reshape(-1, num_classes), cls_labels.reshape(-1).long()
    if ignore_index is None:
        cls = F.cross_entropy(logits, targets, reduction="none").reshape(batch_size, -1).mean(dim=1)
    else:
        per_anchor = F.cross_entropy(logits, targets, reduction="none", ignore_index=ignore_index)
        counted = (targets != ignore_index).reshape(batch_size, -1).sum(dim=1).clamp(min=1)
        cls = per_anchor.reshape(batch_size, -1).sum(dim=1) / counted
    bbox = F.l1_loss(bbox_preds * bbox_masks, bbox_labels * bbox_masks, reduction="none").mean(dim=1)
    return cls + bbox


class MultiboxLoss(nn.Module):
    """:func:`calc_loss` as a module, with a reduction over the batch.

    ``reduction``: ``"none"`` (per example, the book's ``calc_loss``), ``"mean"`` (what the
    book back-propagates: ``l.mean()``) or ``"sum"``. ``ignore_index``: see :func:`calc_loss`.
    """

    def __init__(self, reduction: str = "mean", ignore_index: int | None = None) -> None:
        super().__init__()
        if reduction not in ("none", "mean", "sum"):
            raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction
        self.ignore_index = ignore_index

    def forward(
        self, cls_preds: Tensor, cls_labels: Tensor, bbox_preds: Tensor, bbox_labels: Tensor, bbox_masks: Tensor
    ) -> Tensor:
        loss = calc_loss(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks, ignore_index=self.ignore_index)
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss


def cls_eval(cls_preds: Tensor, cls_labels: Tensor) -> float:
    """Number of anchors whose arg-max class equals the label (the book's ``cls_eval``)."""
    return float((cls_preds.argmax(dim=-1).type(cls_labels.dtype) == cls_labels).sum())


def bbox_eval(bbox_preds: Tensor, bbox_labels: Tensor, bbox_masks: Tensor) -> float:
    """Sum of absolute offset errors over assigned anchors (the book's ``bbox_eval``)."""
    return float((torch.abs((bbox_labels - bbox_preds) * bbox_masks)).sum())


@dataclass
class DetectionTask:
    """The engine's task for the book's SSD training (13.7): loss, class error and bbox MAE.

    ``reduction``: the per-image losses are averaged (``mean``, the book's ``l.mean()``) or summed.

    Batches are :func:`cvflow.data.readers.bananas.book_collate`'s ``(images, labels (B, m, 5))``.
    Every statistic stays a device tensor (no ``.item()`` per batch, unlike the book's
    ``cls_eval``/``bbox_eval``); the engine reads the sums once per epoch.
    """

    reduction: str = "mean"

    def _forward(self, model, batch):
        images, labels = batch
        return self.loss_and_sums(model(images), labels)

    def loss_and_sums(self, outputs, labels):
        """Loss and sums from the model's ``(anchors, cls_preds, bbox_preds)`` (one forward pass serves
        both these statistics and :func:`cvflow.detection.multibox_detection`)."""
        from cvflow.detection.boxes import multibox_target

        anchors, cls_preds, bbox_preds = outputs
        device, batch_size = bbox_preds.device, bbox_preds.shape[0]
        bbox_labels, bbox_masks, cls_labels = multibox_target(anchors, labels)
        losses = calc_loss(cls_preds.float(), cls_labels, bbox_preds.float(), bbox_labels, bbox_masks)
        sums = {
            "loss": losses.detach().sum(),
            "count": torch.full((), float(batch_size), device=device),
            "cls_correct": (cls_preds.detach().argmax(dim=-1) == cls_labels).sum().double(),
            "cls_total": torch.full((), float(cls_labels.numel()), device=device),
            "cls_positive": (cls_labels > 0).sum().double(),
            "bbox_abs": (torch.abs((bbox_labels - bbox_preds.detach().float()) * bbox_masks)).sum().double(),
            "bbox_total": torch.full((), float(bbox_labels.numel()), device=device),
        }
        return reduce_loss(losses, self.reduction), sums

    def train_step(self, model, batch):
        return self._forward(model, batch)

    def eval_step(self, model, batch):
        return self._forward(model, batch)[1]

    def summarize(self, sums, split):
        return {
            f"{split}_loss": sums["loss"] / max(sums["count"], 1.0),
            f"{split}_class_err": 1.0 - sums["cls_correct"] / max(sums["cls_total"], 1.0),
            # what predicting background for every anchor scores: the bar a useful model beats
            f"{split}_class_err_baseline": sums.get("cls_positive", 0.0) / max(sums["cls_total"], 1.0),
            f"{split}_bbox_mae": sums["bbox_abs"] / max(sums["bbox_total"], 1.0),
        }


@register_model("tinyssd", init_only=("prior_prob",))
def tinyssd(num_classes: int, sizes: Sequence[Sequence[float]] = SIZES, ratios: Sequence[Sequence[float]] = RATIOS,
            prior_prob: float | None = None) -> TinySSD:
    """:class:`TinySSD`, built so that its model file records it (``prior_prob`` only initialises)."""
    return TinySSD(num_classes, sizes, ratios, prior_prob)


def detect(outputs: tuple[Tensor, Tensor, Tensor], nms_threshold: float) -> Tensor:
    """The book's ``predict`` on ``net(images)`` = (anchors, class scores, offsets): softmax, then
    :func:`~cvflow.detection.boxes.multibox_detection` -> ``(B, A, 6)`` rows (class or -1, score,
    corners in [0, 1]), sorted by score."""
    from cvflow.detection.boxes import multibox_detection

    anchors, cls_preds, bbox_preds = outputs
    cls_probs = torch.softmax(cls_preds, dim=2).permute(0, 2, 1)
    return multibox_detection(cls_probs, bbox_preds, anchors, nms_threshold=nms_threshold)


def detections(rows: Tensor, conf_threshold: float, width: int, height: int) -> Tensor:
    """One image's rows of :func:`detect` (class, score, corners in [0, 1]) as ``(k, 6)``: the real boxes
    scoring at least ``conf_threshold``, corners in the pixels of a ``width`` x ``height`` image, inside it."""
    kept = rows[(rows[:, 0] >= 0) & (rows[:, 1] >= conf_threshold)]
    scale = torch.tensor([width, height] * 2, dtype=kept.dtype, device=kept.device)
    corners = torch.minimum((kept[:, 2:] * scale).clamp(min=0), scale)
    return torch.cat([kept[:, :2], corners], dim=1)
