"""Tests for cvflow.detection (d2l 13.3-13.8).

Three kinds of checks:

* the book's printed examples, digit for digit (anchors of the 561x728 cat-dog image,
  the labelling of five anchors, the NMS example, RoI pooling);
* agreement with the book's own code, transcribed below (``ref_*``: per image, per
  kept box, exactly as printed in the PyTorch edition, except the integer-division fix
  in the anchor assignment), on random batched inputs without ties;
* properties and the deliberate deviations: IoU, offset round trips, padded labels,
  stable tie-breaking, integer division, batched NMS, TinySSD shapes, the loss.
"""

from __future__ import annotations

import math

import pytest
import torch
import torchvision

from cvflow.detection.boxes import (
    assign_anchor_to_bbox,
    box_center_to_corner,
    box_corner_to_center,
    box_iou,
    multibox_detection,
    multibox_prior,
    multibox_target,
    nms,
    offset_boxes,
    offset_inverse,
)
from cvflow.detection.roi import roi_align, roi_pool
from cvflow.detection.ssd import RATIOS, SIZES, DetectionTask, MultiboxLoss, TinySSD, bbox_eval, calc_loss, cls_eval
from cvflow.detection.boxes import _assign_from_iou, _nms_per_group, _nms_single, _separate_groups

from cvflow.detection.reference import (  # the book's per-image code: the oracle
    multibox_prior as ref_multibox_prior,
    box_iou as ref_box_iou,
    assign_anchor_to_bbox as ref_assign_anchor_to_bbox,
    offset_boxes as ref_offset_boxes,
    multibox_target as ref_multibox_target,
    offset_inverse as ref_offset_inverse,
    nms as ref_nms,
    multibox_detection as ref_multibox_detection,
    calc_loss as ref_calc_loss,
)


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


def random_boxes(n: int, gen: torch.Generator, min_size: float = 0.05, max_size: float = 0.6) -> torch.Tensor:
    """``(n, 4)`` random corner boxes inside the unit square."""
    wh = torch.rand(n, 2, generator=gen) * (max_size - min_size) + min_size
    xy = torch.rand(n, 2, generator=gen) * (1 - wh)
    return torch.cat([xy, xy + wh], dim=1)


def small_ssd_anchors() -> torch.Tensor:
    """``(1, 336, 4)``: TinySSD-style anchors of an 8x8, a 4x4 and a 1x1 feature map."""
    parts = [
        multibox_prior(torch.zeros(1, 1, s, s), sizes=SIZES[i], ratios=RATIOS[i])
        for i, s in ((0, 8), (1, 4), (4, 1))
    ]
    return torch.cat(parts, dim=1)


def random_labels(batch: int, num_boxes: int, gen: torch.Generator, num_classes: int = 3) -> torch.Tensor:
    """``(batch, num_boxes, 5)`` labels ``(class, x1, y1, x2, y2)``, no padding."""
    cls = torch.randint(0, num_classes, (batch, num_boxes, 1), generator=gen).float()
    boxes = random_boxes(batch * num_boxes, gen, 0.1, 0.7).reshape(batch, num_boxes, 4)
    return torch.cat([cls, boxes], dim=2)


def assert_same_target(ours, ref):
    """The three outputs of multibox_target agree exactly (values, dtypes)."""
    for o, r, name in zip(ours, ref, ("bbox_offset", "bbox_mask", "class_labels")):
        assert o.dtype == r.dtype, name
        assert torch.equal(o, r), name


# ---------------------------------------------------------------------------------------
# 13.3 bounding boxes
# ---------------------------------------------------------------------------------------


def test_box_format_round_trip_book_example():
    dog_bbox, cat_bbox = [60.0, 45.0, 378.0, 516.0], [400.0, 112.0, 655.0, 493.0]
    boxes = torch.tensor((dog_bbox, cat_bbox))
    center = box_corner_to_center(boxes)
    assert torch.equal(center, torch.tensor([[219.0, 280.5, 318.0, 471.0], [527.5, 302.5, 255.0, 381.0]]))
    assert torch.equal(box_center_to_corner(center), boxes)
    # batched (..., 4) input
    batched = torch.stack([boxes, boxes * 2])
    assert torch.equal(box_corner_to_center(batched)[1], box_corner_to_center(boxes * 2))


# ---------------------------------------------------------------------------------------
# 13.4.1 anchors
# ---------------------------------------------------------------------------------------


