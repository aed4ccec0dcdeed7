"""Image augmentation on CIFAR-10 (book 13.1): the CIFAR ResNet-18 trained with and without it.

Stages (see ``dvc.yaml``)::

    fetch cifar10 -> data/cifar10/cifar-10-batches-py/
    train cifar10 --variant augment|no-augment -> data/models/cifar10-augmentation/<variant>.pt, metrics/...
    evaluate cifar10 -> metrics/cifar10-augmentation.json (both test accuracies and their difference)

Both runs share the seed, the schedule and the data; only the train transforms differ. The
figures of the section (the augmentations on ``cat1.jpg``) are ``cvflow figures augmentation``.
"""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from cvflow.console import info
from cvflow.params import Params

# Each stage imports what it alone needs inside its function (see pipelines/hotdog.py).


def data_dir(root: Path) -> Path:
    """Holds ``cifar-10-batches-py`` (read with :func:`cvflow.data.readers.cifar.cifar10_dataset`)."""
    return root / "data" / "cifar10"


def fetch(params: Params, root: Path, source: str | None = None, path: Path | None = None) -> dict:
    from cvflow.data.sources.cifar import fetch_cifar10

    cfg = params.task("cifar10")
    source = source or cfg.data.source
    result = fetch_cifar10(data_dir(root), source, path=path or cfg.data.path, n_train=cfg.demo.train,
                           n_test=cfg.demo.test, seed=cfg.demo.seed)
    info(f"CIFAR-10 ({source}) at {data_dir(root) / 'cifar-10-batches-py'}")
    return result


# ----------------------------------------------------------------------------- 13.1: with and without augmentation

EXPERIMENT = "cifar10-augmentation"  # MLflow experiment, and the folder of the runs' files
VARIANTS = ("augment", "no-augment")


def run_paths(root: Path, variant: str):
    """Files of the run ``variant``: see :class:`cvflow.engine.run.RunPaths`."""
    from cvflow.engine.run import RunPaths

    return RunPaths(root, EXPERIMENT, variant)


def metrics_file(root: Path) -> Path:
    return root / "metrics" / f"{EXPERIMENT}.json"


