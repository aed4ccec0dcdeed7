"""Bounding boxes, anchor boxes, labelling and non-maximum suppression (d2l 13.3-13.4).

Same names, arguments and results as the PyTorch edition of *Dive into Deep Learning*
(``d2l.multibox_prior``, ``d2l.multibox_target``, ``d2l.multibox_detection`` ...), but
batched and vectorised: no Python loop runs per anchor, and labelling has no loop per
image either. The loops left: the greedy anchor assignment runs once per ground-truth
*column* (a handful) for the whole batch, on the few rows it can pick; NMS on CPU runs
one :func:`torchvision.ops.nms` call per image (one call per batch on a GPU). IoU and NMS
come from :mod:`torchvision.ops`. Labelling never synchronises with the host, so it can
run on a GPU without stalls.

Conventions (all as in the book):

* Boxes are ``(x1, y1, x2, y2)`` corners, normalised to ``[0, 1]`` by image width/height.
* Labels are ``(class, x1, y1, x2, y2)`` rows, one tensor ``(batch, boxes, 5)``; class
  ``c`` is stored as ``c + 1`` in the anchor labels, ``0`` is background. Rows with a
  negative class (``-1``, the padding that detection loaders add so every image has the
  same number of rows) are ignored: never assigned, never counted.
* Offsets use ``mu = 0``, ``sigma_xy = 0.1``, ``sigma_wh = 0.2`` and ``eps = 1e-6`` inside
  the log.
* Detections are ``(class, confidence, x1, y1, x2, y2)`` rows, one per anchor; class
  ``-1`` marks a suppressed or low-confidence row; kept detections come first, in
  descending confidence.

Deviations from the book, each only to fix one of its bugs (see the comments in the code):

1. Anchor assignment decodes the flat argmax with integer division (the book divides in
   float32 and truncates, which picks the wrong anchor once ``anchors x boxes > 2**24``).
2. NMS breaks score ties by the lower index (a stable sort). The book's
   ``torch.argsort(..., descending=True)`` is not stable: on CPU, for 17 or more scores,
   tied boxes come out in an arbitrary order, so which of two tied boxes survives depends
   on the sort implementation (and differs between CPU and CUDA).
3. ``multibox_detection`` drops predictions under ``pos_threshold`` before NMS (the
   book's own suggestion). Kept detections are exactly the book's; rows after them
   (all class ``-1``) are in anchor order, whereas the book puts low-confidence NMS
   survivors before the suppressed rows. Row contents are otherwise the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision
from torch import Tensor

__all__ = [
    "box_corner_to_center",
    "box_center_to_corner",
    "multibox_prior",
    "box_iou",
    "assign_anchor_to_bbox",
    "offset_boxes",
    "offset_inverse",
    "multibox_target",
    "nms",
    "multibox_detection",
]


# ---------------------------------------------------------------------------------------
# 13.3 Box formats
# ---------------------------------------------------------------------------------------


def box_corner_to_center(boxes: Tensor) -> Tensor:
    """Convert ``(..., 4)`` boxes from ``(x1, y1, x2, y2)`` to ``(cx, cy, w, h)``."""
    x1, y1, x2, y2 = boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]
    cx = (x1 + x2) / 2
    cy = (y1 + y2) / 2
    w = x2 - x1
    h = y2 - y1
    return torch.stack((cx, cy, w, h), dim=-1)


def box_center_to_corner(boxes: Tensor) -> Tensor:
    """Convert ``(..., 4)`` boxes from ``(cx, cy, w, h)`` to ``(x1, y1, x2, y2)``."""
    cx, cy, w, h = boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]
    x1 = cx - 0.5 * w
    y1 = cy - 0.5 * h
    x2 = cx + 0.5 * w
    y2 = cy + 0.5 * h
    return torch.stack((x1, y1, x2, y2), dim=-1)


# ---------------------------------------------------------------------------------------
# 13.4.1 Anchor boxes
# ---------------------------------------------------------------------------------------


def multibox_prior(data: Tensor, sizes: Sequence[float], ratios: Sequence[float]) -> Tensor:
    """Anchor boxes centred on every pixel of ``data`` (shape ``(..., h, w)``).

    Each pixel gets ``n + m - 1`` anchors for ``n`` sizes and ``m`` ratios, in the book's
    order ``(s1, r1), (s2, r1), ..., (sn, r1), (s1, r2), ..., (s1, rm)``. An anchor of
    size ``s`` and ratio ``r`` is ``s * sqrt(r) * h / w`` wide and ``s / sqrt(r)`` high
    (normalised coordinates, so it is square in pixels when ``r = 1``).

    Returns ``(1, h * w * (n + m - 1), 4)`` corner boxes on ``data``'s device; pixels in
    row-major order, the anchors of one pixel consecutive. The arithmetic is the book's,
    element for element, so the values are bit-identical to ``d2l.multibox_prior``.
    """
    in_height, in_width = data.shape[-2:]
    device = data.device
    boxes_per_pixel = len(sizes) + len(ratios) - 1
    size_tensor = torch.tensor(sizes, device=device)
    ratio_tensor = torch.tensor(ratios, device=device)
    # Centres of the pixels, normalised: (i + 0.5) / h and (j + 0.5) / w.
    steps_h = 1.0 / in_height
    steps_w = 1.0 / in_width
    center_h = (torch.arange(in_height, device=device) + 0.5) * steps_h
    center_w = (torch.arange(in_width, device=device) + 0.5) * steps_w
    shift_y, shift_x = torch.meshgrid(center_h, center_w, indexing="ij")
    shift_y, shift_x = shift_y.reshape(-1), shift_x.reshape(-1)
    # Widths and heights of the boxes_per_pixel anchor shapes (rectangular inputs: the
    # width is scaled by h / w).
    w = (
        torch.cat((size_tensor * torch.sqrt(ratio_tensor[0]), sizes[0] * torch.sqrt(ratio_tensor[1:])))
        * in_height
        / in_width
    )
    h = torch.cat((size_tensor / torch.sqrt(ratio_tensor[0]), sizes[0] / torch.sqrt(ratio_tensor[1:])))
    half = torch.stack((-w, -h, w, h)).T / 2  # (boxes_per_pixel, 4)
    grid = torch.stack([shift_x, shift_y, shift_x, shift_y], dim=1)  # (h * w, 4)
    # Broadcast instead of the book's repeat/repeat_interleave: same additions, no copies.
    output = grid[:, None, :] + half[None, :, :]
    return output.reshape(1, in_height * in_width * boxes_per_pixel, 4)


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise IoU of corner boxes: ``(..., N, 4)`` x ``(..., M, 4)`` -> ``(..., N, M)``.

    :func:`torchvision.ops.box_iou` (same formula as the book's ``box_iou``); leading
    dimensions broadcast, so ``box_iou(anchors, gt)`` with anchors ``(A, 4)`` and a batch
    of ground truth ``(B, M, 4)`` gives ``(B, A, M)`` in one call. Two boxes of zero area
    give NaN (0 / 0), as in the book.
    """
    return torchvision.ops.box_iou(boxes1, boxes2)