def test_multibox_prior_book_example():
    h, w = 561, 728
    Y = multibox_prior(torch.zeros(1, 3, h, w), sizes=[0.75, 0.5, 0.25], ratios=[1, 2, 0.5])
    assert Y.shape == (1, 2042040, 4)
    boxes = Y.reshape(h, w, 5, 4)
    printed = torch.round(boxes[250, 250, 0, :] * 100) / 100
    assert printed.tolist() == pytest.approx([0.06, 0.07, 0.63, 0.82], abs=1e-6)
    # The anchor of size 0.75, ratio 1 at pixel (250, 250): centre ((250.5)/w, (250.5)/h),
    # width 0.75 * h / w, height 0.75.
    cx, cy = 250.5 / w, 250.5 / h
    expected = [cx - 0.375 * h / w, cy - 0.375, cx + 0.375 * h / w, cy + 0.375]
    assert boxes[250, 250, 0].tolist() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "shape, sizes, ratios",
    [
        ((561, 728), [0.75, 0.5, 0.25], [1, 2, 0.5]),
        ((7, 11), [0.3], [1, 3, 1 / 3, 0.7]),
        ((32, 32), SIZES[0], RATIOS[0]),
        ((1, 1), SIZES[4], RATIOS[4]),
    ],
)
def test_multibox_prior_bit_identical_to_book(shape, sizes, ratios):
    data = torch.zeros(2, 3, *shape)
    assert torch.equal(multibox_prior(data, sizes, ratios), ref_multibox_prior(data, sizes, ratios))


# ---------------------------------------------------------------------------------------
# IoU
# ---------------------------------------------------------------------------------------


def test_box_iou_properties():
    gen = torch.Generator().manual_seed(0)
    a, b = random_boxes(50, gen), random_boxes(40, gen)
    iou = box_iou(a, b)
    assert iou.shape == (50, 40)
    assert torch.equal(iou, box_iou(b, a).T)  # symmetric
    assert ((iou >= 0) & (iou <= 1)).all()
    assert torch.allclose(torch.diagonal(box_iou(a, a)), torch.ones(50), atol=1e-6)  # identical -> 1
    left = a * torch.tensor([0.4, 1.0, 0.4, 1.0])  # x within [0, 0.4]
    right = b * torch.tensor([0.4, 1.0, 0.4, 1.0]) + torch.tensor([0.5, 0.0, 0.5, 0.0])  # x in [0.5, 0.9]
    assert torch.equal(box_iou(left, right), torch.zeros(50, 40))  # disjoint -> 0
    # The same numbers as the book's box_iou.
    assert torch.equal(iou, ref_box_iou(a, b))
    # Known value: two unit squares overlapping by half.
    half = box_iou(torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([[0.5, 0.0, 1.5, 1.0]]))
    assert half.item() == pytest.approx(1 / 3)


def test_box_iou_broadcasts_over_a_batch():
    gen = torch.Generator().manual_seed(1)
    anchors, gt = random_boxes(30, gen), random_boxes(12, gen).reshape(3, 4, 4)
    batched = box_iou(anchors, gt)
    assert batched.shape == (3, 30, 4)
    for i in range(3):
        assert torch.equal(batched[i], ref_box_iou(anchors, gt[i]))


# ---------------------------------------------------------------------------------------
# Offsets
# ---------------------------------------------------------------------------------------


def test_offset_round_trip():
    gen = torch.Generator().manual_seed(2)
    anchors, boxes = random_boxes(200, gen), random_boxes(200, gen)
    offsets = offset_boxes(anchors, boxes)
    assert torch.equal(offsets, ref_offset_boxes(anchors, boxes))
    assert torch.allclose(offset_inverse(anchors, offsets), boxes, atol=1e-5)
    # and the other way round: offsets -> boxes -> offsets
    preds = torch.randn(200, 4, generator=gen)
    again = offset_boxes(anchors, offset_inverse(anchors, preds))
    assert torch.allclose(again, preds, atol=1e-3)
    assert torch.equal(offset_inverse(anchors, preds), ref_offset_inverse(anchors, preds))
    # An anchor's offset to itself: zero shift, 5 * log(1 + eps) scale.
    self_offsets = offset_boxes(anchors, anchors)
    assert torch.equal(self_offsets[:, :2], torch.zeros(200, 2))
    assert torch.allclose(self_offsets[:, 2:], torch.full((200, 2), 5 * math.log1p(1e-6)), atol=1e-6)
    # Broadcasting: shared anchors (A, 4) against a batch (B, A, 4).
    batch = boxes.reshape(1, 200, 4).expand(3, 200, 4)
    assert torch.equal(offset_boxes(anchors, batch)[2], offsets)


# ---------------------------------------------------------------------------------------
# 13.4.3 labelling
# ---------------------------------------------------------------------------------------

GROUND_TRUTH = torch.tensor([[0, 0.1, 0.08, 0.52, 0.92], [1, 0.55, 0.2, 0.9, 0.88]])
FIVE_ANCHORS = torch.tensor(
    [[0, 0.1, 0.2, 0.3], [0.15, 0.2, 0.4, 0.4], [0.63, 0.05, 0.88, 0.98], [0.66, 0.45, 0.8, 0.8], [0.57, 0.3, 0.92, 0.9]]
)


