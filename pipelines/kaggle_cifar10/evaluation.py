"""``cvflow evaluate kaggle-cifar10``: the ``train`` model's valid accuracy, and with ``--labels`` the submission's
test accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.console import info
from cvflow.pipelines.kaggle_cifar10.common import (EXPERIMENT, cfg as kaggle_cfg, competition, folder, metrics_file,
                                                    run_paths, transforms)

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params


def evaluate(params: Params, root: Path, labels: Path | None = None) -> dict:
    """Valid accuracy (and per class) of the ``train`` model; with ``labels`` (``id,label`` for the
    test images) also the submission's test accuracy."""
    import torch

    from cvflow.data.submissions import score_submission
    from cvflow.engine.runtime import Precision, resolve_device
    from cvflow.engine.trainer import make_loader
    from cvflow.fileio import sha1sum, write_json
    from cvflow.models.files import load_model
    import cvflow.models.cifar  # noqa: F401  (registers the architecture the model file names)
    from cvflow.tracking import find_run

    cfg = kaggle_cfg(params)
    model_file = run_paths(root, "train").model
    model, data = load_model(model_file)
    classes = list(data["classes"])
    device = resolve_device(params.common.device)
    precision = Precision.resolve(device, params.common.precision)
    valid = folder(params, root, "valid", transforms(cfg)[1], classes)
    model.to(device).eval()
    predictions = []
    with torch.inference_mode():
        for images, _ in make_loader(valid, 512, train=False):
            with precision.autocast():
                predictions.append(model(images.to(device, non_blocking=True)).argmax(dim=1))
    predicted = torch.cat(predictions).cpu()
    correct = predicted == valid.targets
    results: dict = {"valid_acc": correct.float().mean().item(), "valid_images": len(valid),
                     "valid_acc_per_class": {c: correct[valid.targets == i].float().mean().item()
                                             for i, c in enumerate(classes) if (valid.targets == i).any()}}
    submission = competition().submission_file(root)
    results["submission_rows"] = sum(1 for _ in submission.open(encoding="utf-8")) - 1 if submission.exists() else 0
    if labels is not None:
        scored = score_submission(submission, labels, classes=classes)
        results.update(test_acc=scored["accuracy"], test_scored=scored["scored"],
                       test_acc_per_class=scored["per_class"])
    write_json(metrics_file(root), results)
    tracker = find_run(root, EXPERIMENT, sha1sum(model_file))
    if tracker is not None:
        tracker.log_evaluation({k: v for k, v in results.items() if isinstance(v, float)},
                               step=int(data["meta"].get("epochs", 0)))
    info(f"Kaggle CIFAR-10: valid accuracy {results['valid_acc']:.3f} on {len(valid)} images"
         + (f"; submission test accuracy {results['test_acc']:.3f} on {results['test_scored']} labelled images"
            if labels is not None else ""))
    return results