# ---------------------------------------------------------------------------------------
# 13.4.3 Labelling anchors
# ---------------------------------------------------------------------------------------


def _greedy_candidates(jaccard: Tensor) -> tuple[Tensor, Tensor]:
    """The rows the greedy step can ever pick, in anchor order: ``(B, K)`` and ``(B, K, M)``.

    When column ``j`` is picked, at most ``M - 1`` rows are gone, so the anchor it gets is
    among the column's first ``M`` entries ordered by (IoU descending, anchor ascending).
    Restricting the greedy loop to the union of those ``M * M`` rows (kept in anchor
    order, duplicates blanked out) gives exactly the same picks, ties included, and makes
    each of its ``M`` iterations cost ``M**3`` instead of ``A * M`` per image.

    The order is made strict by a composite int64 key (IoU bits, then the reversed anchor
    index), so ``topk`` cannot break ties arbitrarily. Float64 IoU (no 32-bit key) and
    problems too small to gain get all rows.
    """
    batch, num_anchors, num_gt = jaccard.shape
    device = jaccard.device
    if jaccard.dtype == torch.float64 or num_gt * num_gt >= num_anchors or num_anchors >= 2**31:
        rows = torch.arange(num_anchors, device=device).expand(batch, num_anchors)
        return rows, jaccard.clone(memory_format=torch.contiguous_format)
    values = jaccard.float()  # exact for half precision; the key needs 32-bit floats
    # Non-negative floats order like their int32 bit patterns; -1 (discarded) is negative.
    bits = values.transpose(1, 2).contiguous().view(torch.int32).long()  # (B, M, A)
    reversed_index = (num_anchors - 1) - torch.arange(num_anchors, device=device)
    keys = (bits << 31) | reversed_index  # reversed_index < 2**31 fills the low bits
    top = keys.topk(num_gt, dim=2).indices.reshape(batch, num_gt * num_gt)
    rows = top.sort(dim=1).values
    candidates = values.gather(1, rows[..., None].expand(batch, rows.shape[1], num_gt))
    duplicate = torch.zeros_like(rows, dtype=torch.bool)
    duplicate[:, 1:] = rows[:, 1:] == rows[:, :-1]
    candidates = torch.where(duplicate[..., None], -1.0, candidates)
    return rows, candidates


