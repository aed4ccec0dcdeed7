"""Benchmark: decoding and one epoch of loading the real hot dog images, per image-cache mode.

    python benchmarks/bench_data_loading.py [--epochs N]

On ``../shared/data/hotdog`` (250 real JPEGs, long side 224 px; skipped with a message when
absent) it measures, each configuration in its own subprocess so peak memories do not mix:

* ``decode``: every image decoded once (Pillow, threads, as the reader's ``cache="decoded"``
  does up front), images/s;
* ``epoch``: one epoch (after the reader is built) through a DataLoader with the book's
  train transforms (RandomResizedCrop 224, horizontal flip, normalise), batch 32, for
  ``cache="none"`` with 0 and 2 workers and ``cache="decoded"`` with 0 workers, images/s;
  the time to build the reader (the corrupt-file check, or the up-front decode) is shown
  separately;
* ``peak RSS``: ``ru_maxrss`` of the subprocess, also above its baseline after importing
  torch (what the data costs), and the largest DataLoader worker's (``RUSAGE_CHILDREN``), MiB.

The table is printed and written as JSON to benchmarks/results/data_loading.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "data_loading.json"
HOTDOG = HERE.parent.parent / "shared" / "data" / "hotdog"
CONFIGS = [("decode", "decoded", 0), ("epoch", "none", 0), ("epoch", "none", 2), ("epoch", "decoded", 0)]


def _one(kind: str, cache: str, workers: int, epochs: int) -> dict:
    """Run in the subprocess: one configuration, timings and peak RSS."""
    import torch
    from torch.utils.data import DataLoader

    from cvflow.data.readers.images import DecodedImageFolder, classification_transforms, decode_all, list_images
    from cvflow.params import ImageTransforms

    torch.set_num_threads(1)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the interpreter, torch, torchvision
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    root = HOTDOG / "train"
    out: dict = {"kind": kind, "cache": cache, "workers": workers}
    if kind == "decode":
        paths = [p for d in sorted(root.iterdir()) if d.is_dir() for p in list_images(d)]
        start = time.perf_counter()
        images, _ = decode_all(paths)
        seconds = time.perf_counter() - start
        out.update(images=len(images), seconds=seconds, images_per_s=len(images) / seconds,
                   decoded_mib=sum(t.numel() for t in images) / 2**20)
    else:
        train_tf, _ = classification_transforms(ImageTransforms(train_crop=224, test_resize=256, test_crop=224))
        start = time.perf_counter()
        ds = DecodedImageFolder(root, None, train_tf, cache=cache)
        build = time.perf_counter() - start
        loader = DataLoader(ds, batch_size=32, shuffle=True, num_workers=workers,
                            persistent_workers=workers > 0, generator=torch.Generator().manual_seed(0))
        rates = []
        for _ in range(epochs):
            start = time.perf_counter()
            n = sum(len(labels) for _, labels in loader)
            rates.append(n / (time.perf_counter() - start))
        del loader  # workers exit, so RUSAGE_CHILDREN covers them
        out.update(images=len(ds), build_s=build, images_per_s=max(rates), cache_mib=ds.cache_nbytes / 2**20)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    out.update(baseline_rss_mib=baseline, peak_rss_mib=own, peak_above_baseline_mib=own - baseline,
               workers_peak_rss_mib=children if children > children_before else 0.0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs per loader configuration (best is kept)")
    parser.add_argument("--one", nargs=3, metavar=("KIND", "CACHE", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_one(args.one[0], args.one[1], int(args.one[2]), args.epochs)))
        return
    if not (HOTDOG / "train").is_dir():
        print(f"skipped: the real hot dog slice {HOTDOG} is absent (it lives beside the cvflow checkout)")
        return
    rows = []
    for kind, cache, workers in CONFIGS:
        result = subprocess.run([sys.executable, __file__, "--epochs", str(args.epochs), "--one", kind, cache,
                                 str(workers)], capture_output=True, text=True, check=True)
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    print(f"{'configuration':<32}{'build s':>9}{'images/s':>10}{'cache MiB':>11}{'peak RSS MiB':>14}"
          f"{'above base':>12}{'per worker':>12}")
    for r in rows:
        name = "decode all once" if r["kind"] == "decode" else f"epoch, cache={r['cache']}, {r['workers']} workers"
        build = f"{r['build_s']:.2f}" if "build_s" in r else "-"
        cache = f"{r.get('cache_mib', r.get('decoded_mib', 0)):.1f}"
        print(f"{name:<32}{build:>9}{r['images_per_s']:>10.0f}{cache:>11}{r['peak_rss_mib']:>14.0f}"
              f"{r['peak_above_baseline_mib']:>12.0f}{r['workers_peak_rss_mib']:>12.0f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"data": str(HOTDOG), "images": rows[0]["images"], "epochs": args.epochs,
                                   "machine": platform.platform(), "python": platform.python_version(),
                                   "results": rows}, indent=2) + "\n", encoding="utf-8")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
