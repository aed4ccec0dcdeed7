"""Benchmark: the book's Kaggle reorganisation (copies) against reorg_kaggle (links, manifests).

    python benchmarks/bench_kaggle_reorg.py [--files N] [--valid-ratio 0.1] [--keep]

Creates N tiny PNG files (one 32x32 RGB PNG of noise, 3.2 KB, written N times) in a
temporary folder under /tmp, split like the full Kaggle cifar-10 competition (50,000
train : 300,000 test; the default N = 350,000 is the full competition), with a
``trainLabels.csv`` over ten classes. Then, in this one process and on the same files:

* ``book``: the book's 13.13 code as printed (``read_csv_labels``, ``copyfile`` =
  ``os.makedirs`` + ``shutil.copy`` per file, ``reorg_train_valid``, ``reorg_test``);
* ``link``: :func:`cvflow.data.sources.kaggle_reorg.reorg_kaggle` with ``mode="link"``, with its default
  thread pool and single-threaded (``workers=1``), alternating, twice each (best of two);
* ``manifest``: ``reorg_kaggle(mode="manifest")``.

Each is timed with a cold output folder and warm source files, after an ``os.sync()`` so
that the previous step's writeback does not land in the next timing (the copies' own
writeback is not timed: the book's time is a lower bound). The outputs are checked to
hold the same number of files per split and class, the table and ratios are printed
and written as JSON to benchmarks/results/kaggle_reorg.json, and everything is deleted.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cvflow.data.sources.kaggle_reorg import reorg_kaggle

RESULTS = Path(__file__).resolve().parent / "results" / "kaggle_reorg.json"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# ---------------------------------------------------------------------------------------
# The book's code (d2l PyTorch edition, 13.13), as printed.
# ---------------------------------------------------------------------------------------


def book_read_csv_labels(fname):
    """Read `fname` to return a filename to label dictionary."""
    with open(fname, "r") as f:
        # Skip the file header line (column name)
        lines = f.readlines()[1:]
    tokens = [l.rstrip().split(",") for l in lines]  # noqa: E741
    return dict(((name, label) for name, label in tokens))


def book_copyfile(filename, target_dir):
    """Copy a file into a target directory."""
    os.makedirs(target_dir, exist_ok=True)
    shutil.copy(filename, target_dir)


def book_reorg_train_valid(data_dir, labels, valid_ratio):
    """Split the validation set out of the original training set."""
    # The number of examples of the class that has the fewest examples in the
    # training dataset
    n = collections.Counter(labels.values()).most_common()[-1][1]
    # The number of examples per class for the validation set
    n_valid_per_label = max(1, math.floor(n * valid_ratio))
    label_count = {}
    for train_file in os.listdir(os.path.join(data_dir, "train")):
        label = labels[train_file.split(".")[0]]
        fname = os.path.join(data_dir, "train", train_file)
        book_copyfile(fname, os.path.join(data_dir, "train_valid_test", "train_valid", label))
        if label not in label_count or label_count[label] < n_valid_per_label:
            book_copyfile(fname, os.path.join(data_dir, "train_valid_test", "valid", label))
            label_count[label] = label_count.get(label, 0) + 1
        else:
            book_copyfile(fname, os.path.join(data_dir, "train_valid_test", "train", label))
    return n_valid_per_label


def book_reorg_test(data_dir):
    """Organize the testing set for data loading during prediction."""
    for test_file in os.listdir(os.path.join(data_dir, "test")):
        book_copyfile(os.path.join(data_dir, "test", test_file),
                      os.path.join(data_dir, "train_valid_test", "test", "unknown"))


def book_reorg_cifar10_data(data_dir, valid_ratio):
    labels = book_read_csv_labels(os.path.join(data_dir, "trainLabels.csv"))
    book_reorg_train_valid(data_dir, labels, valid_ratio)
    book_reorg_test(data_dir)


# ---------------------------------------------------------------------------------------


def tiny_png() -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def make_files(root: Path, n_files: int) -> tuple[int, int, int]:
    n_train = max(10, round(n_files * 50_000 / 350_000))
    n_test = max(1, n_files - n_train)
    data = tiny_png()
    for split, n in (("train", n_train), ("test", n_test)):
        folder = root / split
        folder.mkdir(parents=True)
        prefix = str(folder) + os.sep
        for i in range(1, n + 1):
            with open(f"{prefix}{i}.png", "wb") as handle:
                handle.write(data)
    with open(root / "trainLabels.csv", "w") as handle:
        handle.write("id,label\n")
        handle.writelines(f"{i},{CLASSES[(i * 7) % 10]}\n" for i in range(1, n_train + 1))
    return n_train, n_test, len(data)


def tree_counts(folder: Path) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for split in sorted(os.listdir(folder)):
        if split.startswith(".") or not (folder / split).is_dir():
            continue
        out[split] = {label: len(os.listdir(folder / split / label)) for label in sorted(os.listdir(folder / split))}
    return out


def manifest_counts(folder: Path) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for split in ("test", "train", "train_valid", "valid"):
        with open(folder / f"{split}.csv") as handle:
            next(handle)
            out[split] = dict(sorted(collections.Counter(line.rstrip("\n").rsplit(",", 1)[1] for line in handle).items()))
    return out


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=350_000, help="train + test files (default: the full competition)")
    parser.add_argument("--valid-ratio", type=float, default=0.1)
    parser.add_argument("--tmp", default="/tmp", help="folder for the temporary data (default /tmp)")
    parser.add_argument("--link-repeats", type=int, default=2, help="runs of each link variant (best is reported)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cvflow-bench-reorg-", dir=args.tmp))
    data = work / "data"
    rows: list[dict] = []
    try:
        t = time.perf_counter()
        n_train, n_test, size = make_files(data, args.files)
        setup_s = time.perf_counter() - t
        print(f"{n_train + n_test} files ({n_train} train, {n_test} test, {size} bytes each) created in {setup_s:.1f} s "
              f"under {work}", flush=True)
        n_out = 2 * n_train + n_test  # train_valid + (train or valid) + test/unknown

        os.sync()
        book_s = timed(lambda: book_reorg_cifar10_data(str(data), args.valid_ratio))
        book_tree = tree_counts(data / "train_valid_test")
        rows.append({"method": "book (shutil.copy per file)", "seconds": book_s, "files_written": n_out,
                     "bytes_copied": n_out * size})
        print(f"book: {book_s:.2f} s", flush=True)

        # link mode with the default thread pool and single-threaded, alternating, twice each
        # (the order matters on a busy disk): best of two
        workers = min(4, os.cpu_count() or 1)
        counts: dict = {}
        times: dict[int, list[float]] = {workers: [], 1: []}
        for n_threads in [workers, 1] * args.link_repeats:
            out = work / f"link-{n_threads}"
            os.sync()
            secs = timed(lambda: counts.update(reorg_kaggle(data / "train", data / "trainLabels.csv", out,
                                                            args.valid_ratio, 0, test_dir=data / "test",
                                                            workers=n_threads)))
            assert tree_counts(out) == book_tree, "link mode and the book disagree on the counts"
            assert counts["copied"] == 0, "expected hard links (same file system)"
            times[n_threads].append(secs)
            print(f"link ({n_threads} thread(s)): {secs:.2f} s", flush=True)
            shutil.rmtree(out)
        for n_threads in (workers, 1):
            label = f"reorg_kaggle link ({n_threads} thread{'s' if n_threads > 1 else ''}{', default' if n_threads == workers else ''})"
            rows.append({"method": label, "seconds": min(times[n_threads]), "runs": times[n_threads],
                         "files_written": n_out, "bytes_copied": 0})

        out = work / "manifest"
        os.sync()
        secs = timed(lambda: reorg_kaggle(data / "train", data / "trainLabels.csv", out, args.valid_ratio, 0,
                                          test_dir=data / "test", mode="manifest"))
        assert manifest_counts(out) == book_tree, "manifest mode and the book disagree on the counts"
        rows.append({"method": "reorg_kaggle manifest", "seconds": secs, "files_written": 5, "bytes_copied": 0})
        print(f"manifest: {secs:.2f} s", flush=True)

        rerun = timed(lambda: reorg_kaggle(data / "train", data / "trainLabels.csv", out, args.valid_ratio, 0,
                                           test_dir=data / "test", mode="manifest"))
        rows.append({"method": "reorg_kaggle rerun (no-op)", "seconds": rerun, "files_written": 0, "bytes_copied": 0})
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            t = time.perf_counter()
            shutil.rmtree(work, ignore_errors=True)
            print(f"cleaned up in {time.perf_counter() - t:.1f} s")

    book_s = rows[0]["seconds"]
    for row in rows:
        row["speedup_vs_book"] = book_s / row["seconds"] if row["seconds"] > 0 else float("inf")
    print()
    print(f"{args.files} files ({n_train} train, {n_test} test), {n_out} outputs, valid_ratio {args.valid_ratio}")
    print(f"{'method':<42} {'seconds':>9} {'files written':>14} {'MB copied':>10} {'vs book':>9}")
    for row in rows:
        print(f"{row['method']:<42} {row['seconds']:>9.2f} {row['files_written']:>14} "
              f"{row['bytes_copied'] / 1e6:>10.1f} {row['speedup_vs_book']:>8.1f}x")
    result = {
        "benchmark": "kaggle_reorg",
        "files": args.files, "train": n_train, "test": n_test, "file_bytes": size, "outputs": n_out,
        "valid_ratio": args.valid_ratio, "setup_seconds": setup_s, "rows": rows,
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average_1_5_15min": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