def test_multibox_target_book_example():
    labels = multibox_target(FIVE_ANCHORS.unsqueeze(dim=0), GROUND_TRUTH.unsqueeze(dim=0))
    assert labels[2].tolist() == [[0, 1, 2, 0, 2]]
    assert labels[2].dtype == torch.long
    assert labels[1].tolist() == [[0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1]]
    printed = [
        "-0.00e+00", "-0.00e+00", "-0.00e+00", "-0.00e+00", "1.40e+00", "1.00e+01",
        "2.59e+00", "7.18e+00", "-1.20e+00", "2.69e-01", "1.68e+00", "-1.57e+00",
        "-0.00e+00", "-0.00e+00", "-0.00e+00", "-0.00e+00", "-5.71e-01", "-1.00e+00",
        "4.17e-06", "6.26e-01",
    ]  # fmt: skip
    assert [f"{v:.2e}" for v in labels[0][0].tolist()] == printed
    assert_same_target(labels, ref_multibox_target(FIVE_ANCHORS.unsqueeze(0), GROUND_TRUTH.unsqueeze(0)))


def test_assign_anchor_to_bbox_matches_book_unbatched_and_batched():
    gen = torch.Generator().manual_seed(3)
    anchors = small_ssd_anchors()[0]
    gts = random_boxes(12, gen, 0.1, 0.7).reshape(3, 4, 4)
    batched = assign_anchor_to_bbox(gts, anchors)
    assert batched.shape == (3, anchors.shape[0])
    for i in range(3):
        expected = ref_assign_anchor_to_bbox(gts[i], anchors, "cpu")
        assert torch.equal(assign_anchor_to_bbox(gts[i], anchors, "cpu"), expected)
        assert torch.equal(batched[i], expected)
        # The greedy step gives every box at least one anchor.
        assert set(range(4)) <= set(expected.tolist())


@pytest.mark.parametrize("num_boxes", [1, 3, 7])
def test_multibox_target_matches_book_on_random_batches(num_boxes):
    gen = torch.Generator().manual_seed(10 + num_boxes)
    anchors = small_ssd_anchors()
    labels = random_labels(5, num_boxes, gen)
    ours, ref = multibox_target(anchors, labels), ref_multibox_target(anchors, labels)
    assert_same_target(ours, ref)
    assert ours[0].shape == (5, 4 * anchors.shape[1]) and ours[2].shape == (5, anchors.shape[1])
    assert (ours[2] > 0).sum() >= 5 * num_boxes  # the comparison is not vacuous
    # Anchors given as (A, 4) work the same.
    assert_same_target(multibox_target(anchors[0], labels), ref)


def test_multibox_target_random_anchors_many_boxes():
    gen = torch.Generator().manual_seed(4)
    anchors = random_boxes(400, gen, 0.05, 0.5).unsqueeze(0)
    labels = random_labels(3, 12, gen, num_classes=5)
    assert_same_target(multibox_target(anchors, labels), ref_multibox_target(anchors, labels))


def test_padded_label_rows_are_ignored():
    """Rows with class -1 (anywhere, any coordinates) change nothing and are never assigned."""
    gen = torch.Generator().manual_seed(5)
    anchors = small_ssd_anchors()
    real_counts = [1, 3, 2, 0]
    width = 6
    padded = torch.zeros(len(real_counts), width, 5)
    real_rows = []
    for b, n in enumerate(real_counts):
        real = random_labels(1, n, gen)[0]
        real_rows.append(real)
        positions = torch.randperm(width, generator=gen)[:n].sort().values
        # Padding copies real boxes (which would be matched perfectly) or gets junk.
        pad = torch.cat([torch.full((width, 1), -1.0), random_boxes(width, gen)], dim=1)
        if n:
            pad[:n, 1:] = real[:, 1:]
        pad[positions] = real
        padded[b] = pad
    out = multibox_target(anchors, padded)
    for b, real in enumerate(real_rows):
        alone = multibox_target(anchors, real.unsqueeze(0))
        assert_same_target([t[b : b + 1] for t in out], alone)
        if len(real):
            assert_same_target(alone, ref_multibox_target(anchors, real.unsqueeze(0)))
    # The all-padding image is pure background.
    assert (out[2][3] == 0).all() and (out[1][3] == 0).all() and (out[0][3] == 0).all()
    # ... and no padding row is assigned via the mapping either.
    classes = padded[..., 0]
    mapping = assign_anchor_to_bbox(padded[..., 1:], anchors, valid=classes >= 0)
    hit = mapping.clamp(min=0)
    assert (classes.gather(1, hit)[mapping >= 0] >= 0).all()


def test_multibox_target_without_any_label_rows():
    anchors = small_ssd_anchors()
    offsets, mask, cls = multibox_target(anchors, torch.zeros(2, 0, 5))
    assert offsets.shape == mask.shape == (2, 4 * anchors.shape[1])
    assert (cls == 0).all() and (mask == 0).all() and (offsets == 0).all()


