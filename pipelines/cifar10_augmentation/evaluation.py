"""``cvflow evaluate cifar10``: both runs' models on the test images, compared (book 13.1).

It reads the declaration's ``VARIANTS`` (the runs it compares), so adding a variant stales this stage too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.console import info
from cvflow.pipelines.cifar10_augmentation.common import (EXPERIMENT, cfg as cifar_cfg, metrics_file, run_paths,
                                                          split)

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params


def evaluate(params: Params, root: Path) -> dict:
    """Test both models on ``common.device``: ``metrics/cifar10-augmentation.json`` holds their test
    accuracies and the difference the book's section is about; the curves of both on one chart."""
    import pandas as pd
    import torch

    from cvflow.engine.runtime import Precision, resolve_device
    from cvflow.engine.trainer import make_loader
    from cvflow.fileio import sha1sum, write_json
    from cvflow.models.files import load_model
    import cvflow.models.cifar  # noqa: F401  (registers the architecture the model file names)
    from cvflow.pipelines.cifar10_augmentation import VARIANTS  # the declaration: which runs are compared
    from cvflow.plots import training_curves
    from cvflow.tracking import find_run

    cfg = cifar_cfg(params)
    device = resolve_device(params.common.device)
    precision = Precision.resolve(device, params.common.precision)
    test_set = split(cfg, root, False, False)
    loader = make_loader(test_set, 512, train=False)
    results: dict = {}
    for variant in VARIANTS:
        model_file = run_paths(root, variant).model
        model, data = load_model(model_file)
        model.to(device).eval()
        correct = torch.zeros((), dtype=torch.long, device=device)
        with torch.inference_mode():
            for images, labels in loader:
                with precision.autocast():
                    logits = model(images.to(device, non_blocking=True))
                correct += (logits.argmax(dim=1) == labels.to(device)).sum()
        results[variant.replace("-", "_")] = {"test_acc": int(correct) / len(test_set)}
        tracker = find_run(root, EXPERIMENT, sha1sum(model_file))
        if tracker is not None:
            tracker.log_evaluation(results[variant.replace("-", "_")], step=int(data["meta"].get("epochs", 0)))
            gallery = root / "data" / "reports" / "augmentation"  # `cvflow figures augmentation`, when drawn
            for picture in sorted(gallery.glob("*.png")) if gallery.is_dir() else []:
                tracker.log_artifact(picture, "augmentation")
    results["augment_minus_no_augment"] = results["augment"]["test_acc"] - results["no_augment"]["test_acc"]
    results["test_images"] = len(test_set)
    write_json(metrics_file(root), results)
    histories = {v: pd.read_csv(run_paths(root, v).history).to_dict("records") for v in VARIANTS}
    training_curves(histories, run_paths(root, "augment").reports / "curves.png",
                    "CIFAR-10: with and without augmentation")
    info(f"CIFAR-10 test accuracy: augment {results['augment']['test_acc']:.3f}, "
         f"no-augment {results['no_augment']['test_acc']:.3f}")
    return results