def _assign_from_iou(jaccard: Tensor, iou_threshold: float = 0.5, *, reduce: bool = True) -> Tensor:
    """Book's anchor assignment, batched: ``jaccard`` is ``(B, A, M)``, returns ``(B, A)``.

    Entries to ignore (padded ground-truth columns) must already hold ``-1``, a value no
    real IoU takes. ``result[b, a]`` is the column assigned to anchor ``a`` or ``-1``.
    ``reduce=False`` runs the greedy step on all rows (same result, slower; for tests).
    """
    batch, num_anchors, num_gt = jaccard.shape
    if num_gt == 0 or num_anchors == 0:
        return torch.full((batch, num_anchors), -1, dtype=torch.long, device=jaccard.device)
    # Step 1: every anchor whose best IoU reaches the threshold takes that box (first
    # column on ties, like the book's torch.max(dim=1)).
    max_ious, indices = jaccard.max(dim=2)
    anchors_bbox_map = torch.where((max_ious >= iou_threshold) & (max_ious >= 0), indices, -1)
    # Step 2 (overrides step 1): repeatedly take the largest remaining IoU in each image,
    # give that box to that anchor, discard its row and column. One iteration per column
    # for the whole batch; images with fewer real boxes simply find nothing (max < 0).
    if reduce:
        rows, jac = _greedy_candidates(jaccard)
    else:
        rows = torch.arange(num_anchors, device=jaccard.device).expand(batch, num_anchors)
        jac = jaccard.clone(memory_format=torch.contiguous_format)
    num_rows = jac.shape[1]
    flat = jac.view(batch, num_rows * num_gt)
    images = torch.arange(batch, device=jaccard.device)
    for _ in range(num_gt):
        max_idx = flat.argmax(dim=1)  # first maximum in row-major order, as in the book
        found = flat.gather(1, max_idx[:, None]).squeeze(1) >= 0
        box_idx = max_idx % num_gt
        # Bug fix: the book computes (max_idx / num_gt_boxes).long(), a float32 division
        # that rounds to the wrong anchor once anchors * boxes exceeds 2**24.
        row_idx = torch.div(max_idx, num_gt, rounding_mode="floor")
        anc_idx = rows.gather(1, row_idx[:, None]).squeeze(1)
        current = anchors_bbox_map[images, anc_idx]
        anchors_bbox_map[images, anc_idx] = torch.where(found, box_idx, current)
        jac[images, :, box_idx] = -1
        jac[images, row_idx, :] = -1
    return anchors_bbox_map


