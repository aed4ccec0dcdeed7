"""Banana detection (book 13.6-13.7): the data, TinySSD trained, evaluated (mAP) and drawn."""

from __future__ import annotations

from pathlib import Path

from cvflow.console import info
from typing import Literal

from pydantic import Field

from cvflow.params import HubData, ParamsBase as Params, Recipe, Strict, TwinSize
from cvflow.pipelines.task import (DATA_PARAMS, RUN_COMMON, Effect, Number, Section, Stage, Task, curves, fetch_stage,
                                   run_files)


# ----------------------------------------------------------------------------- params schema


class BananasProfile(Strict):
    """Banana detection with TinySSD (13.6-13.7)."""

    data: HubData
    demo: TwinSize
    image_size: int = Field(256, ge=32, le=1024, description="training and evaluation resolution (the book: 256)")
    recipe: Recipe
    prior_prob: float | None = Field(None, gt=0, lt=1, description=(
        "start every anchor as an object with this probability (RetinaNet's prior init of the class "
        "biases; 0.01 is usual); null: PyTorch's default init, as the book"))
    augment: bool = Field(True, description="flips and box-keeping random crops (transforms.v2, boxes move too)")
    input_max: Literal[1, 255] = Field(1, description=(
        "the range of the float images the network is fed: 1 for [0, 1]; 255 for 0-255, as the book feeds "
        "them (its BananasDataset returns features.float())"))
    nms_threshold: float = Field(0.5, gt=0, le=1, description="IoU above which NMS suppresses a box")
    conf_threshold: float = Field(0.9, ge=0, le=1, description="boxes drawn in the predictions picture (the book: 0.9)")
    grid_images: int = Field(8, ge=1, le=64, description="validation images drawn with their predicted boxes")


# Each stage imports what it alone needs inside its function (see pipelines/hotdog.py).


def data_dir(root: Path) -> Path:
    return root / "data" / "banana-detection"


def fetch(params: Params, root: Path, source: str | None = None, path: Path | None = None) -> dict:
    from cvflow.data.sources.bananas import fetch_bananas

    cfg = params.task("bananas")
    return fetch_bananas(data_dir(root), source or cfg.data.source, path=path or cfg.data.path,
                         hub_url=params.common.hub_url, downloads=root / "data" / "downloads",
                         n_train=cfg.demo.train, n_val=cfg.demo.test, seed=cfg.demo.seed)


# ----------------------------------------------------------------------------- TinySSD (13.7)

EXPERIMENT = "bananas"
RUN = "tinyssd"
DATA = "data/banana-detection"
#: Detections per image scored by mAP: COCO's (and torchmetrics') limit, the most confident first.
MAX_DETECTIONS = 100


def run_paths(root: Path):
    """The training run's files: ``data/models/bananas/tinyssd.pt``, ``metrics/bananas/tinyssd{.json,_history.csv}``,
    ``data/reports/bananas/tinyssd_curves.png`` (see :class:`cvflow.engine.run.RunPaths`)."""
    from cvflow.engine.paths import RunPaths

    return RunPaths(root, EXPERIMENT, RUN)


def metrics_file(root: Path) -> Path:
    return root / "metrics" / "bananas.json"


def _to_float(cfg) -> list:
    """What turns uint8 images into the floats the network is fed (``input_max``): nothing for [0, 1]
    (:func:`~cvflow.data.readers.bananas.book_collate` divides by 255), a plain cast for the book's 0-255."""
    import torch
    from torchvision.transforms import v2

    return [v2.ToDtype(torch.float32, scale=False)] if cfg.input_max == 255 else []


def _test_spec(cfg) -> dict:
    """The network's test input as data: resized to ``image_size``, floats in [0, 1] or the book's 0-255."""
    return {"resize": [cfg.image_size, cfg.image_size], "scale": "unit" if cfg.input_max == 1 else "byte"}


