"""Semantic segmentation on Pascal VOC2012 (book 13.9-13.11): the data, the book's FCN trained, scored, drawn.

Stages (see ``dvc.yaml``)::

    fetch voc    -> data/voc/VOCdevkit/VOC2012/{JPEGImages,SegmentationClass,ImageSets}
    train voc    -> data/models/voc/fcn.pt, metrics/voc/fcn{.json,_history.csv}, data/reports/voc/fcn_curves.png
    evaluate voc -> metrics/voc.json (whole val images), data/reports/voc/predictions.png

Training follows the book: random ``crop_size`` crops (image and mask at the same place), images
smaller than the crop dropped, ImageNet normalisation, the per-epoch test metrics on random crops
of the val images as ``train_ch13`` measures them. ``evaluate`` then predicts every val image
whole (padded to a multiple of 32, the logits cropped back) and scores that.
"""

from __future__ import annotations

from pathlib import Path

from cvflow.console import info
from typing import Literal

from pydantic import Field, field_validator

from cvflow.params import HubData, ParamsBase as Params, Recipe, Strict, TwinSize, check_weights
from cvflow.pipelines.task import (DATA_PARAMS, RUN_COMMON, Effect, Number, Section, Stage, Task, curves, fetch_stage,
                                   run_files)


# ----------------------------------------------------------------------------- params schema


class VocTwinSize(TwinSize):
    """The generated VOC twin: image counts and the range of its image sizes."""

    width: tuple[int, int] = Field((480, 500), description="smallest and largest image width, pixels")
    height: tuple[int, int] = Field((320, 500), description="smallest and largest image height, pixels")

    @field_validator("width", "height")
    @classmethod
    def _range(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not 16 <= value[0] <= value[1] <= 4096:
            raise ValueError("must be [min, max] with 16 <= min <= max <= 4096")
        return value


class VocProfile(Strict):
    """13.9-13.11 semantic segmentation: Pascal VOC2012 and the book's FCN."""

    data: HubData
    demo: VocTwinSize
    crop_size: tuple[int, int] = Field(description=(
        "(height, width) of the random crops trained on, both multiples of 32 (the FCN's stride); images "
        "smaller are dropped, as the book does (the book: 320x480)"))
    boundary: Literal["background", "ignore"] = Field(description=(
        "the 255 band around objects in the loss and the pixel accuracy: background (class 0, as the book's "
        "voc_label_indices maps it) | ignore (left out, as the field does); IoU always ignores it"))
    weights: str = Field(description=(
        "the ResNet-18 body's starting weights: imagenet (torchvision ResNet18_Weights.IMAGENET1K_V1) | source "
        "(the hot dog pipeline's model pretrained on generated food, data/models/hotdog/source.pt) | none | PATH.pth"))
    recipe: Recipe
    grid_images: int = Field(6, ge=1, le=64, description="validation images drawn as image | prediction | truth")

    @field_validator("crop_size")
    @classmethod
    def _crop(cls, value: tuple[int, int]) -> tuple[int, int]:
        if min(value) < 32 or value[0] % 32 or value[1] % 32:
            raise ValueError("height and width must be multiples of 32 (the FCN's stride), e.g. [320, 480]")
        return value

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: str) -> str:
        return check_weights(value, ("imagenet", "source", "none"))


# Each stage imports what it alone needs inside its function (see pipelines/hotdog.py).

EXPERIMENT = "voc"
RUN = "fcn"
DATA = "data/voc"


def data_dir(root: Path) -> Path:
    """Holds ``VOCdevkit/VOC2012``."""
    return root / "data" / "voc"


def fetch(params: Params, root: Path, source: str | None = None, path: Path | None = None) -> dict:
    from cvflow.data.sources.voc import fetch_voc

    cfg = params.task("voc")
    return fetch_voc(data_dir(root), source or cfg.data.source, path=path or cfg.data.path,
                     hub_url=params.common.hub_url, downloads=root / "data" / "downloads",
                     n_train=cfg.demo.train, n_val=cfg.demo.test, seed=cfg.demo.seed,
                     size=(tuple(cfg.demo.width), tuple(cfg.demo.height)))