def assign_anchor_to_bbox(
    ground_truth: Tensor,
    anchors: Tensor,
    device: torch.device | str | None = None,
    iou_threshold: float = 0.5,
    *,
    valid: Tensor | None = None,
) -> Tensor:
    """Assign the closest ground-truth box to each anchor (the book's greedy algorithm).

    First every anchor whose largest IoU with any box is ``>= iou_threshold`` takes that
    box; then, greedily, the largest remaining entry of the IoU matrix assigns its box to
    its anchor (overriding step one) and its row and column are discarded, until every box
    has an anchor.

    Args:
        ground_truth: ``(M, 4)`` corner boxes, or ``(B, M, 4)`` for a batch.
        anchors: ``(A, 4)`` corner boxes (or ``(1, A, 4)``, or ``(B, A, 4)``).
        device: accepted for compatibility with the book; the result lives on the
            inputs' device.
        iou_threshold: IoU an anchor needs to take its best box in step one.
        valid: optional ``(M,)`` / ``(B, M)`` bool mask; ``False`` rows are padding and
            are never assigned.

    Returns:
        ``(A,)`` (or ``(B, A)``) long tensor: the assigned box index, or ``-1``.
    """
    del device  # the book's argument; tensors already carry their device
    unbatched = ground_truth.dim() == 2
    gt = ground_truth.unsqueeze(0) if unbatched else ground_truth
    if anchors.dim() == 3 and anchors.shape[0] == 1:
        anchors = anchors[0]
    jaccard = box_iou(anchors, gt)  # (B, A, M)
    if valid is not None:
        mask = valid.unsqueeze(0) if valid.dim() == 1 else valid
        jaccard = torch.where(mask[:, None, :], jaccard, -1.0)
    result = _assign_from_iou(jaccard, iou_threshold)
    return result[0] if unbatched else result


def offset_boxes(anchors: Tensor, assigned_bb: Tensor, eps: float = 1e-6) -> Tensor:
    """Offsets of ``assigned_bb`` relative to ``anchors`` (both ``(..., 4)`` corners).

    ``(10 * dx / w_a, 10 * dy / h_a, 5 * log(eps + w_b / w_a), 5 * log(eps + h_b / h_a))``
    (the book's ``sigma_xy = 0.1``, ``sigma_wh = 0.2``); shapes broadcast.
    """
    c_anc = box_corner_to_center(anchors)
    c_assigned_bb = box_corner_to_center(assigned_bb)
    offset_xy = 10 * (c_assigned_bb[..., :2] - c_anc[..., :2]) / c_anc[..., 2:]
    offset_wh = 5 * torch.log(eps + c_assigned_bb[..., 2:] / c_anc[..., 2:])
    return torch.cat(torch.broadcast_tensors(offset_xy, offset_wh), dim=-1)


def offset_inverse(anchors: Tensor, offset_preds: Tensor) -> Tensor:
    """Boxes predicted from ``anchors`` and offsets (inverse of :func:`offset_boxes`).

    Both ``(..., 4)``; shapes broadcast. Returns corner boxes.
    """
    anc = box_corner_to_center(anchors)
    pred_bbox_xy = (offset_preds[..., :2] * anc[..., 2:] / 10) + anc[..., :2]
    pred_bbox_wh = torch.exp(offset_preds[..., 2:] / 5) * anc[..., 2:]
    pred_bbox = torch.cat(torch.broadcast_tensors(pred_bbox_xy, pred_bbox_wh), dim=-1)
    return box_center_to_corner(pred_bbox)


def _shared_anchors(anchors: Tensor) -> Tensor:
    """``(1, A, 4)`` -> ``(A, 4)``; ``(A, 4)`` and per-image ``(B, A, 4)`` unchanged."""
    return anchors[0] if anchors.dim() == 3 and anchors.shape[0] == 1 else anchors