def test_anchor_index_uses_integer_division():
    """Bug fix: the book decodes the flat argmax with float32 division and truncation."""
    num_gt = 2
    num_anchors = 2**23 + 8  # anchors x boxes just over 2**24
    target_anchor = 2**23 + 1
    flat_idx = target_anchor * num_gt + 1
    book = (torch.tensor(flat_idx) / num_gt).long().item()
    assert book != target_anchor  # the book's formula picks the wrong anchor here
    jaccard = torch.zeros(1, num_anchors, num_gt)
    jaccard[0, target_anchor, 1] = 0.9
    for reduce in (False, True):  # the full matrix (where the bug bites) and the reduced one
        mapping = _assign_from_iou(jaccard, reduce=reduce)[0]
        assert mapping[target_anchor].item() == 1
        assert mapping[book].item() == -1
        # The second box gets the first maximum left (all zeros): anchor 0.
        assert mapping[0].item() == 0
        assert (mapping >= 0).sum().item() == 2


def ref_greedy_on_matrix(jaccard, iou_threshold=0.5):
    """The book's assign_anchor_to_bbox from the IoU matrix on (one image, (A, M))."""
    jaccard = jaccard.clone()
    num_anchors, num_gt_boxes = jaccard.shape
    anchors_bbox_map = torch.full((num_anchors,), -1, dtype=torch.long)
    max_ious, indices = torch.max(jaccard, dim=1)
    anchors_bbox_map[max_ious >= iou_threshold] = indices[max_ious >= iou_threshold]
    for _ in range(num_gt_boxes):
        max_idx = torch.argmax(jaccard)
        box_idx, anc_idx = max_idx % num_gt_boxes, max_idx // num_gt_boxes
        anchors_bbox_map[anc_idx] = box_idx
        jaccard[:, box_idx] = -1
        jaccard[anc_idx, :] = -1
    return anchors_bbox_map


@pytest.mark.parametrize("num_anchors, num_gt", [(40, 3), (200, 6), (30, 5), (12, 4)])
def test_greedy_on_candidate_rows_equals_full_greedy_with_ties(num_anchors, num_gt):
    """The greedy step only looks at each column's top rows: same picks, ties included."""
    gen = torch.Generator().manual_seed(num_anchors + num_gt)
    # IoUs on a coarse grid (many exact ties) with plenty of zeros, as with real anchors.
    jaccard = torch.randint(0, 5, (6, num_anchors, num_gt), generator=gen).float() / 8
    jaccard[jaccard < 0.2] = 0.0
    jaccard[1] = 0.0  # nothing overlaps at all
    jaccard[2, :, -1] = 0.0  # one box overlaps nothing
    jaccard[3] = 0.25  # everything ties
    full = _assign_from_iou(jaccard, reduce=False)
    reduced = _assign_from_iou(jaccard, reduce=True)
    assert torch.equal(reduced, full)
    for b in range(jaccard.shape[0]):
        assert torch.equal(full[b], ref_greedy_on_matrix(jaccard[b]))
    # Padded columns (-1) in the reduced path too.
    padded = jaccard.clone()
    padded[:, :, 0] = -1.0
    assert torch.equal(_assign_from_iou(padded, reduce=True), _assign_from_iou(padded, reduce=False))
    assert not (_assign_from_iou(padded) == 0).any()
    # Half precision takes the same path.
    assert torch.equal(_assign_from_iou(jaccard.half()), full)


def test_multibox_target_needs_no_host_sync():
    """Runs on the meta device, where any .item()/nonzero() would fail."""
    anchors = small_ssd_anchors().to("meta")
    labels = random_labels(4, 3, torch.Generator().manual_seed(6)).to("meta")
    offsets, mask, cls = multibox_target(anchors, labels)
    assert offsets.shape == (4, 4 * anchors.shape[1]) and cls.shape == (4, anchors.shape[1])


# ---------------------------------------------------------------------------------------
# 13.4.4 NMS and detection
# ---------------------------------------------------------------------------------------


def test_multibox_detection_book_example():
    anchors = torch.tensor(
        [[0.1, 0.08, 0.52, 0.92], [0.08, 0.2, 0.56, 0.95], [0.15, 0.3, 0.62, 0.91], [0.55, 0.2, 0.9, 0.88]]
    )
    offset_preds = torch.tensor([0] * anchors.numel())
    cls_probs = torch.tensor([[0] * 4, [0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.9]])
    output = multibox_detection(cls_probs.unsqueeze(0), offset_preds.unsqueeze(0), anchors.unsqueeze(0), nms_threshold=0.5)
    expected = [
        [[0, 0.9, 0.1, 0.08, 0.52, 0.92], [1, 0.9, 0.55, 0.2, 0.9, 0.88],
         [-1, 0.8, 0.08, 0.2, 0.56, 0.95], [-1, 0.7, 0.15, 0.3, 0.62, 0.91]]
    ]  # fmt: skip
    assert output.shape == (1, 4, 6)
    assert torch.equal(torch.round(output * 100) / 100, torch.round(torch.tensor(expected) * 100) / 100)
    assert torch.equal(output, ref_multibox_detection(cls_probs.unsqueeze(0), offset_preds.unsqueeze(0), anchors.unsqueeze(0)))