def run_paths(root: Path):
    """The training run's files (see :class:`cvflow.engine.run.RunPaths`)."""
    from cvflow.engine.paths import RunPaths

    return RunPaths(root, EXPERIMENT, RUN)


def source_model(root: Path) -> Path:
    """The hot dog pipeline's source model (``cvflow pretrain hotdog``): the demo's ImageNet stand-in."""
    from cvflow.engine.paths import RunPaths

    return RunPaths(root, "hotdog", "source").model


def metrics_file(root: Path) -> Path:
    return root / "metrics" / "voc.json"


def _backbone_state(params: Params, root: Path):
    """The ResNet-18 weights the FCN's body starts from (None: random), checked before any training."""
    from cvflow.errors import UserError
    from cvflow.models.resnet import imagenet_state_dict, read_state_dict

    cfg = params.task("voc")
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

    cfg = params.task("voc")
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


def _key(name: str) -> str:
    """A class name as a metric key: 'potted plant' -> potted_plant, 'tv/monitor' -> tv_monitor."""
    return name.replace(" ", "_").replace("/", "_")


def draw_predictions(images, predictions, labels, path: Path, title: str = "") -> Path:
    """Rows of image | prediction | truth (the masks in the VOC palette), with a legend of the classes shown."""
    import matplotlib.patches as mpatches
    import torch

    from cvflow.data.readers.voc import VOC_CLASSES, VOC_COLORMAP
    from cvflow.plots import _save, plt
    from cvflow.segmentation import label2image

    rows = len(images)
    fig, axes = plt.subplots(rows, 3, figsize=(9, 2.4 * rows + 1), squeeze=False, layout="constrained")
    shown: set[int] = set()
    for row, (image, pred, label) in enumerate(zip(images, predictions, labels)):
        for col, (picture, name) in enumerate(((image.permute(1, 2, 0), "image"), (label2image(pred), "prediction"),
                                               (label2image(label), "truth"))):
            ax = axes[row, col]
            ax.imshow(picture.cpu().numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name)
        shown |= set(torch.cat([pred.flatten(), label.flatten()]).unique().tolist())
    patches = [mpatches.Patch(color=[v / 255 for v in VOC_COLORMAP[c]], label=VOC_CLASSES[c])
               for c in sorted(shown) if c < len(VOC_CLASSES)]
    if 255 in shown:
        patches.append(mpatches.Patch(color=(224 / 255, 224 / 255, 192 / 255), label="boundary (255)"))
    fig.legend(handles=patches, loc="outside lower center", ncol=min(6, len(patches)), fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def evaluate(params: Params, root: Path) -> dict:
    """Predict every val image whole; write ``metrics/voc.json`` (mean and per-class IoU, the book's pixel
    accuracy, both against predicting background everywhere) and ``data/reports/voc/predictions.png``."""
    from cvflow.data.readers.voc import VOCSegDataset
    from cvflow.engine.runtime import Precision, resolve_device
    from cvflow.errors import UserError
    from cvflow.fileio import sha1sum, write_json
    from cvflow.models.files import load_model
    import cvflow.models.fcn  # noqa: F401  (registers the architecture the model file names)
    from cvflow.segmentation import score_images
    from cvflow.tracking import find_run

    cfg = params.task("voc")
    paths = run_paths(root)
    if not paths.model.exists():
        raise UserError(f"{paths.model}: missing; run `cvflow train voc` first")
    model, data = load_model(paths.model)
    device = resolve_device(params.common.device)
    precision = Precision.resolve(device, params.common.precision)
    val = VOCSegDataset(data_dir(root), "val", crop_size=None)  # every val image, whole
    keep = min(cfg.grid_images, len(val))
    scores, predictions = score_images(model, (val[i] for i in range(len(val))), boundary=cfg.boundary,
                                       device=device, precision=precision, keep=keep)
    results = {"miou": scores["miou"], "pixel_acc": scores["pixel_acc"],
               "miou_baseline": scores["miou_baseline"], "pixel_acc_baseline": scores["pixel_acc_baseline"],
               "iou": {_key(name): value for name, value in scores["iou"].items()}, "val_images": len(val)}
    write_json(metrics_file(root), results)
    picture = draw_predictions(val.images[:keep], predictions, val.labels[:keep], paths.reports / "predictions.png",
                               title=f"FCN, whole val images: mIoU {results['miou']:.3f}, pixel accuracy "
                                     f"{results['pixel_acc']:.3f}")
    tracker = find_run(root, EXPERIMENT, sha1sum(paths.model))
    if tracker is not None:
        flat = {k: v for k, v in results.items() if k != "iou"}
        flat.update({f"iou_{name}": value for name, value in results["iou"].items()})
        tracker.log_evaluation(flat, step=int(data["meta"].get("epochs", 0)))
        tracker.log_artifact(metrics_file(root), "metrics")
        tracker.log_artifact(picture, "plots")
    info(f"FCN on {len(val)} whole val images: mIoU {results['miou']:.3f} (all-background "
         f"{results['miou_baseline']:.3f}), pixel accuracy {results['pixel_acc']:.3f} (all-background "
         f"{results['pixel_acc_baseline']:.3f})")
    return results


#: the comparison charts (dvc.yaml's top-level plots; static copies in the report)
CHARTS = {"VOC2012 FCN mean IoU per epoch (val crops; the baseline predicts background everywhere)": curves(
    "metrics/voc/fcn_history.csv", y=["test_miou", "test_miou_baseline"])}

REPORT = (
    Section("13.9", "Semantic segmentation and the dataset",
            "Pascal VOC2012 labels every pixel with one of 21 classes (background included), a band of 255 "
            "marking uncertain borders; the book trains on random 320 x 480 crops and drops smaller images "
            "(1,114 training and 1,078 validation images remain).",
            numbers=(Number("validation images", "metrics/voc.json:val_images", 1078, fmt=".0f",
                            book_note="the book counts the val images at least 320 x 480; here every val image, "
                                      "scored whole"),)),
    Section("13.11", "Fully convolutional networks",
            "A ResNet-18 body, a 1 x 1 convolution to 21 channels and a transposed convolution initialised as "
            "bilinear upsampling (x32) turn an image into a class per pixel.",
            numbers=(Number("pixel accuracy, validation", "metrics/voc.json:pixel_acc", 0.852,
                            book_note="the book: on 320 x 480 val crops; here on whole val images"),
                     Number("pixel accuracy, all-background baseline", "metrics/voc.json:pixel_acc_baseline"),
                     Number("mean IoU, validation", "metrics/voc.json:miou"),
                     Number("mean IoU, all-background baseline", "metrics/voc.json:miou_baseline")),
            effects=(Effect("the FCN segments objects: mean IoU at least twice the all-background baseline's",
                            "metrics/voc.json:miou", ">=", "metrics/voc.json:miou_baseline", factor=2.0),
                     Effect("pixel accuracy above predicting background everywhere", "metrics/voc.json:pixel_acc", ">",
                            "metrics/voc.json:pixel_acc_baseline")),
            pictures=("data/reports/voc/predictions.png",), charts=tuple(CHARTS), runs=(f"{EXPERIMENT}/{RUN}",)),
)

TASK: Task[VocProfile] = Task(
    name="voc", profile=VocProfile, title="13.9-13.11 semantic segmentation",
    stages=(
        fetch_stage(fetch, DATA, "demo | d2l | local", "Pascal VOC2012 segmentation (13.9) into data/voc/VOCdevkit/VOC2012/."),
        Stage("train", train, "The book's FCN on Pascal VOC2012 (book 13.11): random crops, ResNet-18 body, "
              "bilinear upsampling.", recipe="recipe", deps=(DATA, "data/models/hotdog/source.pt"),
              params=(*RUN_COMMON, *DATA_PARAMS, "crop_size", "boundary", "weights", "recipe"),
              **run_files(EXPERIMENT, RUN), tracked=True),
        Stage("evaluate", evaluate, "metrics/voc.json: mean and per-class IoU and pixel accuracy on whole val "
              "images (and the all-background baseline); data/reports/voc/predictions.png.",
              deps=(DATA, "data/models/voc/fcn.pt"),
              params=("common.device", "common.precision", "boundary", "grid_images"),
              outs=("data/reports/voc/predictions.png",), metrics=("metrics/voc.json",), tracked=True),
    ),
    charts=CHARTS,
    report=REPORT,
)