class _Images(Dataset):
    """uint8 CHW images held in memory (CIFAR-10's batches decode to one array) with a transform."""

    def __init__(self, images, labels, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.transform(self.images[index]), self.labels[index]


def _transforms(cfg, augment: bool):
    """The book's 13.1 train_augs (flip, and the demo's padded crop) or test_augs, on uint8 tensors.

    As the book, images become floats in [0, 1] (``ToTensor``) and are not normalised."""
    import torch
    from torchvision.transforms import v2

    steps = []
    if augment and cfg.augment.hflip:
        steps.append(v2.RandomHorizontalFlip())
    if augment and cfg.augment.crop_padding:
        steps.append(v2.RandomCrop(32, padding=cfg.augment.crop_padding))
    return v2.Compose([*steps, v2.ToDtype(torch.float32, scale=True)])


def _split(cfg, root: Path, train: bool, augment: bool):
    """The CIFAR-10 training (its first ``train_images``) or test split, decoded once."""
    import torch

    from cvflow.data.readers.cifar import cifar10_dataset

    data = cifar10_dataset(data_dir(root), train=train)
    count = cfg.train_images if train and cfg.train_images else len(data.targets)
    images = torch.from_numpy(data.data[:count]).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor(data.targets[:count], dtype=torch.long)
    return _Images(images, labels, _transforms(cfg, augment and train))


def train(params: Params, root: Path, variant: str) -> dict:
    """The book's 13.1 experiment: the CIFAR ResNet-18 trained with (``augment``) or without
    (``no-augment``) augmentation, same seed, schedule and data, as one tracked run each."""
    from cvflow.data.readers.cifar import CIFAR10_CLASSES
    from cvflow.engine import ClassificationTask
    from cvflow.engine.run import RunSpec, train_run
    from cvflow.errors import UserError
    from cvflow.models.cifar import build_resnet18_cifar
    from cvflow.pipelines.lineage import dvc_digests

    if variant not in VARIANTS:
        raise UserError(f"--variant {variant!r}: use one of {', '.join(VARIANTS)}")
    cfg = params.task("cifar10")
    augment = variant == "augment"
    arch_kwargs = {"num_classes": len(CIFAR10_CLASSES), "width": cfg.net.width}
    config = {"variant": variant, "recipe": cfg.recipe.model_dump(mode="json"), "seed": params.common.seed,
              "net": cfg.net.model_dump(mode="json"), "augment": cfg.augment.model_dump(mode="json") if augment else None,
              "train_images": cfg.train_images, "data": cfg.data.model_dump(mode="json"),
              "demo": cfg.demo.model_dump(mode="json")}
    data = "data/cifar10"
    result = train_run(RunSpec(
        experiment=EXPERIMENT, name=variant, paths=run_paths(root, variant), arch="resnet18_cifar",
        arch_kwargs=arch_kwargs, build=lambda: build_resnet18_cifar(len(CIFAR10_CLASSES), cfg.net.width, cfg.net.init),
        task=ClassificationTask(), train_set=_split(cfg, root, True, augment), eval_set=_split(cfg, root, False, False),
        recipe=cfg.recipe, config=config, inputs={"cifar10": data_dir(root)},
        input_digests={"cifar10": dvc_digests(root, data).get(data, "")}, classes=CIFAR10_CLASSES,
        tags={"stage": f"train-cifar10-{variant}", "variant": variant}, meta={"variant": variant},
        title=f"CIFAR-10 ResNet-18, {variant}"), params)
    if result.dist.is_main:
        info(f"{variant}: test accuracy {result.final['test_acc']:.3f} after {len(result.history)} epochs")
    return result.final


def evaluate(params: Params, root: Path) -> dict:
    """Test both models on ``common.device``: ``metrics/cifar10-augmentation.json`` holds their test
    accuracies and the difference the book's section is about; the curves of both on one chart."""
    import pandas as pd
    import torch

    from cvflow.engine import Precision, make_loader, resolve_device
    from cvflow.fileio import sha1sum, write_json
    from cvflow.models.files import load_model
    from cvflow.plots import training_curves
    from cvflow.tracking import find_run

    cfg = params.task("cifar10")
    device = resolve_device(params.common.device)
    precision = Precision.resolve(device, params.common.precision)
    test_set = _split(cfg, root, False, False)
    loader = make_loader(test_set, 512, train=False)
    results: dict = {}
    for variant in VARIANTS:
        model_file = run_paths(root, variant).model
        model, data = load_model(model_file)
        model.to(device).eval()
        correct = torch.zeros((), dtype=torch.long, device=device)
        with torch.inference_mode():
            for images, labels in loader:
                with precision.autocast():
                    logits = model(images.to(device, non_blocking=True))
                correct += (logits.argmax(dim=1) == labels.to(device)).sum()
        results[variant.replace("-", "_")] = {"test_acc": int(correct) / len(test_set)}
        tracker = find_run(root, EXPERIMENT, sha1sum(model_file))
        if tracker is not None:
            tracker.log_evaluation(results[variant.replace("-", "_")], step=int(data["meta"].get("epochs", 0)))
            gallery = root / "data" / "reports" / "augmentation"  # `cvflow figures augmentation`, when drawn
            for picture in sorted(gallery.glob("*.png")) if gallery.is_dir() else []:
                tracker.log_artifact(picture, "augmentation")
    results["augment_minus_no_augment"] = results["augment"]["test_acc"] - results["no_augment"]["test_acc"]
    results["test_images"] = len(test_set)
    write_json(metrics_file(root), results)
    histories = {v: pd.read_csv(run_paths(root, v).history).to_dict("records") for v in VARIANTS}
    training_curves(histories, run_paths(root, "augment").reports / "curves.png",
                    "CIFAR-10: with and without augmentation")
    info(f"CIFAR-10 test accuracy: augment {results['augment']['test_acc']:.3f}, "
         f"no-augment {results['no_augment']['test_acc']:.3f}")
    return results