def _detection_inputs(gen, batch, anchors, num_classes, background_boost):
    num_anchors = anchors.shape[1]
    logits = torch.randn(batch, num_classes + 1, num_anchors, generator=gen)
    logits[:, 0] += background_boost
    cls_probs = torch.softmax(logits, dim=1)
    offset_preds = torch.randn(batch, num_anchors * 4, generator=gen) * 0.5
    return cls_probs, offset_preds


def test_multibox_detection_matches_book_when_all_confident():
    gen = torch.Generator().manual_seed(7)
    anchors = small_ssd_anchors()
    cls_probs, offset_preds = _detection_inputs(gen, 4, anchors, 3, background_boost=0.0)
    assert cls_probs[:, 1:].max(dim=1).values.min() >= 0.01  # nothing is dropped early
    for threshold in (0.3, 0.5, 0.7):
        ours = multibox_detection(cls_probs, offset_preds, anchors, nms_threshold=threshold)
        ref = ref_multibox_detection(cls_probs, offset_preds, anchors, nms_threshold=threshold)
        assert ours.shape == (4, anchors.shape[1], 6)
        assert torch.equal(ours, ref)
        assert 10 < (ours[..., 0] >= 0).sum() < ours[..., 0].numel() - 10  # NMS kept some, dropped some


def test_multibox_detection_with_low_confidence_rows():
    """Kept detections are the book's; the -1 rows are the book's rows, in anchor order."""
    gen = torch.Generator().manual_seed(8)
    anchors = small_ssd_anchors()
    cls_probs, offset_preds = _detection_inputs(gen, 3, anchors, 2, background_boost=5.5)
    conf = cls_probs[:, 1:].max(dim=1).values
    assert 0.2 < (conf < 0.01).float().mean() < 0.95  # a real mix of both kinds
    ours = multibox_detection(cls_probs, offset_preds, anchors)
    ref = ref_multibox_detection(cls_probs, offset_preds, anchors)
    assert not torch.equal(ours, ref)  # the documented difference: order of the -1 rows
    for b in range(3):
        num_kept = int((ref[b, :, 0] >= 0).sum())
        assert num_kept > 0
        assert int((ours[b, :, 0] >= 0).sum()) == num_kept
        assert torch.equal(ours[b, :num_kept], ref[b, :num_kept])
        # Every other anchor follows, in anchor order, with the book's row for it.
        boxes = ref_offset_inverse(anchors[0], offset_preds[b].reshape(-1, 4))
        row_of_box = {tuple(r[2:].tolist()): r for r in ref[b]}
        kept_boxes = {tuple(r[2:].tolist()) for r in ref[b, :num_kept]}
        rest = [row_of_box[tuple(bx.tolist())] for bx in boxes if tuple(bx.tolist()) not in kept_boxes]
        assert torch.equal(ours[b, num_kept:], torch.stack(rest))


def test_nms_equals_torchvision_and_book_without_ties():
    gen = torch.Generator().manual_seed(9)
    for n in (1, 5, 60, 300):
        boxes = random_boxes(n, gen, 0.05, 0.4)
        scores = torch.rand(n, generator=gen)
        for threshold in (0.2, 0.5):
            ours = nms(boxes, scores, threshold)
            assert torch.equal(ours, torchvision.ops.nms(boxes, scores, threshold))
            assert torch.equal(ours, ref_nms(boxes, scores, threshold))
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).shape == (0,)


def test_nms_breaks_ties_by_lower_index():
    """Bug fix: the book's unstable argsort lets any of several tied boxes survive."""
    n = 24  # CPU sorts of 17 or more values are not stable in descending order
    shift = torch.arange(n, dtype=torch.float32)[:, None] * 0.001
    boxes = torch.tensor([[0.1, 0.1, 0.5, 0.5]]) + shift  # all overlap box 0 with IoU > 0.5
    scores = torch.full((n,), 0.7)
    assert torch.equal(nms(boxes, scores, 0.5), torch.tensor([0]))
    # Permuting the input moves the survivor with it: the tie goes to the lower index.
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    kept = nms(boxes[perm], scores[perm], 0.5)
    assert kept.tolist() == [0]
    # Ties among boxes that all survive come out in index order.
    spread = torch.tensor([[i * 0.04, 0.0, i * 0.04 + 0.03, 0.03] for i in range(n)])
    assert torch.equal(nms(spread, scores, 0.5), torch.arange(n))
    # Higher scores still come first.
    scores2 = scores.clone()
    scores2[7] = 0.9
    assert nms(spread, scores2, 0.5)[:2].tolist() == [7, 0]