def multibox_target(anchors: Tensor, labels: Tensor, iou_threshold: float = 0.5) -> tuple[Tensor, Tensor, Tensor]:
    """Label anchors with classes and offsets from the ground truth, for a whole batch.

    Args:
        anchors: ``(1, A, 4)`` (as TinySSD returns them) or ``(A, 4)``.
        labels: ``(B, M, 5)`` rows ``(class, x1, y1, x2, y2)``; rows with a negative
            class are padding and are ignored.
        iou_threshold: see :func:`assign_anchor_to_bbox` (the book's default 0.5).

    Returns:
        ``(bbox_offset, bbox_mask, class_labels)``: offsets ``(B, 4A)`` (zero for
        background anchors), mask ``(B, 4A)`` (1 for the four offsets of an assigned
        anchor) and class labels ``(B, A)`` long (0 background, class ``c`` as ``c + 1``).
        The same values as ``d2l.multibox_target``; no host synchronisation.
    """
    anchors = _shared_anchors(anchors)
    batch, num_anchors = labels.shape[0], anchors.shape[-2]
    if labels.shape[1] == 0:  # no ground truth at all: every anchor is background
        labels = torch.full((batch, 1, 5), -1.0, dtype=labels.dtype, device=labels.device)
    classes, gt_boxes = labels[..., 0], labels[..., 1:]
    jaccard = box_iou(anchors, gt_boxes)  # (B, A, M)
    jaccard = torch.where((classes >= 0)[:, None, :], jaccard, -1.0)
    anchors_bbox_map = _assign_from_iou(jaccard, iou_threshold)  # (B, A)
    assigned = anchors_bbox_map >= 0
    bb_idx = anchors_bbox_map.clamp(min=0)
    class_labels = torch.where(assigned, classes.gather(1, bb_idx).long() + 1, 0)
    gathered = gt_boxes.gather(1, bb_idx[..., None].expand(batch, num_anchors, 4))
    assigned_bb = torch.where(assigned[..., None], gathered, 0.0)
    bbox_mask = assigned[..., None].to(assigned_bb.dtype).expand(batch, num_anchors, 4)
    # As in the book, offsets are computed for every anchor (background ones against a
    # zero box) and multiplied by the mask, so background offsets are (signed) zeros.
    offset = offset_boxes(anchors, assigned_bb) * bbox_mask
    return offset.reshape(batch, -1), bbox_mask.reshape(batch, -1), class_labels


# ---------------------------------------------------------------------------------------
# 13.4.4 Non-maximum suppression
# ---------------------------------------------------------------------------------------


def _stable_ranks(scores: Tensor, dtype: torch.dtype) -> Tensor:
    """Strictly decreasing stand-in scores that order boxes like a stable descending sort.

    Feeding torchvision's NMS these ranks instead of the scores makes it process the boxes
    in exactly that order, so ties go to the lower index on every device (bug fix, see the
    module docstring). ``dtype`` must hold the integers up to ``N`` exactly.
    """
    order = torch.sort(scores, descending=True, stable=True).indices
    ranks = torch.empty(scores.shape, dtype=dtype, device=scores.device)
    ranks[order] = torch.arange(scores.numel(), 0, -1, dtype=dtype, device=scores.device)
    return ranks


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float, idxs: Tensor | None = None) -> Tensor:
    """Non-maximum suppression; indices of the kept boxes in descending score order.

    A box is dropped when its IoU with a kept box of higher score exceeds
    ``iou_threshold``. Equal scores are ordered by index (the lower index wins), unlike
    the book's unstable ``argsort``. Computed by :func:`torchvision.ops.nms`.

    Args:
        boxes: ``(N, 4)`` corner boxes.
        scores: ``(N,)``.
        iou_threshold: IoU above which the lower-scored box is suppressed.
        idxs: optional ``(N,)`` non-negative group index (e.g. the image of each box):
            boxes of different groups never suppress each other. The result is sorted by
            descending score across groups, ties by index.
    """
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.long, device=boxes.device)
    if idxs is None:
        return _nms_single(boxes, scores, iou_threshold)
    if boxes.device.type == "cpu":
        keep = _nms_per_group(boxes, scores, idxs, iou_threshold)
    else:
        keep = _nms_single(_separate_groups(boxes, idxs), scores, iou_threshold)
    return keep


