"""Benchmark: batched multibox_target / multibox_detection against the book's per-image code.

    python benchmarks/bench_detection.py [--threads N]

TinySSD scale: a batch of 32 images, TinySSD's 5,444 anchors (taken from a forward pass of
the model), 1 and 10 ground-truth boxes per image. Detection runs on outputs shaped like a
trained model's: softmax probabilities that are background almost everywhere, with
confident anchors around the ground-truth boxes and offsets that point at them.

Each configuration runs both implementations in this one process, checks that they agree
(labelling: identical tensors; detection: identical kept detections and the same rows),
times them (best of N after a warm-up; the book's detection, which takes seconds, once)
and prints a table of times and ratios, on CPU and, when available, on CUDA. The table is also written as JSON to
benchmarks/results/detection.json.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from cvflow.detection import TinySSD, box_iou, multibox_detection, multibox_target, offset_boxes

BATCH = 32
NUM_CLASSES = 2
RESULTS = Path(__file__).resolve().parent / "results" / "detection.json"


# ---------------------------------------------------------------------------------------
# The book's code (d2l PyTorch edition, 13.4), per image, as printed; the one change is the
# integer division in assign_anchor_to_bbox (identical results at this scale).
# ---------------------------------------------------------------------------------------


def book_box_corner_to_center(boxes):
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), axis=-1)


def book_box_center_to_corner(boxes):
    cx, cy, w, h = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    return torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), axis=-1)


def book_box_iou(boxes1, boxes2):
    def box_area(boxes):
        return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])

    areas1, areas2 = box_area(boxes1), box_area(boxes2)
    inter_upperlefts = torch.max(boxes1[:, None, :2], boxes2[:, :2])
    inter_lowerrights = torch.min(boxes1[:, None, 2:], boxes2[:, 2:])
    inters = (inter_lowerrights - inter_upperlefts).clamp(min=0)
    inter_areas = inters[:, :, 0] * inters[:, :, 1]
    union_areas = areas1[:, None] + areas2 - inter_areas
    return inter_areas / union_areas


def book_assign_anchor_to_bbox(ground_truth, anchors, device, iou_threshold=0.5):
    num_anchors, num_gt_boxes = anchors.shape[0], ground_truth.shape[0]
    jaccard = book_box_iou(anchors, ground_truth)
    anchors_bbox_map = torch.full((num_anchors,), -1, dtype=torch.long, device=device)
    max_ious, indices = torch.max(jaccard, dim=1)
    anc_i = torch.nonzero(max_ious >= iou_threshold).reshape(-1)
    box_j = indices[max_ious >= iou_threshold]
    anchors_bbox_map[anc_i] = box_j
    col_discard = torch.full((num_anchors,), -1)
    row_discard = torch.full((num_gt_boxes,), -1)
    for _ in range(num_gt_boxes):
        max_idx = torch.argmax(jaccard)
        box_idx = (max_idx % num_gt_boxes).long()
        anc_idx = (max_idx // num_gt_boxes).long()
        anchors_bbox_map[anc_idx] = box_idx
        jaccard[:, box_idx] = col_discard
        jaccard[anc_idx, :] = row_discard
    return anchors_bbox_map


def book_offset_boxes(anchors, assigned_bb, eps=1e-6):
    c_anc = book_box_corner_to_center(anchors)
    c_assigned_bb = book_box_corner_to_center(assigned_bb)
    offset_xy = 10 * (c_assigned_bb[:, :2] - c_anc[:, :2]) / c_anc[:, 2:]
    offset_wh = 5 * torch.log(eps + c_assigned_bb[:, 2:] / c_anc[:, 2:])
    return torch.cat([offset_xy, offset_wh], axis=1)


def book_multibox_target(anchors, labels):
    batch_size, anchors = labels.shape[0], anchors.squeeze(0)
    batch_offset, batch_mask, batch_class_labels = [], [], []
    device, num_anchors = anchors.device, anchors.shape[0]
    for i in range(batch_size):
        label = labels[i, :, :]
        anchors_bbox_map = book_assign_anchor_to_bbox(label[:, 1:], anchors, device)
        bbox_mask = ((anchors_bbox_map >= 0).float().unsqueeze(-1)).repeat(1, 4)
        class_labels = torch.zeros(num_anchors, dtype=torch.long, device=device)
        assigned_bb = torch.zeros((num_anchors, 4), dtype=torch.float32, device=device)
        indices_true = torch.nonzero(anchors_bbox_map >= 0)
        bb_idx = anchors_bbox_map[indices_true]
        class_labels[indices_true] = label[bb_idx, 0].long() + 1
        assigned_bb[indices_true] = label[bb_idx, 1:]
        offset = book_offset_boxes(anchors, assigned_bb) * bbox_mask
        batch_offset.append(offset.reshape(-1))
        batch_mask.append(bbox_mask.reshape(-1))
        batch_class_labels.append(class_labels)
    return torch.stack(batch_offset), torch.stack(batch_mask), torch.stack(batch_class_labels)


def book_offset_inverse(anchors, offset_preds):
    anc = book_box_corner_to_center(anchors)
    pred_bbox_xy = (offset_preds[:, :2] * anc[:, 2:] / 10) + anc[:, :2]
    pred_bbox_wh = torch.exp(offset_preds[:, 2:] / 5) * anc[:, 2:]
    return book_box_center_to_corner(torch.cat((pred_bbox_xy, pred_bbox_wh), axis=1))


def book_nms(boxes, scores, iou_threshold):
    B = torch.argsort(scores, dim=-1, descending=True)
    keep = []
    while B.numel() > 0:
        i = B[0]
        keep.append(i)
        if B.numel() == 1:
            break
        iou = book_box_iou(boxes[i, :].reshape(-1, 4), boxes[B[1:], :].reshape(-1, 4)).reshape(-1)
        inds = torch.nonzero(iou <= iou_threshold).reshape(-1)
        B = B[inds + 1]
    return torch.tensor(keep, device=boxes.device, dtype=torch.long)


def book_multibox_detection(cls_probs, offset_preds, anchors, nms_threshold=0.5, pos_threshold=0.009999999):
    device, batch_size = cls_probs.device, cls_probs.shape[0]
    anchors = anchors.squeeze(0)
    num_anchors = cls_probs.shape[2]
    out = []
    for i in range(batch_size):
        cls_prob, offset_pred = cls_probs[i], offset_preds[i].reshape(-1, 4)
        conf, class_id = torch.max(cls_prob[1:], 0)
        predicted_bb = book_offset_inverse(anchors, offset_pred)
        keep = book_nms(predicted_bb, conf, nms_threshold)
        all_idx = torch.arange(num_anchors, dtype=torch.long, device=device)
        combined = torch.cat((keep, all_idx))
        uniques, counts = combined.unique(return_counts=True)
        non_keep = uniques[counts == 1]
        all_id_sorted = torch.cat((keep, non_keep))
        class_id[non_keep] = -1
        class_id = class_id[all_id_sorted]
        conf, predicted_bb = conf[all_id_sorted], predicted_bb[all_id_sorted]
        below_min_idx = conf < pos_threshold
        class_id[below_min_idx] = -1
        conf[below_min_idx] = 1 - conf[below_min_idx]
        out.append(torch.cat((class_id.unsqueeze(1), conf.unsqueeze(1), predicted_bb), dim=1))
    return torch.stack(out)


# ---------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------


def tinyssd_anchors() -> torch.Tensor:
    """The 5,444 anchors TinySSD produces for a 256x256 input."""
    torch.manual_seed(0)
    with torch.no_grad():
        anchors, _, _ = TinySSD(num_classes=NUM_CLASSES).eval()(torch.zeros(1, 3, 256, 256))
    return anchors


def make_labels(num_boxes: int, gen: torch.Generator) -> torch.Tensor:
    """``(BATCH, num_boxes, 5)``: random classes and boxes 10-50% of the image wide/high."""
    wh = torch.rand(BATCH, num_boxes, 2, generator=gen) * 0.4 + 0.1
    xy = torch.rand(BATCH, num_boxes, 2, generator=gen) * (1 - wh)
    cls = torch.randint(0, NUM_CLASSES, (BATCH, num_boxes, 1), generator=gen).float()
    return torch.cat([cls, xy, xy + wh], dim=2)


def make_predictions(anchors: torch.Tensor, labels: torch.Tensor, gen: torch.Generator):
    """Outputs like a trained TinySSD's: ``cls_probs (B, C+1, A)``, ``offset_preds (B, 4A)``.

    Anchors overlapping a box (IoU >= 0.3) predict its class with confidence 0.3-0.95 and
    offsets towards it (plus noise); everywhere else the best non-background probability is
    log-uniform in [1e-5, 2e-2], so ~9% of them pass the 0.01 threshold, and offsets are
    small noise.
    """
    anc = anchors[0]
    num_anchors = anc.shape[0]
    iou = box_iou(anc, labels[..., 1:])  # (B, A, M)
    best_iou, best_box = iou.max(dim=2)
    near = best_iou >= 0.3
    # Distinct ranks -> distinct confidences (no ties, so the book's unstable sort and our
    # stable one must agree).
    u = torch.stack([torch.randperm(num_anchors, generator=gen) for _ in range(BATCH)]).double() / num_anchors
    background = torch.exp(math.log(1e-5) + u * (math.log(2e-2) - math.log(1e-5)))
    conf = torch.where(near, 0.3 + 0.65 * u, background).float()
    cls = torch.randint(0, NUM_CLASSES, (BATCH, num_anchors), generator=gen)
    cls = torch.where(near, labels[..., 0].gather(1, best_box).long(), cls)
    # The other foreground classes get less than the predicted one; background the rest.
    cls_probs = (conf * torch.rand(BATCH, num_anchors, generator=gen) * 0.5)[:, None, :].repeat(1, NUM_CLASSES + 1, 1)
    cls_probs.scatter_(1, (cls + 1)[:, None, :], conf[:, None, :])
    cls_probs[:, 0] = 1 - cls_probs[:, 1:].sum(dim=1)
    target = labels[..., 1:].gather(1, best_box[..., None].expand(BATCH, num_anchors, 4))
    offsets = torch.where(near[..., None], offset_boxes(anc, target), 0.0)
    offsets = offsets + torch.randn(BATCH, num_anchors, 4, generator=gen) * 0.3
    return cls_probs, offsets.reshape(BATCH, -1)


# ---------------------------------------------------------------------------------------
# Checks and timing
# ---------------------------------------------------------------------------------------


def same_target(ours, book) -> bool:
    return all(torch.equal(o, b) for o, b in zip(ours, book))


def same_detection(ours: torch.Tensor, book: torch.Tensor) -> bool:
    """Identical kept detections (in order) and the same rows overall, image by image."""
    for o, b in zip(ours.cpu(), book.cpu()):
        num_kept = int((b[:, 0] >= 0).sum())
        if int((o[:, 0] >= 0).sum()) != num_kept or not torch.equal(o[:num_kept], b[:num_kept]):
            return False
        if sorted(map(tuple, o.tolist())) != sorted(map(tuple, b.tolist())):
            return False
    return True


def best_time(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> float:
    """Best wall time of ``repeats`` calls after ``warmup`` calls (seconds)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def timed_once(fn: Callable[[], torch.Tensor], device: torch.device) -> tuple[torch.Tensor, float]:
    """Result and wall time (seconds) of one call."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    result = fn()
    sync()
    return result, time.perf_counter() - start


def run_device(device: torch.device, anchors_cpu: torch.Tensor) -> list[dict]:
    rows = []
    anchors = anchors_cpu.to(device)
    for num_boxes in (1, 10):
        gen = torch.Generator().manual_seed(num_boxes)
        labels_cpu = make_labels(num_boxes, gen)
        cls_cpu, off_cpu = make_predictions(anchors_cpu, labels_cpu, gen)
        labels, cls_probs, offset_preds = labels_cpu.to(device), cls_cpu.to(device), off_cpu.to(device)

        ours_t, book_t = multibox_target(anchors, labels), book_multibox_target(anchors, labels)
        rows.append(
            {
                "device": device.type,
                "op": "multibox_target",
                "boxes_per_image": num_boxes,
                "ours_ms": 1e3 * best_time(lambda: multibox_target(anchors, labels), device, repeats=10),
                "book_ms": 1e3 * best_time(lambda: book_multibox_target(anchors, labels), device, repeats=5),
                "same": same_target(ours_t, book_t),
                "positive_anchors_per_image": float((ours_t[2] > 0).sum()) / BATCH,
            }
        )

        ours_d = multibox_detection(cls_probs, offset_preds, anchors)
        # The book's detection takes seconds (a Python NMS loop per kept box over all
        # 5,444 anchors of each image): its one checked run is its timing.
        book_d, book_s = timed_once(lambda: book_multibox_detection(cls_probs, offset_preds, anchors), device)
        rows.append(
            {
                "device": device.type,
                "op": "multibox_detection",
                "boxes_per_image": num_boxes,
                "ours_ms": 1e3 * best_time(lambda: multibox_detection(cls_probs, offset_preds, anchors), device, 10),
                "book_ms": 1e3 * book_s,
                "same": same_detection(ours_d, book_d),
                "candidates_per_image": float((cls_probs[:, 1:].max(dim=1).values >= 0.009999999).sum()) / BATCH,
                "kept_per_image": float((ours_d[..., 0] >= 0).sum()) / BATCH,
            }
        )
        for row in rows[-2:]:
            row["speedup"] = row["book_ms"] / row["ours_ms"]
            print(
                f"{row['device']:<5} {row['op']:<19} {row['boxes_per_image']:>5} "
                f"{row['ours_ms']:>10.2f} {row['book_ms']:>10.2f} {row['speedup']:>8.1f}x  {row['same']}",
                flush=True,
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for torch (default 1: on a shared or busy machine, multi-threaded "
        "timings of these many small ops are dominated by thread-pool contention)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    anchors = tinyssd_anchors()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(
        f"batch {BATCH}, {anchors.shape[1]} TinySSD anchors, {NUM_CLASSES} classes; torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads"
        + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "")
    )
    print(f"{'dev':<5} {'op':<19} {'boxes':>5} {'ours ms':>10} {'book ms':>10} {'ratio':>9}  same")
    rows = []
    for device in devices:
        rows.extend(run_device(device, anchors))
    report = {
        "batch": BATCH,
        "num_anchors": anchors.shape[1],
        "num_classes": NUM_CLASSES,
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "machine": platform.machine(),
        "timing": "best of N after a warm-up call (target: N=10 ours, N=5 book; detection: N=10 ours, "
        "one call for the book's, which takes seconds)",
        "rows": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    if not all(row["same"] for row in rows):
        raise SystemExit("MISMATCH between the batched code and the book's code")


if __name__ == "__main__":
    main()
