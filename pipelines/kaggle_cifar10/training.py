"""``cvflow train kaggle-cifar10 --variant train|train_valid``: one run of the book's 13.13 training.

A run trains on the prepared split named after it: ``train`` (``valid`` for model selection) or ``train_valid``
(the final model, registered). Nothing here reads the declaration's variants, so adding one stales no other
variant's run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.console import info
from cvflow.pipelines.kaggle_cifar10.common import (EXPERIMENT, FINAL, cfg as kaggle_cfg, competition, folder,
                                                    test_spec, transforms)

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params

#: the prepared splits a run trains on (``valid`` only selects, ``test`` is unlabelled)
TRAINED = ("train", FINAL)


def train(params: Params, root: Path, variant: str) -> dict:
    """The book's 13.13 training: ``train`` (valid for model selection) or ``train_valid`` (the final model)."""
    from cvflow.engine.trainer import ClassificationTask
    from cvflow.engine.run import train_variant
    from cvflow.errors import UserError
    from cvflow.models.cifar import build_resnet18_cifar
    from cvflow.pipelines.lineage import dvc_digests
    from cvflow.serving import Servable

    if variant not in TRAINED:  # before the folder named after it is looked for
        raise UserError(f"--variant {variant!r}: use one of {', '.join(TRAINED)}")
    cfg = kaggle_cfg(params)
    train_tf, test_tf = transforms(cfg)
    train_set = folder(params, root, variant, train_tf)
    valid_set = folder(params, root, "valid", test_tf, train_set.classes) if variant == "train" else None
    config = {"net": cfg.net.model_dump(mode="json"), "transforms": cfg.transforms.model_dump(mode="json"),
              "valid_ratio": cfg.valid_ratio, "data": cfg.data.model_dump(mode="json"),
              "demo": cfg.demo.model_dump(mode="json")}
    prepared = "data/kaggle-cifar10-prepared"
    result = train_variant(
        params, root, EXPERIMENT, variant, recipe=cfg.recipe,
        data={"kaggle-cifar10-prepared": competition().prepared_dir(root)},
        digests={"kaggle-cifar10-prepared": dvc_digests(root, prepared).get(prepared, "")}, config=config,
        build=lambda: build_resnet18_cifar(len(train_set.classes), cfg.net.width, cfg.net.init),
        task=ClassificationTask(), train_set=train_set, eval_set=valid_set, classes=train_set.classes,
        title=f"Kaggle CIFAR-10: {variant}",
        serve=Servable(f"{EXPERIMENT}-{variant}", "classify", test_spec(cfg), [train_set.image(0)],
                       register=variant == FINAL))
    if result.dist.is_main and "test_acc" in result.final:
        info(f"{variant}: valid accuracy {result.final['test_acc']:.3f} after {len(result.history)} epochs")
    return result.final
