"""``cvflow evaluate hotdog``: every variant's model on the test images, compared (book 13.2).

It reads the declaration's ``VARIANTS`` (the runs it compares), so adding a variant stales this stage too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.console import info
from cvflow.pipelines.hotdog.common import (DATA, EXPERIMENT, cfg as hotdog_cfg, images, metrics_file,
                                            predictions_file, run_paths)

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params


def evaluate(params: Params, root: Path) -> dict:
    """Test every variant's model on ``common.device``; write ``metrics/hotdog.json`` and labelled prediction grids."""
    import pandas as pd
    import torch

    from cvflow.data.readers.hotdog import CLASSES
    from cvflow.data.readers.images import classification_transforms
    from cvflow.engine.runtime import Precision, resolve_device, use_pin_memory
    from cvflow.engine.trainer import make_loader
    from cvflow.engine.runtime import resolve_workers
    from cvflow.fileio import sha1sum, write_csv, write_json
    from cvflow.models.files import load_model
    import cvflow.models.resnet  # noqa: F401  (registers the architecture the model file names)
    from cvflow.plots import prediction_grid, training_curves
    from cvflow.pipelines.hotdog import VARIANTS  # the declaration: which runs are compared
    from cvflow.tracking import find_run

    cfg = hotdog_cfg(params)
    device = resolve_device(params.common.device)
    precision = Precision.resolve(device, params.common.precision)
    _, test_tf = classification_transforms(cfg.transforms)
    test_set = images(params, root / DATA / "test", test_tf)
    loader = make_loader(test_set, 256, train=False, num_workers=resolve_workers(params.common.num_workers, device),
                         pin_memory=use_pin_memory(device, params.common.pin_memory))
    labels = test_set.targets
    # the grid: the first images of each class, alternating, so both classes show
    per_class = [torch.nonzero(labels == c).flatten().tolist() for c in range(len(CLASSES))]
    grid_idx = [i for pair in zip(*per_class) for i in pair][: cfg.grid_images]
    results: dict = {}
    reports = run_paths(root, "finetune").reports
    for variant in VARIANTS:
        model_file = run_paths(root, variant).model
        model, data = load_model(model_file)
        model.to(device).eval()
        preds = []
        with torch.inference_mode():
            for batch, _ in loader:
                with precision.autocast():
                    preds.append(model(batch.to(device, non_blocking=True)).argmax(dim=1))
        pred = torch.cat(preds).cpu()  # one host copy for the whole test set
        correct = pred == labels
        # every test image's label as evaluated: what the served model must answer for the same file
        write_csv(predictions_file(root, variant),
                  [{"file": path.relative_to(root / DATA / "test").as_posix(), "label": CLASSES[int(t)],
                    "prediction": CLASSES[int(p)]} for path, t, p in zip(test_set.paths, labels, pred)])
        per_class_acc = {CLASSES[c]: correct[labels == c].float().mean().item() for c in range(len(CLASSES))}
        results[variant] = {"test_acc": correct.float().mean().item(),
                            **{f"test_acc_{k.replace('-', '_')}": v for k, v in per_class_acc.items()}}
        grid = prediction_grid([test_set.images[i] for i in grid_idx], [CLASSES[int(pred[i])] for i in grid_idx],
                               [CLASSES[int(labels[i])] for i in grid_idx], reports / f"{variant}_predictions.png",
                               title=f"hot dog {variant}: test accuracy {results[variant]['test_acc']:.3f}")
        tracker = find_run(root, EXPERIMENT, sha1sum(model_file))
        if tracker is not None:
            tracker.log_evaluation(results[variant], step=int(data["meta"].get("epochs", 0)))
            tracker.log_artifact(grid, "plots")
    results["finetune_minus_scratch"] = results["finetune"]["test_acc"] - results["scratch"]["test_acc"]
    results["test_images"] = len(test_set)
    write_json(metrics_file(root), results)
    histories = {variant: pd.read_csv(run_paths(root, variant).history).to_dict("records")
                 for variant in VARIANTS if run_paths(root, variant).history.exists()}
    training_curves(histories, reports / "curves.png", "hot dog: fine-tune vs scratch vs linear probe")
    info("hot dog test accuracy: " + ", ".join(f"{variant} {results[variant]['test_acc']:.3f}" for variant in VARIANTS))
    return results
