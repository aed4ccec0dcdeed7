"""``cvflow train bananas``: TinySSD (book 13.7) as one tracked run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.console import info
from cvflow.pipelines.bananas.common import (DATA, EXPERIMENT, RUN, cfg as bananas_cfg, data_dir, input_spec,
                                             run_paths, val_images)

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params


def _to_float(cfg) -> list:
    """What turns uint8 images into the floats the network is fed (``input_max``): nothing for [0, 1]
    (:func:`~cvflow.data.readers.bananas.book_collate` divides by 255), a plain cast for the book's 0-255."""
    import torch
    from torchvision.transforms import v2

    return [v2.ToDtype(torch.float32, scale=False)] if cfg.input_max == 255 else []


def _train_set(cfg, root: Path):
    from torchvision.transforms import v2

    from cvflow.data.readers.bananas import BananasDataset, detection_test_transforms, detection_train_transforms

    size = cfg.image_size
    transforms = detection_train_transforms(size) if cfg.augment else detection_test_transforms(size)
    return BananasDataset(data_dir(root), "train", transforms=v2.Compose([transforms, *_to_float(cfg)]))


def train(params: Params, root: Path) -> dict:
    """Train TinySSD (book 13.7) as one tracked run: checkpoints, resume, DDP, MLflow."""
    from cvflow.data.readers.bananas import book_collate
    from cvflow.detection.ssd import DetectionTask, tinyssd
    from cvflow.engine.run import RunSpec, train_run
    from cvflow.pipelines.lineage import dvc_digests
    from cvflow.serving import Servable

    cfg = bananas_cfg(params)
    val_set = val_images(cfg, root)
    config = {"recipe": cfg.recipe.model_dump(mode="json"), "augment": cfg.augment, "seed": params.common.seed,
              "image_size": cfg.image_size, "prior_prob": cfg.prior_prob, "input_max": cfg.input_max,
              "data": cfg.data.model_dump(mode="json"), "demo": cfg.demo.model_dump(mode="json")}
    result = train_run(RunSpec(
        paths=run_paths(root),
        build=lambda: tinyssd(num_classes=1, prior_prob=cfg.prior_prob), task=DetectionTask(),
        train_set=_train_set(cfg, root), eval_set=val_set, recipe=cfg.recipe, config=config,
        inputs={"banana-detection": data_dir(root)},
        input_digests={"banana-detection": dvc_digests(root, DATA).get(DATA, "")},
        classes=["banana"], collate_fn=book_collate,
        meta={"input_max": cfg.input_max, "image_size": cfg.image_size},
        curve_metric="class_err", curve_label="anchor class error", title="TinySSD on bananas",
        serve=Servable(f"{EXPERIMENT}-{RUN}", "detect", input_spec(cfg), [val_set.images[0]],
                       options={"nms_threshold": cfg.nms_threshold, "conf_threshold": cfg.conf_threshold})), params)
    last = result.final
    if result.dist.is_main:
        info(f"TinySSD: val class error {last['test_class_err']:.2e} (all-background baseline "
             f"{last['test_class_err_baseline']:.2e}), bbox MAE {last['test_bbox_mae']:.2e}")
    return last
