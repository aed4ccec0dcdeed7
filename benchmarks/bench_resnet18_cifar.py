"""Benchmark: train-step throughput of the book's CIFAR ResNet-18 per width.

    python benchmarks/bench_resnet18_cifar.py [--widths 64 32 16] [--batch 64] [--steps 5] [--threads N]

For each ``width`` of :func:`cvflow.models.cifar.resnet18_cifar` (64 = the book), one train
step is forward + cross-entropy + backward + SGD (momentum 0.9) on a random batch of
``--batch`` 3x32x32 images, fp32 on CPU (CUDA too when available). After two warm-up steps it
times ``--steps`` steps and reports images/s (the median step) and the parameter count, so
the demo's width can be chosen from numbers of the machine at hand. The table is printed and
written as JSON to benchmarks/results/resnet18_cifar.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from cvflow.models.cifar import resnet18_cifar


def train_step_rate(width: int, batch: int, steps: int, device: str) -> dict:
    """Images per second of full train steps (median step time) and the parameter count."""
    torch.manual_seed(0)
    net = resnet18_cifar(10, 3, width=width).to(device).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    times = []
    for step in range(steps + 2):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if step >= 2:  # the first steps allocate and pick kernels
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"width": width, "device": device, "batch": batch, "steps": steps,
            "params": sum(p.numel() for p in net.parameters()),
            "step_seconds": round(median, 4), "images_per_sec": round(batch / median, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 32, 16])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = [train_step_rate(w, args.batch, args.steps, d) for d in devices for w in args.widths]
    print(f"{'device':6} {'width':>5} {'params':>11} {'step s':>8} {'images/s':>9}")
    for r in rows:
        print(f"{r['device']:6} {r['width']:>5} {r['params']:>11,} {r['step_seconds']:>8.3f} "
              f"{r['images_per_sec']:>9.1f}")
    out = Path(__file__).resolve().parent / "results" / "resnet18_cifar.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": platform.processor() or platform.machine(),
                               "torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows},
                              indent=2) + "\n")


if __name__ == "__main__":
    main()
