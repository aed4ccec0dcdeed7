"""``cvflow features kaggle-dogs``: the frozen backbone's features, once per image and view, into
``data/features/kaggle-dogs.pt`` (``views`` augmented views of each labelled image; the test transform's view, and
its mirror image with ``tta_flip``, of each valid and test image)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.console import info
from cvflow.pipelines.kaggle_dogs.common import (FEATURES_FORMAT, cfg as dogs_cfg, competition, features_config,
                                                 features_file, frozen_backbone, image_folder, transforms)

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params


def features(params: Params, root: Path) -> Path:
    """Run the frozen backbone once per image and view; write ``data/features/kaggle-dogs.pt``:
    ``labelled`` (every train_valid image: name, label, ``views`` augmented views), ``valid`` and ``test``
    (the test transform's view, and its mirror image with ``tta_flip``)."""
    import torch

    from cvflow.data.readers.images import ImageIdFolder
    from cvflow.engine.runtime import Precision, resolve_device, seed_everything
    from cvflow.engine.features import extract_features
    from cvflow.engine.runtime import resolve_workers
    from cvflow.fileio import atomic_path

    cfg = dogs_cfg(params)
    common = params.common
    device = resolve_device(common.device)
    run = dict(batch_size=256, device=device, precision=Precision.resolve(device, common.precision),
               num_workers=resolve_workers(common.num_workers, device))
    backbone, identity = frozen_backbone(params, root)
    train_tf, test_tf, flip_tf = transforms(cfg)
    seed_everything(common.seed)
    if cfg.views:
        labelled = image_folder(params, root, "train_valid", train_tf)
        classes, names, labels = labelled.classes, [p.name for p in labelled.paths], labelled.targets
        views = torch.stack([extract_features(backbone, labelled, **run)[0] for _ in range(cfg.views)], dim=1)
    else:  # the book's path: training reads the images themselves, only their names and labels are kept here
        classes, names, labels = _labelled_files(root)
        views = torch.empty(len(names), 0, backbone.dim)
    valid = image_folder(params, root, "valid", test_tf, classes)  # the same files as train_valid's: decoded once
    test = ImageIdFolder(competition().prepared_dir(root) / "test" / "unknown", test_tf, cache=common.image_cache,
                         cache_max_bytes=common.image_cache_mb * 2**20)
    cache: dict = {
        "format": FEATURES_FORMAT, "config": features_config(params, identity), "dim": backbone.dim,
        "classes": classes, "labelled": {"names": names, "labels": labels, "views": views},
        "valid": {"names": [p.name for p in valid.paths], "labels": valid.targets},
        "test": {"ids": [str(i) for i in test.ids]},
    }
    for part, dataset in (("valid", valid), ("test", test)):
        cache[part]["test_view"] = extract_features(backbone, dataset, **run)[0]
        if cfg.tta_flip:
            dataset.transform = flip_tf
            cache[part]["flip_view"] = extract_features(backbone, dataset, **run)[0]
    path = features_file(root)
    # through a file object, as save_model: the zip's inner folder is then named the same on every run
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(cache, handle)
    info(f"features ({cfg.backbone.weights} backbone, {cfg.backbone.layer}, {backbone.dim} per image): "
         f"{len(names)} labelled images x {cfg.views} augmented views; {len(valid)} valid and {len(test)} test "
         f"images x {1 + cfg.tta_flip} test views -> {path}")
    return path


def _labelled_files(root: Path):
    """The classes, file names and labels of ``train_valid`` (as the image folder lists them), nothing decoded."""
    import torch

    from cvflow.data.readers.images import list_images
    from cvflow.errors import UserError

    folder = competition().prepared_dir(root) / "train_valid"
    if not folder.is_dir():
        raise UserError(f"{folder}: missing; run `cvflow prepare kaggle-dogs` first")
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    files = [(p.name, k) for k, breed in enumerate(classes) for p in list_images(folder / breed)]
    return classes, [name for name, _ in files], torch.tensor([k for _, k in files], dtype=torch.long)
