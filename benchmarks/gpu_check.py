"""The GPU check (issue 27, item 5): the demo on CUDA with every effect holding, then each training stage's real
recipe for a bounded number of steps, images/s and peak memory beside the book's speeds.

    python benchmarks/gpu_check.py [--budget 480] [--steps 20] [--warmup 5] [--out gpu_check.json] [--keep DIR]
    python benchmarks/gpu_check.py --smoke          # the CPU form the test suite runs (tests/test_gpu_check.py)

1. A fresh copy of the working tree (tests/conftest.py's ``git_copy``: the tracked files, one commit, as a clone
   has them) runs the demo's ``dvc repro`` with ``common.device: cuda`` (``--smoke``: ``cpu`` and the smoke
   switch). Every effect the report checks must hold: they are read back from the metrics the run wrote by the
   report stage's own check (:mod:`cvflow.pipelines.report`), and ``data/reports/index.html`` must exist.
2. Then the copy's params.yaml switches to ``profile: real`` and each training stage of dvc.yaml runs its own
   command in this process (``cvflow train hotdog --variant finetune``...): the real recipe's model, image size,
   batch, optimizer, bf16 autocast, channels_last, pinned memory and loader workers, all as the stage sets them up,
   on the demo twins' files that step 1 left in the real data sets' layouts (the real data sets are not
   available offline; the speed of a step depends on the recipe, not on the pixels). ImageNet weights come from
   torchvision's cache or, absent there, the stand-ins tests/conftest.py writes (random weights under
   torchvision's file names). Only ``Trainer.fit`` is replaced: ``--warmup`` steps, then ``--steps`` timed steps
   (CUDA synchronised at both ends), and the training set repeated so one epoch holds them all.
3. A table: stage, images/s, peak memory (``torch.cuda.max_memory_allocated``), the book's images/s; written as
   JSON to ``--out``. Exit 1 when an effect fails or a stage could not be measured, 0 otherwise.

The whole check keeps to ``--budget`` seconds (default 8 minutes): the repro gets what is left of it, and a stage
that would start past it is listed as not measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the fresh copy and the stand-in weights are the test suite's, reused

#: The book's training speeds, as its PyTorch notebooks print them ("N examples/sec on [devices]") in d2l 1.0.3,
#: executed in d2l-ai/d2l-pytorch-colab (commit f8543710a7046a947464f0fa3ad0f8619d7613d3, "Version 1.0.3"),
#: chapter_computer-vision/*.ipynb: two GPUs (``[device(type='cuda', index=0), device(type='cuda', index=1)]``),
#: except ssd.ipynb on ``cuda:0``. Stages the book does not run (the linear probe, CIFAR-10 without the flip) or
#: whose cell prints no speed (13.12's style transfer) have none.
BOOK: dict[str, tuple[float, str]] = {
    "train-cifar10-augment": (4728.8, "13.1 image-augmentation.ipynb, train_with_data_aug, 2 GPUs"),
    "train-hotdog-finetune": (1062.4, "13.2 fine-tuning.ipynb, train_fine_tuning(finetune_net, 5e-5), 2 GPUs"),
    "train-hotdog-scratch": (1525.4, "13.2 fine-tuning.ipynb, train_fine_tuning(scratch_net, 5e-4), 2 GPUs"),
    "train-bananas": (4279.7, "13.7 ssd.ipynb, TinySSD, cuda:0"),
    "train-voc": (226.7, "13.11 fcn.ipynb, train_ch13, 2 GPUs"),
    "train-kaggle-cifar10-train": (958.1, "13.13 kaggle-cifar10.ipynb, train on train, 2 GPUs"),
    "train-kaggle-cifar10-train_valid": (1040.8, "13.13 kaggle-cifar10.ipynb, train on train_valid, 2 GPUs"),
    "train-kaggle-dogs-train": (577.5, "13.14 kaggle-dog.ipynb, train on train, 2 GPUs"),
    "train-kaggle-dogs-train_valid": (742.7, "13.14 kaggle-dog.ipynb, train on train_valid, 2 GPUs"),
}


# ----------------------------------------------------------------------------- step 1: the demo and its effects


def effects(root: Path) -> list[dict[str, Any]]:
    """Every effect of the chapter as the report checks it on the metrics under ``root``: text, holds (True,
    False, None when not measured), detail. The report stage's own check, so the two cannot disagree."""
    from cvflow.pipelines import CHAPTER
    from cvflow.pipelines.report import _check, _Values, sections

    values = _Values(root)
    checks = [_check(effect, values, ".3f") for section, _ in sections(CHAPTER) for effect in section.effects]
    return [{"effect": c.text, "holds": c.holds, "detail": c.detail} for c in checks]


