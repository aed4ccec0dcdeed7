"""``cvflow train kaggle-dogs --variant train|train_valid``: the book's 13.14 head on the frozen backbone, one run.

Nothing here reads the declaration's variants, so adding one stales no other variant's run. A run is named after
the prepared split it trains on: ``train`` (valid held out, for model selection) or ``train_valid`` (all labelled
images: the final head, the one registered), the two splits this code knows; the CLI offers only the declared ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.console import info
from cvflow.pipelines.kaggle_dogs.common import (EXPERIMENT, SOURCE_MODEL, cfg as dogs_cfg, competition,
                                                 features_file, frozen_backbone, image_folder, load_features,
                                                 test_spec, transforms)

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params

FINAL = "train_valid"  # the head the submission comes from: the one registered


def _servable(params: Params, root: Path, variant: str, identity: dict):
    """The head with its frozen backbone as one served model: images in, breed probabilities out (with the
    mirrored view averaged in when ``tta_flip``, as the submission). ``identity``: the backbone's, as the
    features cache records it (its ``arch`` says which module loading the file needs imported)."""
    from cvflow.data.readers.images import decode_all, list_images
    from cvflow.models.files import architecture_module
    import cvflow.models.resnet  # noqa: F401  (registers the architecture of the source model)
    from cvflow.serving import Servable

    cfg = dogs_cfg(params)
    weights = cfg.backbone.weights
    backbone = {"weights": "imagenet", "layer": cfg.backbone.layer}
    modules: list[str] = []
    if weights != "imagenet":
        path = root / SOURCE_MODEL if weights == "source" else root / weights
        backbone.update(weights="file", path=path)
        modules = [architecture_module(identity["arch"])]
    split = competition().prepared_dir(root) / variant  # a labelled image: the input example
    first = next(images[0] for folder in sorted(split.iterdir()) if folder.is_dir() and (images := list_images(folder)))
    images, _ = decode_all([first], "error", str(first.parent))
    return Servable(f"{EXPERIMENT}-{variant}", "classify", test_spec(cfg), images, register=variant == FINAL,
                    options={"tta_flip": cfg.tta_flip}, backbone=backbone, modules=modules)


def _split(cache: dict, root: Path, split: str):
    """Rows of the cached labelled images that form ``split`` (train, train_valid), and their labels."""
    import torch

    from cvflow.data.readers.images import list_images
    from cvflow.errors import UserError

    row_of = {name: i for i, name in enumerate(cache["labelled"]["names"])}
    rows = []
    for breed in cache["classes"]:
        folder = competition().prepared_dir(root) / split / breed
        names = [p.name for p in list_images(folder)] if folder.is_dir() else []
        unknown = [n for n in names if n not in row_of]
        if unknown:
            raise UserError(f"{folder / unknown[0]}: not in {features_file(root)}; rerun `cvflow features kaggle-dogs`")
        rows += [row_of[n] for n in names]
    if not rows:
        folder = competition().prepared_dir(root) / split
        raise UserError(f"{folder}: no images; run `cvflow prepare kaggle-dogs` first")
    rows = torch.tensor(rows, dtype=torch.long)
    return rows, cache["labelled"]["labels"][rows]


def train(params: Params, root: Path, variant: str) -> dict:
    """The book's 13.14 head training: ``train`` (valid for model selection) or ``train_valid`` (the final head)."""
    from torch.utils.data import TensorDataset

    from cvflow.engine.trainer import ClassificationTask
    from cvflow.engine.features import BackboneTask, ViewFeatures
    from cvflow.engine.run import train_variant
    from cvflow.errors import UserError
    from cvflow.fileio import sha1sum
    from cvflow.models.features import feature_head
    from cvflow.pipelines.lineage import dvc_digests

    if variant not in ("train", FINAL):  # a split this code does not train on (the CLI offers none)
        raise UserError(f"--variant {variant!r}: use one of train, train_valid")
    cfg = dogs_cfg(params)
    cache = load_features(params, root)
    classes, dim = list(cache["classes"]), int(cache["dim"])
    config = {"hidden": cfg.hidden, "views": cfg.views, "backbone": cache["config"]["backbone"],
              "layer": cfg.backbone.layer, "transforms": cfg.transforms.model_dump(mode="json"),
              "valid_ratio": cfg.valid_ratio, "data": cfg.data.model_dump(mode="json"),
              "demo": cfg.demo.model_dump(mode="json")}
    if cfg.views:  # the head trains on the cached features: one of each image's views per epoch
        rows, labels = _split(cache, root, variant)
        train_set = ViewFeatures(cache["labelled"]["views"][rows], labels)
        eval_set = TensorDataset(cache["valid"]["test_view"], cache["valid"]["labels"]) if variant == "train" else None
        task = ClassificationTask()
        config["features_sha1"] = sha1sum(features_file(root))
    else:  # the book: the backbone runs on every freshly augmented batch, every epoch
        backbone, identity = frozen_backbone(params, root)
        if identity != cache["config"]["backbone"]:
            raise UserError(f"{features_file(root)}: made with another backbone; rerun `cvflow features kaggle-dogs`")
        train_tf, test_tf, _ = transforms(cfg)
        train_set = image_folder(params, root, variant, train_tf, classes)
        eval_set = image_folder(params, root, "valid", test_tf, classes) if variant == "train" else None
        task = BackboneTask(backbone=backbone)
    prepared = "data/kaggle-dogs-prepared"
    result = train_variant(
        params, root, EXPERIMENT, variant, recipe=cfg.recipe,
        data={"kaggle-dogs-prepared": competition().prepared_dir(root)},
        digests={"kaggle-dogs-prepared": dvc_digests(root, prepared).get(prepared, "")}, config=config,
        meta={"views": cfg.views}, build=lambda: feature_head(dim, len(classes), cfg.hidden), task=task,
        train_set=train_set, eval_set=eval_set, classes=classes, title=f"Kaggle dog breeds: {variant}",
        serve=_servable(params, root, variant, cache["config"]["backbone"]))
    if result.dist.is_main and "test_loss" in result.final:
        info(f"{variant}: valid log loss {result.final['test_loss']:.3f}, accuracy {result.final['test_acc']:.3f} "
             f"after {len(result.history)} epochs")
    return result.final