def test_multibox_detection_breaks_ties_by_lower_anchor():
    n = 20
    anchors = (torch.tensor([[0.1, 0.1, 0.5, 0.5]]) + torch.arange(n)[:, None] * 0.002).unsqueeze(0)
    cls_probs = torch.zeros(1, 2, n)
    cls_probs[0, 1] = 0.6
    cls_probs[0, 0] = 0.4
    out = multibox_detection(cls_probs, torch.zeros(1, 4 * n), anchors)
    assert out[0, :, 0].tolist() == [0] + [-1] * (n - 1)
    assert torch.allclose(out[0, 0, 2:], anchors[0, 0])
    assert torch.allclose(out[0, 1:, 2:], anchors[0, 1:])  # the rest in anchor order


def test_grouped_nms_never_mixes_images():
    """Groups are separated even with negative coordinates (predicted boxes can have them).

    torchvision's batched_nms shifts group k by k * (max + 1); here that would move the
    image-1 box onto the image-0 box. The full span max - min + 1 cannot.
    """
    boxes = torch.tensor([[0.0, 0.0, 0.9, 0.9], [-1.8, -1.8, -1.0, -1.0]])
    scores = torch.tensor([0.9, 0.8])
    idxs = torch.tensor([0, 1])
    assert nms(boxes, scores, 0.5, idxs=idxs).tolist() == [0, 1]
    # The single-call strategy (used on GPUs) on its own:
    assert _nms_single(_separate_groups(boxes, idxs), scores, 0.5).tolist() == [0, 1]
    # Overlapping boxes in the same group do interact.
    same = torch.tensor([[0.0, 0.0, 0.9, 0.9], [0.1, 0.1, 0.9, 0.9], [0.1, 0.1, 0.9, 0.9]])
    keep = nms(same, torch.tensor([0.9, 0.8, 0.7]), 0.5, idxs=torch.tensor([0, 0, 1]))
    assert keep.tolist() == [0, 2]


def test_grouped_nms_strategies_agree():
    """Per-group calls (CPU) and one shifted call (GPU) give the same kept boxes and order."""
    gen = torch.Generator().manual_seed(15)
    n = 600
    centers = torch.rand(n, 2, generator=gen) * 3 - 1.5  # coordinates well below -1 too
    wh = torch.rand(n, 2, generator=gen) * 0.5 + 0.05
    boxes = torch.cat([centers - wh / 2, centers + wh / 2], dim=1)
    scores = torch.rand(n, generator=gen)
    scores[::7] = 0.5  # ties across and within groups
    idxs = torch.randint(0, 8, (n,), generator=gen)
    per_group = _nms_per_group(boxes, scores, idxs, 0.4)
    one_call = _nms_single(_separate_groups(boxes, idxs), scores, 0.4)
    assert torch.equal(per_group, one_call)
    for g in range(8):
        members = torch.nonzero(idxs == g).squeeze(1)
        expected = members[nms(boxes[members], scores[members], 0.4)]
        assert torch.equal(per_group[idxs[per_group] == g], expected)


def test_multibox_detection_batch_equals_single_images():
    gen = torch.Generator().manual_seed(11)
    anchors = small_ssd_anchors()
    cls_probs, offset_preds = _detection_inputs(gen, 5, anchors, 2, background_boost=2.0)
    batched = multibox_detection(cls_probs, offset_preds, anchors)
    for b in range(5):
        single = multibox_detection(cls_probs[b : b + 1], offset_preds[b : b + 1], anchors)
        assert torch.equal(batched[b : b + 1], single)


# ---------------------------------------------------------------------------------------
# 13.7 TinySSD and its loss
# ---------------------------------------------------------------------------------------


def test_tinyssd_full_batch_shapes():
    """The book's check: 32 images of 256x256 (shapes only, on the meta device: fast)."""
    with torch.device("meta"):
        net = TinySSD(num_classes=1)
        anchors, cls_preds, bbox_preds = net(torch.zeros((32, 3, 256, 256)))
    assert anchors.shape == (1, 5444, 4)
    assert cls_preds.shape == (32, 5444, 2)
    assert bbox_preds.shape == (32, 21776)


def test_tinyssd_forward_values():
    torch.manual_seed(0)
    net = TinySSD(num_classes=3)
    assert [n for n, _ in net.named_children()] == [f"{k}_{i}" for i in range(5) for k in ("blk", "cls", "bbox")]
    anchors, cls_preds, bbox_preds = net(torch.rand(1, 3, 256, 256))
    assert anchors.shape == (1, 5444, 4) and cls_preds.shape == (1, 5444, 4) and bbox_preds.shape == (1, 21776)
    # The anchors are the five scales' multibox_prior outputs, 32x32 down to 1x1.
    expected = torch.cat(
        [multibox_prior(torch.zeros(1, 1, s, s), SIZES[i], RATIOS[i]) for i, s in enumerate((32, 16, 8, 4, 1))], dim=1
    )
    assert torch.equal(anchors, expected)
    assert torch.isfinite(cls_preds).all() and torch.isfinite(bbox_preds).all()


