"""``cvflow evaluate voc``: every val image predicted whole (padded to a multiple of 32, the logits cropped back)
and scored; ``metrics/voc.json`` and ``data/reports/voc/predictions.png``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.console import info
from cvflow.pipelines.voc.common import EXPERIMENT, cfg as voc_cfg, data_dir, run_paths

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params


def metrics_file(root: Path) -> Path:
    return root / "metrics" / "voc.json"


def predictions_file(root: Path) -> Path:
    """The picture of val images as image | prediction | truth."""
    return run_paths(root).reports / "predictions.png"


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

    cfg = voc_cfg(params)
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
    picture = draw_predictions(val.images[:keep], predictions, val.labels[:keep], predictions_file(root),
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
