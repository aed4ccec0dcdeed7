"""Benchmark: training the 13.14 head on cached backbone features against the book's on-the-fly path.

    python benchmarks/bench_kaggle_dogs_cache.py [--epochs N] [--views N] [--device auto]

On the project's demo data (``data/kaggle-dogs-prepared`` and the demo backbone
``data/models/hotdog/source.pt``; run ``dvc repro prepare-kaggle-dogs pretrain-hotdog`` first,
skipped with a message otherwise) and the active profile's ``kaggle_dogs`` params, one process
trains the same head (same initialisation, recipe and epochs) on the ``train`` split twice:

* ``on the fly`` (``views: 0``, the book): every epoch runs the frozen backbone on freshly
  augmented training images and on the valid images (:class:`cvflow.engine.features.BackboneTask`);
* ``cached`` (``views: N``): the backbone runs once per image and view
  (:func:`cvflow.engine.features.extract_features`: N augmented views of each training image,
  the test view of each valid image), then every epoch trains and evaluates on those features.

It reports the epochs per second of each (training plus the per-epoch valid evaluation, as
``cvflow train`` runs them), their ratio, the one-off extraction time and the epoch from which
the cache has paid for itself, and each run's final valid log loss (Kaggle's, clipped) and
accuracy: does the finite set of views cost anything? Printed and written as JSON to
benchmarks/results/kaggle_dogs_cache.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "kaggle_dogs_cache.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--views", type=int, default=None, help="cached views per image; default: params' (at least 1)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    args = parser.parse_args()

    from cvflow.pipelines import load_params
    from cvflow.pipelines.kaggle_dogs.common import SOURCE_MODEL, competition, frozen_backbone, image_folder, transforms

    params = load_params(ROOT / "params.yaml", [f"common.device={args.device}"])
    if not (competition().prepared_dir(ROOT) / "train").is_dir() or not (ROOT / SOURCE_MODEL).exists():
        print(f"skipped: {competition().prepared_dir(ROOT)} or {ROOT / SOURCE_MODEL} is missing; run "
              "`dvc repro prepare-kaggle-dogs pretrain-hotdog` first")
        return

    import torch
    from torch.utils.data import TensorDataset

    from cvflow.data.submissions import multiclass_log_loss
    from cvflow.engine.optim import build_optimizer, build_scheduler
    from cvflow.engine.runtime import Precision
    from cvflow.engine.trainer import ClassificationTask, Trainer, make_loader
    from cvflow.engine.runtime import resolve_device, seed_everything
    from cvflow.engine.features import BackboneTask, ViewFeatures, extract_features
    from cvflow.models.features import feature_head

    cfg = params.task("kaggle_dogs")
    recipe = cfg.recipe.model_copy(update={"epochs": args.epochs or cfg.recipe.epochs})
    views = max(1, args.views if args.views is not None else cfg.views)
    device = resolve_device(params.common.device)
    precision = Precision.resolve(device, params.common.precision)
    backbone, identity = frozen_backbone(params, ROOT)
    train_tf, test_tf, _ = transforms(cfg)
    train_images = image_folder(params, ROOT, "train", train_tf)
    valid_images = image_folder(params, ROOT, "valid", test_tf, train_images.classes)
    classes = train_images.classes

    def fit(name, task, train_set, eval_set, work: Path) -> dict:
        seed_everything(params.common.seed)
        head = feature_head(backbone.dim, len(classes), cfg.hidden)
        optimizer = build_optimizer([{"params": head.parameters()}], recipe.optim)
        train_loader = make_loader(train_set, recipe.batch_size, train=True, seed=params.common.seed)
        trainer = Trainer(head, dataclasses.replace(task, reduction=recipe.loss_reduction), optimizer,
                          recipe.epochs, device, work / f"{name}.pt", {"bench": name},
                          scheduler=build_scheduler(optimizer, recipe.optim, recipe.epochs, len(train_loader)),
                          precision=precision, description=name)
        start = time.perf_counter()
        trainer.fit(train_loader, make_loader(eval_set, recipe.batch_size, train=False))
        seconds = time.perf_counter() - start
        features = extract_features(backbone, valid_images, device=device, precision=precision)[0]
        head.eval()
        with torch.inference_mode():
            probs = torch.softmax(head.to(device)(features.to(device)).double(), dim=1).cpu()
        return {"epochs": recipe.epochs, "seconds": seconds, "epochs_per_s": recipe.epochs / seconds,
                "valid_log_loss": multiclass_log_loss(probs.numpy(), valid_images.targets.numpy()),
                "valid_acc": (probs.argmax(1) == valid_images.targets).double().mean().item()}

    rows: dict = {}
    with tempfile.TemporaryDirectory() as work:
        rows["on_the_fly"] = fit("on the fly", BackboneTask(backbone=backbone), train_images, valid_images, Path(work))
        seed_everything(params.common.seed)
        start = time.perf_counter()
        train_images.transform = train_tf
        cached = torch.stack([extract_features(backbone, train_images, device=device, precision=precision)[0]
                              for _ in range(views)], dim=1)
        valid_features = extract_features(backbone, valid_images, device=device, precision=precision)[0]
        extraction = time.perf_counter() - start
        rows["cached"] = fit("cached", ClassificationTask(), ViewFeatures(cached, train_images.targets),
                             TensorDataset(valid_features, valid_images.targets), Path(work))
    ratio = rows["cached"]["epochs_per_s"] / rows["on_the_fly"]["epochs_per_s"]
    fly_epoch = 1 / rows["on_the_fly"]["epochs_per_s"]
    cached_epoch = 1 / rows["cached"]["epochs_per_s"]
    break_even = math.ceil(extraction / max(fly_epoch - cached_epoch, 1e-9))
    print(f"{len(train_images)} train and {len(valid_images)} valid images, {len(classes)} breeds; backbone "
          f"{identity['weights']} ({cfg.backbone.layer}, {backbone.dim} features); {device} ({precision.name}), "
          f"{torch.get_num_threads()} torch threads; {recipe.epochs} epochs, batch {recipe.batch_size}")
    print(f"{'path':<12}{'epochs/s':>10}{'s/epoch':>10}{'valid log loss':>16}{'valid acc':>11}")
    for name, r in rows.items():
        print(f"{name:<12}{r['epochs_per_s']:>10.2f}{1 / r['epochs_per_s']:>10.3f}{r['valid_log_loss']:>16.3f}"
              f"{r['valid_acc']:>11.3f}")
    print(f"cached / on the fly: {ratio:.1f}x the epochs per second; extracting {views} views of each training image "
          f"and the valid view took {extraction:.1f} s (the cache pays for itself from epoch {break_even}); "
          f"uniform guess: log loss {math.log(len(classes)):.3f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "train_images": len(train_images), "valid_images": len(valid_images), "breeds": len(classes),
        "backbone": identity, "layer": cfg.backbone.layer, "dim": backbone.dim, "views": views,
        "device": str(device), "precision": precision.name, "torch_threads": torch.get_num_threads(),
        "recipe": recipe.model_dump(mode="json"), "machine": platform.platform(), "python": platform.python_version(),
        "results": rows, "speedup": ratio, "extraction_seconds": extraction, "break_even_epoch": break_even,
        "uniform_log_loss": math.log(len(classes)),
    }, indent=2) + "\n", encoding="utf-8")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
