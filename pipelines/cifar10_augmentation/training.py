"""``cvflow train cifar10 --variant augment|no-augment``: one run of the book's 13.1 experiment.

Nothing here reads the declaration's variants, so adding one stales no other variant's run. What a run does
follows from its name (``augment``: the train transforms of the ``augment`` params; ``no-augment``: none), the
two runs this code knows; the CLI offers only the declared ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.console import info
from cvflow.errors import UserError
from cvflow.pipelines.cifar10_augmentation.common import (DATA, EXPERIMENT, TEST_SPEC, cfg as cifar_cfg, data_dir,
                                                          split)

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params


def train(params: Params, root: Path, variant: str) -> dict:
    """The book's 13.1 experiment: the CIFAR ResNet-18 trained with (``augment``) or without
    (``no-augment``) augmentation, same seed, schedule and data, as one tracked run each."""
    from cvflow.data.readers.cifar import CIFAR10_CLASSES
    from cvflow.engine.trainer import ClassificationTask
    from cvflow.engine.run import train_variant
    from cvflow.models.cifar import build_resnet18_cifar
    from cvflow.pipelines.lineage import dvc_digests
    from cvflow.serving import Servable

    cfg = cifar_cfg(params)
    augment = variant == "augment"
    test_set = split(cfg, root, False, False)
    config = {"net": cfg.net.model_dump(mode="json"),
              "augment": cfg.augment.model_dump(mode="json") if augment else None,
              "train_images": cfg.train_images, "data": cfg.data.model_dump(mode="json"),
              "demo": cfg.demo.model_dump(mode="json")}
    if not augment and variant != "no-augment":  # a run this code does not know (the CLI offers none)
        raise UserError(f"--variant {variant!r}: use one of augment, no-augment")
    result = train_variant(
        params, root, EXPERIMENT, variant, recipe=cfg.recipe, data={"cifar10": data_dir(root)},
        digests={"cifar10": dvc_digests(root, DATA).get(DATA, "")}, config=config,
        build=lambda: build_resnet18_cifar(len(CIFAR10_CLASSES), cfg.net.width, cfg.net.init),
        task=ClassificationTask(), train_set=split(cfg, root, True, augment), eval_set=test_set,
        classes=CIFAR10_CLASSES, title=f"CIFAR-10 ResNet-18, {variant}",
        serve=Servable(f"cifar10-{variant}", "classify", TEST_SPEC, [test_set.images[0]]))
    if result.dist.is_main:
        info(f"{variant}: test accuracy {result.final['test_acc']:.3f} after {len(result.history)} epochs")
    return result.final