def _nms_single(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """One torchvision NMS call, processing boxes in stable descending score order."""
    if boxes.dtype != torch.float64:
        boxes = boxes.float()  # float32 arithmetic, as in the book (half precision upcast)
    # float32 holds every integer up to 2**24 exactly; past that, rank in float64.
    rank_dtype = boxes.dtype if boxes.shape[0] <= 2**24 else torch.float64
    ranks = _stable_ranks(scores, rank_dtype)
    return torchvision.ops.nms(boxes.to(rank_dtype), ranks, iou_threshold)


def _nms_per_group(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """Grouped NMS on CPU: one call per group.

    The CPU kernel compares each kept box with every later box of the call, so one call
    over all images costs (total boxes)**2 while per-image calls cost the sum of the
    squares (torchvision's batched_nms makes the same choice on CPU). The loop runs over
    groups (images), never over boxes.
    """
    order = torch.sort(idxs, stable=True).indices
    counts = torch.unique_consecutive(idxs[order], return_counts=True)[1].tolist()
    kept = [
        members[_nms_single(boxes[members], scores[members], iou_threshold)] for members in order.split(counts)
    ]
    keep = torch.cat(kept).sort().values
    return keep[torch.sort(scores[keep], descending=True, stable=True).indices]


def _separate_groups(boxes: Tensor, idxs: Tensor) -> Tensor:
    """Shift each group's boxes (in float64) so that different groups never overlap.

    Lets one NMS call (one kernel launch on a GPU) handle every image of a batch.
    torchvision's own ``batched_nms`` shifts by ``idx * (max + 1)``, which lets groups
    overlap when coordinates go below -1 (predicted boxes can); shifting by the full
    span ``max - min + 1`` cannot. Float64 keeps the shifted coordinates (nearly) exact.
    """
    boxes64 = boxes.to(torch.float64)
    finite = torch.isfinite(boxes64)
    lo = torch.where(finite, boxes64, float("inf")).min()
    hi = torch.where(finite, boxes64, float("-inf")).max()
    span = hi - lo + 1
    span = torch.where(torch.isfinite(span), span, 1.0)  # no finite coordinate at all
    return boxes64 + (idxs.to(torch.float64) * span)[:, None]


def multibox_detection(
    cls_probs: Tensor,
    offset_preds: Tensor,
    anchors: Tensor,
    nms_threshold: float = 0.5,
    pos_threshold: float = 0.009999999,
) -> Tensor:
    """Predicted boxes after non-maximum suppression, for a whole batch.

    Args:
        cls_probs: ``(B, num_classes + 1, A)`` class probabilities (class 0 background).
        offset_preds: ``(B, 4A)`` predicted offsets.
        anchors: ``(1, A, 4)`` or ``(A, 4)``.
        nms_threshold: IoU above which a lower-confidence box is suppressed
            (class-agnostic, within each image).
        pos_threshold: predictions with confidence below it are background.

    Returns:
        ``(B, A, 6)`` rows ``(class, confidence, x1, y1, x2, y2)``, one per anchor, where
        confidence is the best non-background probability and class its index (0-based,
        background excluded). Kept detections come first in descending confidence (ties:
        lower anchor index first); then every other anchor in anchor order with class
        ``-1``: suppressed rows keep their confidence, rows under ``pos_threshold`` get
        ``1 - confidence`` (as in the book).

    Predictions under ``pos_threshold`` are dropped before NMS (they could only suppress
    boxes of even lower confidence), so the kept detections are exactly the book's and
    only the order of the ``-1`` rows differs (the book lists low-confidence NMS survivors
    before the suppressed rows). NMS is torchvision's, grouped by image: one call for the
    whole batch on a GPU, one per image on CPU (see :func:`nms`). The only host
    synchronisation is the count of candidates (and, on CPU, of candidates per image).
    """
    anchors = _shared_anchors(anchors)
    batch, num_anchors = cls_probs.shape[0], cls_probs.shape[2]
    conf, class_id = torch.max(cls_probs[:, 1:], dim=1)  # (B, A)
    predicted_bb = offset_inverse(anchors, offset_preds.reshape(batch, num_anchors, 4))
    predicted_bb = predicted_bb.expand(batch, num_anchors, 4)
    below = conf < pos_threshold
    img_idx, anc_idx = torch.nonzero(~below, as_tuple=True)
    keep = nms(predicted_bb[img_idx, anc_idx], conf[img_idx, anc_idx], nms_threshold, idxs=img_idx)
    kept = torch.zeros((batch, num_anchors), dtype=torch.bool, device=cls_probs.device)
    kept[img_idx[keep], anc_idx[keep]] = True
    # Kept rows by descending confidence, then the rest by anchor index: a stable sort on
    # a key that puts every non-kept row at -inf.
    key = torch.where(kept, conf, float("-inf"))
    order = torch.sort(key, dim=1, descending=True, stable=True).indices
    class_out = torch.where(kept, class_id, -1)
    conf_out = torch.where(below, 1 - conf, conf)
    pred_info = torch.cat(
        (class_out.unsqueeze(-1).to(conf.dtype), conf_out.unsqueeze(-1), predicted_bb.to(conf.dtype)), dim=-1
    )
    return pred_info.gather(1, order[..., None].expand(batch, num_anchors, 6))