def _train_set(cfg, root: Path):
    from torchvision.transforms import v2

    from cvflow.data.readers.bananas import BananasDataset, detection_test_transforms, detection_train_transforms

    size = cfg.image_size
    transforms = detection_train_transforms(size) if cfg.augment else detection_test_transforms(size)
    return BananasDataset(data_dir(root), "train", transforms=v2.Compose([transforms, *_to_float(cfg)]))


def _val_set(cfg, root: Path):
    """bananas_val at the training resolution (evaluate and predict decode only this split)."""
    from torchvision.transforms import v2

    from cvflow.data.readers.bananas import BananasDataset
    from cvflow.preprocess import inference_transform

    # the served model's transform (its resize moves the boxes too), then the boxes kept inside the image
    return BananasDataset(data_dir(root), "val",
                          transforms=v2.Compose([inference_transform(_test_spec(cfg)), v2.ClampBoundingBoxes()]))


def train(params: Params, root: Path) -> dict:
    """Train TinySSD (book 13.7) as one tracked run: checkpoints, resume, DDP, MLflow."""
    from cvflow.data.readers.bananas import book_collate
    from cvflow.detection.ssd import DetectionTask, tinyssd
    from cvflow.engine.run import RunSpec, train_run
    from cvflow.pipelines.lineage import dvc_digests
    from cvflow.serving import Servable

    cfg = params.task("bananas")
    val_set = _val_set(cfg, root)
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
        serve=Servable(f"{EXPERIMENT}-{RUN}", "detect", _test_spec(cfg), [val_set.images[0]],
                       options={"nms_threshold": cfg.nms_threshold, "conf_threshold": cfg.conf_threshold})), params)
    last = result.final
    if result.dist.is_main:
        info(f"TinySSD: val class error {last['test_class_err']:.2e} (all-background baseline "
             f"{last['test_class_err_baseline']:.2e}), bbox MAE {last['test_bbox_mae']:.2e}")
    return last


def _load_net(params: Params, root: Path):
    """The trained TinySSD on ``common.device`` (eval mode), its file's fields, precision and MLflow run."""
    from cvflow.engine.runtime import Precision, resolve_device
    from cvflow.errors import UserError
    from cvflow.fileio import sha1sum
    from cvflow.models.files import load_model
    import cvflow.detection.ssd  # noqa: F401  (registers the architecture the model file names)
    from cvflow.tracking import find_run

    path = run_paths(root).model
    if not path.exists():
        raise UserError(f"{path}: missing; run `cvflow train bananas` first")
    net, data = load_model(path)
    device = resolve_device(params.common.device)
    return (net.to(device).eval(), data, device, Precision.resolve(device, params.common.precision),
            find_run(root, EXPERIMENT, sha1sum(path)))