def test_calc_loss_is_the_books_and_differentiable():
    torch.manual_seed(1)
    net = TinySSD(num_classes=2)
    X = torch.rand(2, 3, 64, 64)
    labels = random_labels(2, 2, torch.Generator().manual_seed(12), num_classes=2)
    anchors, cls_preds, bbox_preds = net(X)
    bbox_labels, bbox_masks, cls_labels = multibox_target(anchors, labels)
    loss = calc_loss(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks)
    assert loss.shape == (2,)
    assert torch.isfinite(loss).all() and (loss > 0).all()
    assert torch.allclose(loss, ref_calc_loss(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks))
    loss.mean().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    assert bbox_masks.sum() > 0  # the offset term took part


def test_multibox_loss_reductions_and_ignore_index():
    gen = torch.Generator().manual_seed(13)
    B, A, C = 3, 50, 4
    cls_preds = torch.randn(B, A, C, generator=gen)
    cls_labels = torch.randint(0, C, (B, A), generator=gen)
    bbox_preds, bbox_labels = torch.randn(B, 4 * A, generator=gen), torch.randn(B, 4 * A, generator=gen)
    bbox_masks = (torch.rand(B, 4 * A, generator=gen) > 0.7).float()
    per_example = calc_loss(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks)
    args = (cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks)
    assert torch.allclose(MultiboxLoss("none")(*args), per_example)
    assert torch.allclose(MultiboxLoss()(*args), per_example.mean())
    assert torch.allclose(MultiboxLoss("sum")(*args), per_example.sum())
    with pytest.raises(ValueError):
        MultiboxLoss("average")
    # ignore_index: anchors labelled -1 add nothing; the class mean is over the others.
    ignored = cls_labels.clone()
    ignored[0, :10] = -1
    ignored[2] = -1  # an example with nothing left: class term 0
    got = calc_loss(cls_preds, ignored, bbox_preds, bbox_labels, bbox_masks, ignore_index=-1)
    bbox_term = (torch.abs(bbox_preds - bbox_labels) * bbox_masks).mean(dim=1)
    ce = torch.nn.functional.cross_entropy
    assert torch.allclose(got[0], ce(cls_preds[0, 10:], cls_labels[0, 10:]) + bbox_term[0])
    assert torch.allclose(got[1], per_example[1])
    assert torch.allclose(got[2], bbox_term[2])
    assert torch.allclose(MultiboxLoss("none", ignore_index=-1)(cls_preds, ignored, *args[2:]), got)


