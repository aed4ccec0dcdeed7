"""Benchmark: test-set prediction throughput, batched (`predict_labels`) against a per-image loop.

    python benchmarks/bench_predict.py [--batch-size 256] [--workers 2] [--device auto] [--repeat 2]

On the real Kaggle CIFAR-10 slice's test PNGs (``../shared/data/kaggle-cifar10-real/test``,
846 images, 32x32; skipped with a message when absent), with the book's 13.13 model (a
ResNet-18 adapted to 32x32: 3x3 stem at stride 1, no max-pool; random weights, which cost
the same as trained ones), it measures images/s of:

* ``batched``: :class:`~cvflow.data.readers.images.ImageIdFolder` (decoded once, in the
  loader's workers) + :func:`~cvflow.engine.predict.predict_labels` (inference mode,
  autocast, non-blocking copies, one host copy at the end), including building the reader;
* ``naive``: per image, ``PIL.Image.open``, the transform, and a forward pass of one image
  with its result read back (what a loop over the files does).

Both run in this process on the same model and device; the best of ``--repeat`` runs is
kept, and their ratio is reported. The real test set (300,000 images) takes
300,000 / (images/s) seconds. The table is printed and written as JSON to
benchmarks/results/predict.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "predict.json"
TEST = HERE.parent.parent / "shared" / "data" / "kaggle-cifar10-real" / "test"
MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]  # the book's 13.13 normalisation


def _model(num_classes: int = 10):
    """torchvision's ResNet-18 adapted to 32x32 as the book's d2l.resnet18 is (3x3 stem, stride 1, no max-pool)."""
    from torch import nn

    from cvflow.models.resnet import build_resnet18

    model = build_resnet18(num_classes)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the batched run")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    parser.add_argument("--precision", default="auto", help="auto (bf16 on CUDA) | fp32")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each method; the best is kept")
    args = parser.parse_args()
    if not TEST.is_dir():
        print(f"skipped: the real Kaggle CIFAR-10 slice {TEST} is absent (it lives beside the cvflow checkout)")
        return

    import numpy as np
    import torch
    from PIL import Image
    from torchvision.transforms import v2

    from cvflow.data.readers.images import ImageIdFolder, list_images
    from cvflow.engine.runtime import Precision, resolve_device
    from cvflow.engine.predict import predict_labels

    torch.manual_seed(0)
    device = resolve_device(args.device)
    precision = Precision.resolve(device, args.precision)
    transform = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])
    model = _model().to(device).eval()
    paths = list_images(TEST)

    def batched() -> tuple[float, list[int]]:
        start = time.perf_counter()
        dataset = ImageIdFolder(TEST, transform, cache="none")
        _, classes = predict_labels(model, dataset, batch_size=args.batch_size, device=device,
                                    precision=precision, num_workers=args.workers)
        return time.perf_counter() - start, classes.tolist()

    def naive() -> tuple[float, list[int]]:
        start = time.perf_counter()
        out = []
        with torch.inference_mode(), precision.autocast():
            for path in paths:
                with Image.open(path) as handle:
                    image = torch.from_numpy(np.array(handle.convert("RGB"))).permute(2, 0, 1)
                out.append(int(model(transform(image)[None].to(device)).argmax()))
        return time.perf_counter() - start, out

    batched()  # warm-up: cuDNN autotuning, worker start-up code paths, the page cache
    rows = {}
    for name, run in (("batched", batched), ("naive", naive)):
        best, classes = min(run() for _ in range(max(1, args.repeat)))
        rows[name] = {"seconds": best, "images_per_s": len(paths) / best}
        rows[name]["_classes"] = classes
    agree = float(np.mean(np.asarray(rows["batched"].pop("_classes")) == np.asarray(rows["naive"].pop("_classes"))))
    ratio = rows["batched"]["images_per_s"] / rows["naive"]["images_per_s"]
    print(f"{len(paths)} test images, {device} ({precision.name}), batch {args.batch_size}, "
          f"{args.workers} workers, {torch.get_num_threads()} torch threads")
    print(f"{'method':<10}{'seconds':>10}{'images/s':>11}{'300k images':>14}")
    for name, r in rows.items():
        print(f"{name:<10}{r['seconds']:>10.2f}{r['images_per_s']:>11.0f}{300_000 / r['images_per_s'] / 60:>11.1f} min")
    print(f"batched / naive: {ratio:.1f}x; predictions agree on {agree:.1%} (bf16 may flip near-ties)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "data": str(TEST), "images": len(paths), "device": str(device), "precision": precision.name,
        "batch_size": args.batch_size, "workers": args.workers, "torch_threads": torch.get_num_threads(),
        "repeat": args.repeat, "machine": platform.platform(), "python": platform.python_version(),
        "results": rows, "speedup": ratio, "agreement": agree,
    }, indent=2) + "\n", encoding="utf-8")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