def evaluate(params: Params, root: Path) -> dict:
    """mAP@0.5 and mAP@[0.5:0.95] (torchmetrics) plus the book's class error and bbox MAE on bananas_val."""
    import torch
    from torchmetrics.detection import MeanAveragePrecision

    from cvflow.data.readers.bananas import book_collate
    from cvflow.detection.ssd import DetectionTask, detect
    from cvflow.engine.trainer import make_loader, move_to
    from cvflow.fileio import write_json

    cfg = params.task("bananas")
    net, data, device, precision, tracker = _load_net(params, root)
    val_set = _val_set(cfg, root)
    loader = make_loader(val_set, 32, train=False, collate_fn=book_collate, pin_memory=device.type == "cuda")
    task = DetectionTask()
    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox").to(device)
    sums: dict = {}
    with torch.inference_mode():
        for images, labels in loader:
            images, labels = move_to((images, labels), device)
            with precision.autocast():
                outputs = net(images)
            outputs = tuple(o.float() for o in outputs)
            for key, value in task.loss_and_sums(outputs, labels)[1].items():
                sums[key] = sums.get(key, 0.0) + value  # device tensors: read once, after the loop
            output = detect(outputs, cfg.nms_threshold)
            scale = torch.tensor([images.shape[3], images.shape[2]] * 2, dtype=torch.float32, device=device)
            preds, targets = [], []
            for rows, truth in zip(output, labels):
                kept = rows[rows[:, 0] >= 0][:MAX_DETECTIONS]  # rows come sorted by confidence
                preds.append({"boxes": kept[:, 2:] * scale, "scores": kept[:, 1], "labels": kept[:, 0].long()})
                real = truth[truth[:, 0] >= 0]
                targets.append({"boxes": real[:, 1:] * scale, "labels": real[:, 0].long()})
            metric.update(preds, targets)
    found = metric.compute()
    summary = task.summarize({key: float(value) for key, value in sums.items()}, "val")
    results = {"map_50": float(found["map_50"]), "map": float(found["map"]),
               "val_class_err": summary["val_class_err"],
               "val_class_err_baseline": summary["val_class_err_baseline"],
               "val_bbox_mae": summary["val_bbox_mae"], "val_images": len(val_set)}
    write_json(metrics_file(root), results)
    if tracker is not None:
        tracker.log_evaluation(results, step=int(data["meta"].get("epochs", 0)))
        tracker.log_artifact(metrics_file(root), "metrics")
    info(f"TinySSD on bananas_val: mAP@0.5 {results['map_50']:.3f}, mAP@[0.5:0.95] {results['map']:.3f}, "
         f"class error {results['val_class_err']:.2e} (all-background "
         f"{results['val_class_err_baseline']:.2e}), bbox MAE {results['val_bbox_mae']:.2e}")
    return results


def predict(params: Params, root: Path) -> Path:
    """Draw the boxes above ``conf_threshold`` on validation images (a PNG grid, logged to MLflow)."""
    import torch
    from PIL import Image
    from torchvision.transforms.v2.functional import resize
    from torchvision.utils import draw_bounding_boxes, make_grid

    from cvflow.data.readers.bananas import book_collate
    from cvflow.detection.ssd import detect, detections
    from cvflow.fileio import atomic_path

    cfg = params.task("bananas")
    net, _, device, precision, tracker = _load_net(params, root)
    val_set = _val_set(cfg, root)
    count = min(cfg.grid_images, len(val_set))
    images, _ = book_collate([val_set[i] for i in range(count)])  # the network's input, as in training
    with torch.inference_mode(), precision.autocast():
        outputs = net(images.to(device))
    output = detect(tuple(o.float() for o in outputs), cfg.nms_threshold).cpu()
    drawn = []
    for index, rows in enumerate(output):  # drawn on the stored image, at its own resolution
        original = val_set.images[index]
        kept = detections(rows, cfg.conf_threshold, original.shape[2], original.shape[1])  # as served
        canvas = draw_bounding_boxes(original, val_set.boxes[index], colors="lime", width=1)
        if len(kept):
            canvas = draw_bounding_boxes(canvas, kept[:, 2:], [f"{float(c):.2f}" for c in kept[:, 1]],
                                         colors="red", width=2)
        if drawn and canvas.shape != drawn[0].shape:  # one grid needs one size (a local set may mix them)
            canvas = resize(canvas, list(drawn[0].shape[-2:]), antialias=True)
        drawn.append(canvas)
    grid = make_grid(drawn, nrow=4, padding=4, pad_value=255)
    path = run_paths(root).reports / "predictions.png"
    with atomic_path(path) as tmp:
        Image.fromarray(grid.permute(1, 2, 0).numpy()).save(tmp, format="PNG")
    if tracker is not None:
        tracker.log_artifact(path, "plots")
    info(f"predictions (red: confidence >= {cfg.conf_threshold}; green: ground truth) at {path}")
    return path