def test_cls_eval_and_bbox_eval():
    cls_preds = torch.tensor([[[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]])
    cls_labels = torch.tensor([[1, 1, 1]])
    assert cls_eval(cls_preds, cls_labels) == 2.0
    bbox_preds = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    bbox_labels = torch.tensor([[1.5, 1.0, 0.0, 4.0]])
    assert bbox_eval(bbox_preds, bbox_labels, torch.tensor([[1.0, 1.0, 0.0, 1.0]])) == 1.5
    assert bbox_eval(bbox_preds, bbox_labels, torch.ones(1, 4)) == 4.5


# ---------------------------------------------------------------------------------------
# 13.8 RoI pooling
# ---------------------------------------------------------------------------------------


def test_roi_pool_book_example():
    X = torch.arange(16.0).reshape(1, 1, 4, 4)
    rois = torch.Tensor([[0, 0, 0, 20, 20], [0, 0, 10, 30, 30]])
    out = roi_pool(X, rois, output_size=(2, 2), spatial_scale=0.1)
    assert torch.equal(out, torch.tensor([[[[5.0, 6.0], [9.0, 10.0]]], [[[9.0, 11.0], [13.0, 15.0]]]]))
    # Per-image list of (K_i, 4) boxes is the same thing.
    assert torch.equal(roi_pool(X, [rois[:, 1:]], output_size=2, spatial_scale=0.1), out)


def test_roi_align_on_a_linear_ramp():
    """Bilinear sampling of f(x, y) = x averages to the bin centres (aligned=True)."""
    X = torch.arange(8.0).repeat(8, 1).reshape(1, 1, 8, 8)  # value = column index
    rois = torch.tensor([[0, 0.5, 0.5, 4.5, 4.5]])
    out = roi_align(X, rois, output_size=(2, 2), spatial_scale=1.0, sampling_ratio=2, aligned=True)
    # aligned=True shifts the box by -0.5 to [0, 4] in pixel-index coordinates; the bins
    # [0, 2] and [2, 4] are sampled at 0.5, 1.5 and 2.5, 3.5: means 1 and 3.
    assert torch.allclose(out, torch.tensor([[[[1.0, 3.0], [1.0, 3.0]]]]))


# ---------------------------------------------------------------------------------------
# CUDA (skipped without a GPU): same results, no host syncs in the labelling
# ---------------------------------------------------------------------------------------

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@cuda
def test_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(14)
    anchors = small_ssd_anchors()
    labels = random_labels(4, 5, gen)
    cpu_target = multibox_target(anchors, labels)
    torch.cuda.set_sync_debug_mode("error")
    try:
        gpu_target = multibox_target(anchors.cuda(), labels.cuda())
    finally:
        torch.cuda.set_sync_debug_mode("default")
    for c, g in zip(cpu_target, gpu_target):
        assert torch.allclose(c, g.cpu(), atol=1e-5)
    cls_probs, offset_preds = _detection_inputs(gen, 4, anchors, 3, background_boost=2.0)
    cpu_det = multibox_detection(cls_probs, offset_preds, anchors)
    gpu_det = multibox_detection(cls_probs.cuda(), offset_preds.cuda(), anchors.cuda()).cpu()
    assert torch.equal(cpu_det[..., 0], gpu_det[..., 0])
    assert torch.allclose(cpu_det, gpu_det, atol=1e-5)


def test_class_prior_init_starts_objects_at_the_prior():
    """RetinaNet's prior, softmax form: background 1 - pi, each class pi / K, on the biases alone."""
    torch.manual_seed(2)
    net = TinySSD(num_classes=3, prior_prob=0.01)
    for i in range(5):
        predictor = getattr(net, f"cls_{i}")
        probs = torch.softmax(predictor.bias.detach().view(-1, 4), dim=1)
        assert torch.allclose(probs[:, 0], torch.full((net.num_anchors,), 0.99))
        assert torch.allclose(probs[:, 1:], torch.full((net.num_anchors, 3), 0.01 / 3))
    # The weights are the default init: only the class biases differ from a plain model.
    torch.manual_seed(2)
    plain_net = TinySSD(num_classes=3)
    state = plain_net.state_dict()
    differ = {k for k, v in net.state_dict().items() if not torch.equal(v, state[k])}
    assert differ == {f"cls_{i}.bias" for i in range(5)}
    # With the features too, the predicted object probability starts far below 0.5 (default: near it).
    X = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        prior = torch.softmax(net.eval()(X)[1], dim=2)[..., 1:].sum(-1)
        plain = torch.softmax(plain_net.eval()(X)[1], dim=2)[..., 1:].sum(-1)
    assert prior.median() < 0.05 < 0.5 < plain.median()


@pytest.mark.parametrize("prior", [0.0, 1.0, -0.5])
def test_class_prior_out_of_range_is_refused(prior):
    with pytest.raises(ValueError, match="prior_prob"):
        TinySSD(num_classes=1, prior_prob=prior)


def test_detection_task_statistics_are_the_books_with_the_baseline():
    """DetectionTask's epoch statistics: the book's cls_eval / bbox_eval, plus the all-background bar."""
    torch.manual_seed(4)
    net = TinySSD(num_classes=2).eval()
    X = torch.rand(3, 3, 64, 64)
    labels = random_labels(3, 2, torch.Generator().manual_seed(21), num_classes=2)
    task = DetectionTask()
    with torch.no_grad():
        outputs = net(X)
        loss, sums = task.loss_and_sums(outputs, labels)
    anchors, cls_preds, bbox_preds = outputs
    bbox_labels, bbox_masks, cls_labels = multibox_target(anchors, labels)
    expected_loss = calc_loss(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks)
    assert float(loss) == pytest.approx(float(expected_loss.mean()))
    summary = task.summarize({k: float(v) for k, v in sums.items()}, "val")
    assert summary["val_loss"] == pytest.approx(float(expected_loss.mean()))
    assert summary["val_class_err"] == pytest.approx(1 - cls_eval(cls_preds, cls_labels) / cls_labels.numel())
    assert summary["val_bbox_mae"] == pytest.approx(bbox_eval(bbox_preds, bbox_labels, bbox_masks) / bbox_labels.numel())
    positives = int((cls_labels > 0).sum())
    assert 0 < positives < cls_labels.numel()
    assert summary["val_class_err_baseline"] == pytest.approx(positives / cls_labels.numel())
    # predicting background everywhere scores exactly the baseline
    background = torch.zeros_like(cls_preds)
    background[..., 0] = 1.0
    _, sums = task.loss_and_sums((anchors, background, bbox_preds), labels)
    flat = task.summarize({k: float(v) for k, v in sums.items()}, "val")
    assert flat["val_class_err"] == pytest.approx(flat["val_class_err_baseline"])
