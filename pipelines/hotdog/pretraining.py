"""``cvflow pretrain hotdog``: the model the pretrained variants start from (``data/models/hotdog/source.pt``).

``weights`` decides what it is: ``imagenet`` (torchvision's ImageNet weights), ``source`` (a ResNet-18 pretrained
here on a generated multi-class food set, the demo's stand-in for ImageNet), ``none`` (random) or a ``PATH.pth``
of the user's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.console import info
from cvflow.pipelines.hotdog.common import EXPERIMENT, SOURCE, cfg as hotdog_cfg, run_paths

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params


def _source_run(params: Params, root: Path):
    """The demo's stand-in for ImageNet: a ResNet-18 trained on a generated 10-class food set."""
    import numpy as np
    import torch
    from torchvision.transforms import v2

    from cvflow.data.readers.images import TensorImages
    from cvflow.engine.run import RunSpec
    from cvflow.engine.trainer import ClassificationTask
    from cvflow.models.resnet import build_resnet18
    from cvflow.preprocess import inference_transform
    from cvflow.serving import Servable
    from cvflow.twins.food import FOOD_CLASSES, render_batch

    cfg = hotdog_cfg(params)
    pre = cfg.pretrain
    n = pre.images_per_class * len(FOOD_CLASSES)
    kinds = [FOOD_CLASSES[i % len(FOOD_CLASSES)] for i in range(n)]
    info(f"generating the source set: {n} images of {len(FOOD_CLASSES)} food classes at {pre.image_size} px")
    images = torch.from_numpy(render_batch(kinds, pre.seed, (pre.image_size, pre.image_size)))
    labels = torch.tensor([i % len(FOOD_CLASSES) for i in range(n)])
    order = torch.from_numpy(np.random.default_rng(pre.seed).permutation(n))
    held = order[: max(len(FOOD_CLASSES), n // 10)]
    kept = order[len(held):]
    norm = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(cfg.transforms.mean), list(cfg.transforms.std))]
    train_tf = v2.Compose([v2.RandomResizedCrop(pre.image_size, scale=(0.6, 1.0), antialias=True),
                           v2.RandomHorizontalFlip(), *norm])
    test_spec = {"resize": [pre.image_size, pre.image_size], "scale": "unit", "mean": list(cfg.transforms.mean),
                 "std": list(cfg.transforms.std)}
    held_images = images[held].permute(0, 3, 1, 2).contiguous()
    return RunSpec(
        paths=run_paths(root, SOURCE),
        build=lambda: build_resnet18(len(FOOD_CLASSES)),
        task=ClassificationTask(),
        train_set=TensorImages(images[kept].permute(0, 3, 1, 2).contiguous(), labels[kept], train_tf),
        eval_set=TensorImages(held_images, labels[held], inference_transform(test_spec)),
        recipe=pre.recipe,
        config={"stage": "pretrain", "pretrain": pre.model_dump(mode="json"), "seed": params.common.seed,
                "transforms": cfg.transforms.model_dump(mode="json")},
        inputs={},  # generated in memory from the seeds in config
        classes=FOOD_CLASSES, meta={"origin": "source"},
        serve=Servable(f"{EXPERIMENT}-{SOURCE}", "classify", test_spec, [held_images[0]], register=False),
        title="hot dog: source pretraining on generated food")


def pretrain(params: Params, root: Path) -> Path:
    """Write the fine-tune's starting weights to ``data/models/hotdog/source.pt``, and what they are to
    ``metrics/hotdog/source.json`` (the source run's last epoch, or only the origin of given weights)."""
    from cvflow.engine.runtime import seed_everything
    from cvflow.engine.run import train_run
    from cvflow.fileio import write_json
    from cvflow.models.files import save_model
    from cvflow.models.resnet import (IMAGENET_WEIGHTS, build_resnet18, imagenet_state_dict, load_backbone,
                                      read_state_dict)

    cfg = hotdog_cfg(params)
    paths = run_paths(root, SOURCE)
    path = paths.model
    setting = f"hotdog.{params.profile}.weights"
    if cfg.weights == "source":
        final = train_run(_source_run(params, root), params).final
        write_json(paths.metrics, {"origin": "source", **final})  # the run wrote it; the origin added
        info(f"source model ({cfg.weights}) written to {path}")
        return path
    if cfg.weights == "imagenet":
        model = build_resnet18(1000)
        model.load_state_dict(imagenet_state_dict(setting))
        save_model(path, model, IMAGENET_WEIGHTS.meta["categories"],
                   {"origin": "imagenet"})
    elif cfg.weights == "none":
        seed_everything(params.common.seed)
        save_model(path, build_resnet18(1000), [str(i) for i in range(1000)],
                   {"origin": "none"})
    else:
        state = read_state_dict(Path(cfg.weights), setting)
        num = state["fc.weight"].shape[0] if "fc.weight" in state else 1000
        model = build_resnet18(num)
        load_backbone(model, state, f"{setting}: {cfg.weights}")
        save_model(path, model, [str(i) for i in range(num)],
                   {"origin": Path(cfg.weights).name})
    origin = cfg.weights if cfg.weights in ("imagenet", "none") else Path(cfg.weights).name
    write_json(paths.metrics, {"origin": origin, "epoch": 0})  # given weights: nothing trained here
    info(f"source model ({cfg.weights}) written to {path}")
    return path