#: the comparison charts (dvc.yaml's top-level plots; static copies in the report)
CHARTS = {"bananas class error per epoch (validation; the baseline predicts background everywhere)": curves(
    "metrics/bananas/tinyssd_history.csv", y=["test_class_err", "test_class_err_baseline"])}

REPORT = (
    Section("13.6", "The object detection dataset",
            "The banana detection set: 256 x 256 images with one banana each, its box as (class, x1, y1, x2, y2) "
            "scaled to [0, 1]; 1,000 training and 100 validation images in the book's set.",
            numbers=(Number("validation images", "metrics/bananas.json:val_images", 100, fmt=".0f",
                            book_note="the demo twin is smaller"),)),
    Section("13.7", "Single shot multibox detection",
            "TinySSD predicts a class and box offsets for every anchor of five feature maps at once, and is trained "
            "on anchor labels (13.4) with cross-entropy and an L1 box loss; non-maximum suppression keeps its "
            "best boxes.",
            numbers=(Number("class error, last epoch (training images)", f"metrics/{EXPERIMENT}/{RUN}.json:train_class_err",
                            3.27e-3, fmt=".2e", book_note="the book prints the training images' error"),
                     Number("bbox MAE, last epoch (training images)", f"metrics/{EXPERIMENT}/{RUN}.json:train_bbox_mae",
                            3.08e-3, fmt=".2e"),
                     Number("class error, validation", "metrics/bananas.json:val_class_err", fmt=".2e"),
                     Number("class error, validation, all-background baseline",
                            "metrics/bananas.json:val_class_err_baseline", fmt=".2e"),
                     Number("bbox MAE, validation", "metrics/bananas.json:val_bbox_mae", fmt=".2e"),
                     Number("mAP@0.5, validation", "metrics/bananas.json:map_50"),
                     Number("mAP@[0.5:0.95], validation", "metrics/bananas.json:map")),
            effects=(Effect("the detector beats its all-background floor: lower anchor class error on validation "
                            "images than predicting background everywhere", "metrics/bananas.json:val_class_err", "<",
                            "metrics/bananas.json:val_class_err_baseline"),
                     Effect("it finds bananas: mAP@0.5 on validation images above 0.5", "metrics/bananas.json:map_50",
                            ">", 0.5)),
            pictures=("data/reports/bananas/predictions.png",), charts=tuple(CHARTS), runs=(f"{EXPERIMENT}/{RUN}",)),
)

TASK: Task[BananasProfile] = Task(
    name="bananas", profile=BananasProfile, title="13.6-13.7 TinySSD on bananas",
    stages=(
        fetch_stage(fetch, DATA, "demo | d2l | local",
                    "Banana detection (13.6) into data/banana-detection/bananas_{train,val}/."),
        Stage("train", train, "TinySSD on the banana detection set (book 13.7).", recipe="recipe", deps=(DATA,),
              # the thresholds go into the registered model: its served answers use them
              params=(*RUN_COMMON, *DATA_PARAMS, "image_size", "recipe", "prior_prob", "augment", "input_max",
                      "nms_threshold", "conf_threshold"),
              **run_files(EXPERIMENT, RUN), tracked=True),
        Stage("evaluate", evaluate, "metrics/bananas.json: mAP@0.5, mAP@[0.5:0.95], class error (and its "
              "all-background baseline), bbox MAE.", deps=(DATA, "data/models/bananas/tinyssd.pt"),
              params=("common.device", "common.precision", "image_size", "input_max", "nms_threshold"),
              metrics=("metrics/bananas.json",), tracked=True),
        Stage("predict", predict, "data/reports/bananas/predictions.png: boxes above conf_threshold on "
              "validation images.", deps=(DATA, "data/models/bananas/tinyssd.pt"),
              params=("common.device", "common.precision", "image_size", "input_max", "nms_threshold", "conf_threshold",
                      "grid_images"), outs=("data/reports/bananas/predictions.png",), tracked=True),
    ),
    charts=CHARTS,
    report=REPORT,
)