def fresh_copy(root: Path) -> dict:
    """tests/conftest.py's ``git_copy`` of the working tree (its tracked files, one commit), plus the files git
    does not track and does not ignore: a device machine gets the working tree as it stands, new files included,
    and dvc.yaml may already name them. Returns the environment to run `dvc` there."""
    from conftest import REPO as source
    from conftest import git_copy

    env = git_copy(root)
    untracked = subprocess.run(["git", "ls-files", "-z", "--others", "--exclude-standard"], cwd=source,
                               capture_output=True, text=True, check=True).stdout
    for name in filter(None, untracked.split("\0")):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, root / name)
    return env


def demo_repro(root: Path, env: dict, device: str, smoke: bool, timeout: float) -> dict[str, Any]:
    """`dvc repro` of the demo in the copy at ``root`` on ``device``; its seconds, the report and the effects."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["common"].update(device=device, smoke=smoke)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    start = time.monotonic()
    try:
        run = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=root, env=env, capture_output=True,
                             text=True, timeout=max(timeout, 1))
    except subprocess.TimeoutExpired:
        raise SystemExit(f"gpu_check: dvc repro did not finish within the budget ({timeout:.0f} s left); "
                         "raise --budget") from None
    seconds = time.monotonic() - start
    if run.returncode != 0:
        raise SystemExit(f"gpu_check: dvc repro failed after {seconds:.0f} s:\n{run.stdout[-3000:]}{run.stderr[-3000:]}")
    report = root / "data" / "reports" / "index.html"
    return {"seconds": round(seconds, 1), "device": device, "smoke": smoke, "report": report.is_file(),
            "effects": effects(root)}


# ----------------------------------------------------------------------------- step 2: bounded real steps


class Measured(Exception):
    """Raised by the bounded fit with its row: it ends the stage's run before any output is written."""

    def __init__(self, row: dict[str, Any]):
        super().__init__("measured")
        self.row = row


class _Repeated:
    """A training set repeated up to ``length`` samples, so that one epoch holds the warm-up and the timed steps
    whatever the twin's size (a new epoch would restart the loader's workers in the timed window)."""

    def __init__(self, dataset, length: int):
        self.dataset, self.length = dataset, max(length, len(dataset))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        return self.dataset[index % len(self.dataset)]


class _Take:
    """The next ``n`` batches of a running loader iterator, as ``Trainer.train_epoch`` takes a loader."""

    def __init__(self, batches: Iterator, n: int):
        self.batches, self.n = batches, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        for _ in range(self.n):
            yield next(self.batches)


@contextmanager
def bounded(warmup: int, steps: int) -> Iterator[None]:
    """While open, a training run's fit is ``warmup`` + ``steps`` steps of the engine's own ``train_epoch`` and ends
    with :class:`Measured`. train_run has no step bound to pass (an epoch is its unit), so the two names it uses
    are swapped here, in cvflow.engine.run's namespace only, and restored after."""
    import torch

    import cvflow.engine.run as run
    from cvflow.engine.trainer import Trainer, make_loader

    def loader(dataset, batch_size, *, train, **kwargs):
        if train:
            dataset = _Repeated(dataset, (warmup + steps) * batch_size)
        return make_loader(dataset, batch_size, train=train, **kwargs)

    class BoundedTrainer(Trainer):
        def fit(self, train_loader, eval_loader=None, callbacks=(), extra=None):
            cuda = self.device.type == "cuda"
            train_loader.sampler.set_epoch(0)
            batches = iter(train_loader)
            self.train_epoch(_Take(batches, warmup), 0)  # first steps: cuDNN picks kernels, workers fill up
            if cuda:
                torch.cuda.synchronize(self.device)
                torch.cuda.reset_peak_memory_stats(self.device)
            start = time.perf_counter()
            sums = self.train_epoch(_Take(batches, steps), 0)  # ends on the epoch's one host sync
            if cuda:
                torch.cuda.synchronize(self.device)
            seconds = time.perf_counter() - start
            raise Measured({"images": int(sums["count"]), "seconds": round(seconds, 3),
                            "images_per_sec": round(sums["count"] / seconds, 1),
                            "peak_mib": round(torch.cuda.max_memory_allocated(self.device) / 2**20) if cuda else None,
                            "batch": train_loader.batch_size, "workers": train_loader.num_workers,
                            "pin_memory": train_loader.pin_memory, "precision": self.precision.name,
                            "channels_last": self.channels_last, "device": str(self.device)})

    saved = run.Trainer, run.make_loader
    run.Trainer, run.make_loader = BoundedTrainer, loader
    try:
        yield
    finally:
        run.Trainer, run.make_loader = saved


