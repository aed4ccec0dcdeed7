"""``cvflow train voc``: the book's FCN (13.11) as one tracked run.

Training follows the book: random ``crop_size`` crops (image and mask at the same place), images smaller than the
crop dropped, ImageNet normalisation, the per-epoch test metrics on random crops of the val images as ``train_ch13``
measures them. The ResNet-18 body starts from ``weights``; ``source`` is the hot dog pipeline's source model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.console import info
from cvflow.pipelines.voc.common import DATA, EXPERIMENT, RUN, cfg as voc_cfg, data_dir, run_paths

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params


def source_model(root: Path) -> Path:
    """The hot dog pipeline's source model (``cvflow pretrain hotdog``): the demo's ImageNet stand-in."""
    from cvflow.engine.paths import RunPaths

    return RunPaths(root, "hotdog", "source").model


def _backbone_state(params: Params, root: Path):
    """The ResNet-18 weights the FCN's body starts from (None: random), checked before any training."""
    from cvflow.errors import UserError
    from cvflow.models.resnet import imagenet_state_dict, read_state_dict

    cfg = voc_cfg(params)
    setting = f"voc.{params.profile}.weights"
    if cfg.weights == "none":
        return None
    if cfg.weights == "imagenet":
        return imagenet_state_dict(setting)
    path = source_model(root) if cfg.weights == "source" else Path(cfg.weights)
    if cfg.weights == "source" and not path.exists():
        raise UserError(f"{path}: missing; run `cvflow pretrain hotdog` first ({setting}: source), or set "
                        f"{setting} to imagenet, none or a PATH.pth")
    return read_state_dict(path, setting)


def _backbone(state, source: str):
    """A torchvision ResNet-18 holding ``state`` (every weight but the classifier)."""
    from cvflow.models.resnet import build_resnet18, load_backbone

    model = build_resnet18(1000)
    if state is not None:
        load_backbone(model, state, source)
    return model


def train(params: Params, root: Path) -> dict:
    """Train the book's FCN (13.11) as one tracked run: checkpoints, resume, DDP, MLflow."""
    from cvflow.data.readers.voc import TEST_SPEC, VOC_CLASSES, VOCSegDataset
    from cvflow.engine.run import RunSpec, train_run
    from cvflow.fileio import sha1sum
    from cvflow.pipelines.lineage import dvc_digests
    from cvflow.segmentation import SegmentationTask, fcn_resnet18
    from cvflow.serving import Servable

    cfg = voc_cfg(params)
    state = _backbone_state(params, root)
    origin = cfg.weights if cfg.weights in ("imagenet", "source", "none") else Path(cfg.weights).name
    config = {"recipe": cfg.recipe.model_dump(mode="json"), "crop_size": list(cfg.crop_size),
              "boundary": cfg.boundary, "weights": cfg.weights, "seed": params.common.seed,
              "data": cfg.data.model_dump(mode="json"), "demo": cfg.demo.model_dump(mode="json")}
    if cfg.weights not in ("imagenet", "none"):
        config["weights_sha1"] = sha1sum(source_model(root) if cfg.weights == "source" else Path(cfg.weights))
    crop = tuple(cfg.crop_size)

    def groups(model):  # the new layers (final_conv, transpose_conv) at head_lr_mult x; the book: one lr
        head = [*model.final_conv.parameters(), *model.transpose_conv.parameters()]
        ids = {id(p) for p in head}
        return [{"params": [p for p in model.parameters() if id(p) not in ids]},
                {"params": head, "lr_mult": cfg.recipe.optim.head_lr_mult}]

    train_set = VOCSegDataset(data_dir(root), "train", crop)
    val_set = VOCSegDataset(data_dir(root), "val", crop)
    result = train_run(RunSpec(
        paths=run_paths(root),
        build=lambda: fcn_resnet18(len(VOC_CLASSES), backbone=_backbone(state, f"voc.{params.profile}.weights")),
        groups=groups, task=SegmentationTask(len(VOC_CLASSES), cfg.boundary), train_set=train_set, eval_set=val_set,
        recipe=cfg.recipe, config=config, inputs={"voc": data_dir(root)},
        input_digests={"voc": dvc_digests(root, DATA).get(DATA, "")}, classes=VOC_CLASSES,
        tags={"weights": origin},
        meta={"weights": origin, "crop_size": list(crop), "boundary": cfg.boundary},
        curve_metric="miou", curve_label="mean IoU", title="FCN on VOC2012 (crops)",
        serve=Servable(f"{EXPERIMENT}-{RUN}", "segment", TEST_SPEC, [val_set.images[0]])), params)
    last = result.final
    if result.dist.is_main:
        info(f"FCN: val crops mIoU {last['test_miou']:.3f} (all-background {last['test_miou_baseline']:.3f}), "
             f"pixel accuracy {last['test_pixel_acc']:.3f} (all-background {last['test_pixel_acc_baseline']:.3f})")
    return last
