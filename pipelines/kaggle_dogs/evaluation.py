"""``cvflow evaluate kaggle-dogs``: the ``train`` head's valid log loss (Kaggle's metric) and accuracy, into
``metrics/kaggle-dogs.json``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.console import info
from cvflow.pipelines.kaggle_dogs.common import (EXPERIMENT, SAMPLE, cfg as dogs_cfg, competition, load_features,
                                                 metrics_file, probabilities, run_paths)

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params


def evaluate(params: Params, root: Path) -> dict:
    """Valid log loss (Kaggle's metric, clipped) and accuracy of the ``train`` head, against guessing uniformly."""
    import math

    from cvflow.data.submissions import check_dog_submission, multiclass_log_loss
    from cvflow.fileio import sha1sum, write_json
    from cvflow.models.files import load_model
    import cvflow.models.features  # noqa: F401  (registers the architecture the model file names)
    from cvflow.tracking import find_run

    cfg = dogs_cfg(params)
    cache = load_features(params, root)
    model_file = run_paths(root, "train").model
    head, data = load_model(model_file)
    labels = cache["valid"]["labels"]
    probs = probabilities(head, cache["valid"], tta_flip=cfg.tta_flip)
    breeds = len(data["classes"])
    results: dict = {"valid_log_loss": multiclass_log_loss(probs.numpy(), labels.numpy()),
                     "valid_acc": (probs.argmax(dim=1) == labels).double().mean().item(),
                     "valid_images": len(labels), "breeds": breeds,
                     "uniform_log_loss": math.log(breeds), "tta_flip": cfg.tta_flip}
    submission = competition().submission_file(root)
    if submission.exists():
        sample = competition().data_dir(root) / SAMPLE
        shape = check_dog_submission(submission, sample_submission=sample if sample.exists() else None)
        results.update(submission_rows=shape["rows"], submission_breeds=shape["breeds"])
    write_json(metrics_file(root), results)
    tracker = find_run(root, EXPERIMENT, sha1sum(model_file))
    if tracker is not None:
        tracker.log_evaluation({k: v for k, v in results.items() if isinstance(v, float)},
                               step=int(data["meta"].get("epochs", 0)))
    info(f"Kaggle dog breeds: valid log loss {results['valid_log_loss']:.3f} (uniform guess "
         f"{results['uniform_log_loss']:.3f}), accuracy {results['valid_acc']:.3f} on {len(labels)} images")
    return results