def training_stages(root: Path) -> dict[str, list[str]]:
    """dvc.yaml's stages that fit a model with the engine, with their commands' arguments. ``pretrain-hotdog``
    trains only with ``weights: source`` (the real profile loads ImageNet's), ``stylize`` optimises an image
    (no Trainer) and ``features-kaggle-dogs`` only infers: they are not timed here."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    return {name: shlex.split(spec["cmd"])[1:] for name, spec in stages.items()
            if name.startswith("train-") and isinstance(spec.get("cmd"), str)}


def setup_stages(root: Path) -> dict[str, list[str]]:
    """The stages that make the training stages' inputs (fetch, prepare, features), with their arguments: run in
    full, untimed, on the real profile before the timing."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    return {name: shlex.split(spec["cmd"])[1:] for name, spec in stages.items()
            if name.split("-")[0] in ("fetch", "prepare", "features") and isinstance(spec.get("cmd"), str)}


def real_profile(root: Path, device: str, smoke: bool) -> None:
    """The copy's params.yaml on the real profile (the data: the twins already in data/), on ``device``."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["profile"] = "real"
    params["common"].update(device=device, smoke=smoke)
    # The smoke overlay's `views: 1` would replace the real profile's `views: 0` (the frozen ResNet-34 on every
    # augmented batch, the book's way and the cost to measure), as in the suite's smoke pass (tests/conftest.py).
    params["smoke"]["kaggle_dogs"]["views"] = params["kaggle_dogs"]["real"]["views"]  # the key stays: dvc.yaml
    # tracks each smoke key a stage reads
    if smoke:  # the smoke twin's 60 dogs over the real profile's 120 breeds would leave none to train on once each
        # breed gives one to valid: as many breeds as the demo profile's, so both sides of the split keep images
        params["smoke"]["kaggle_dogs"]["demo"]["breeds"] = params["kaggle_dogs"]["demo"]["demo"]["breeds"]
    # The real data sets are not available offline: each real profile's own twin (`data.source: demo`, the
    # `demo` sizes of the real section: VOC at 480-500 px for the book's 320x480 crops), fetched by setup_stages.
    for section in params.values():
        if isinstance(section, dict) and isinstance(section.get("real"), dict) and "data" in section["real"]:
            section["real"]["data"].update(source="demo", path=None)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def imagenet_weights(work: Path) -> str:
    """$TORCH_HOME holding every ImageNet file the real profile loads: torchvision's own cache when it has them
    (the real weights), else stand-ins written under ``work`` (no network on a GPU machine is assumed)."""
    import torch

    from conftest import imagenet_weights as every_weights, stand_in_weights

    home = Path(os.environ.get("TORCH_HOME") or Path(torch.hub.get_dir()).parent)
    cached = home / "hub" / "checkpoints"
    if all((cached / os.path.basename(w.url)).is_file() for w, _ in every_weights()):
        return str(home)
    stand_in_weights(work / "torch")
    return str(work / "torch")


def cvflow(args: list[str]) -> int:
    """Run ``cvflow ARGS`` in this process (its CLI's own entry point; Typer ends a command with SystemExit)."""
    from cvflow.stages.cli import main

    try:
        return main(args)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 1


def time_stages(root: Path, names: dict[str, list[str]], warmup: int, steps: int, deadline: float) -> list[dict]:
    """Each training stage's own command in this process, its fit bounded; one row per stage."""
    rows = []
    here = os.getcwd()
    os.chdir(root)  # the commands' params.yaml and project folder
    try:
        for name, args in setup_stages(root).items():
            if cvflow(args):
                raise SystemExit(f"gpu_check: {name} failed on the real profile")
        for name, args in names.items():
            row: dict[str, Any] = {"stage": name, "command": "cvflow " + " ".join(args)}
            book = BOOK.get(name)
            row.update(book_images_per_sec=book[0] if book else None, book_source=book[1] if book else None)
            if time.monotonic() > deadline:
                rows.append({**row, "error": "not run: the budget was spent"})
                continue
            start = time.monotonic()
            try:
                with bounded(warmup, steps):
                    code = cvflow(args)
                row["error"] = f"the stage ended (exit {code}) without reaching its fit"
            except Measured as done:
                row.update(done.row)
            row["stage_seconds"] = round(time.monotonic() - start, 1)
            rows.append(row)
            print(f"  {name}: " + (f"{row['images_per_sec']} images/s" if "images_per_sec" in row else row["error"]),
                  flush=True)
    finally:
        os.chdir(here)
    return rows


# ----------------------------------------------------------------------------- the check


def table(rows: list[dict]) -> str:
    def fmt(value, spec: str) -> str:
        return "—" if value is None else format(value, spec)

    lines = [f"{'stage':<34}{'images/s':>10}{'peak MiB':>10}{'book images/s':>15}  precision, layout, workers"]
    for r in rows:
        if "images_per_sec" not in r:
            lines.append(f"{r['stage']:<34}{'—':>10}{'—':>10}{fmt(r['book_images_per_sec'], ',.1f'):>15}  "
                         f"{r['error']}")
            continue
        layout = "channels_last" if r["channels_last"] else "contiguous"
        lines.append(f"{r['stage']:<34}{r['images_per_sec']:>10,.1f}{fmt(r['peak_mib'], ',d'):>10}"
                     f"{fmt(r['book_images_per_sec'], ',.1f'):>15}  {r['precision']}, {layout}, "
                     f"{r['workers']} workers, batch {r['batch']}, {r['device']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="the CPU form: the smoke switch, device cpu, 1 warm-up and 2 timed steps per stage")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for the whole check (default 480; smoke 1200, for a shared 2-core CPU)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per stage (default 20; smoke 2)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed first steps per stage (default 5; smoke 1)")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"), help="the table as JSON")
    parser.add_argument("--keep", type=Path, default=None, help="make the fresh copy in this (new) folder and keep it")
    parser.add_argument("--reuse", type=Path, default=None,
                        help="a fresh copy whose demo `dvc repro` already ran on this device (the test suite's): its "
                             "effects are read there, and step 2 runs in a copy of it (it is left as it is)")
    args = parser.parse_args(argv)
    device = "cpu" if args.smoke else "cuda"
    steps = args.steps or (2 if args.smoke else 20)
    warmup = args.warmup or (1 if args.smoke else 5)
    args.budget = args.budget or (1200 if args.smoke else 480)
    deadline = time.monotonic() + args.budget
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("gpu_check: no CUDA device here; run it on a GPU machine, or --smoke for the CPU form", file=sys.stderr)
            return 2

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        work = args.keep or Path(scratch)
        root = work / "cvflow"
        if args.reuse is not None:  # the repro is done: its effects, then a copy of it for step 2
            demo = {"seconds": None, "device": device, "smoke": False, "reused": str(args.reuse),
                    "report": (args.reuse / "data" / "reports" / "index.html").is_file(), "effects": effects(args.reuse)}
            shutil.copytree(args.reuse, root, symlinks=True)
            print(f"gpu_check: the demo's repro in {args.reuse}, copied to {root}", flush=True)
        else:
            root.mkdir(parents=True)
            env = fresh_copy(root)
            print(f"gpu_check: fresh copy in {root}; dvc repro of the demo on {device}"
                  f"{' with the smoke switch' if args.smoke else ''}", flush=True)
            demo = demo_repro(root, env, device, args.smoke, deadline - time.monotonic())
        failed = [e for e in demo["effects"] if e["holds"] is not True]
        print(f"gpu_check: dvc repro {demo['seconds']} s; {len(demo['effects']) - len(failed)} of "
              f"{len(demo['effects'])} effects hold", flush=True)
        for e in failed:
            print(f"  does not hold: {e['effect']} ({e['detail'] or 'not measured'})")

        real_profile(root, device, args.smoke)
        os.environ["TORCH_HOME"] = imagenet_weights(work)
        os.environ.pop("MLFLOW_TRACKING_URI", None)  # the copy's own store, as its stages had it
        print(f"gpu_check: the real profile's training stages, {warmup} + {steps} steps each", flush=True)
        rows = time_stages(root, training_stages(root), warmup, steps, deadline)

    import torch

    result = {"machine": platform.node(), "python": platform.python_version(), "torch": torch.__version__,
              "gpu": torch.cuda.get_device_name() if device == "cuda" else None, "smoke": args.smoke,
              "warmup": warmup, "steps": steps, "budget_s": args.budget, "demo": demo, "stages": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(rows))
    print(f"gpu_check: written to {args.out}")
    # the smoke switch's tiny runs make no effect meaningful (the report says so): there only the checks must run
    bad_effects = [] if demo["smoke"] else failed
    unmeasured = [r["stage"] for r in rows if "images_per_sec" not in r]
    if bad_effects or unmeasured or not demo["report"]:
        print(f"gpu_check: FAILED: {len(bad_effects)} effect(s) do not hold; not measured: {', '.join(unmeasured) or 'none'}"
              f"{'' if demo['report'] else '; no data/reports/index.html'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
