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

from cvflow.detection.boxes import box_iou, multibox_detection, multibox_target, offset_boxes
from cvflow.detection.ssd import TinySSD

BATCH = 32
NUM_CLASSES = 2
RESULTS = Path(__file__).resolve().parent / "results" / "detection.json"


from cvflow.detection.reference import (  # the book's per-image code, the baseline
    multibox_target as book_multibox_target,
    multibox_detection as book_multibox_detection,
)


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
