"""``cvflow predict kaggle-dogs``: the ``train_valid`` head's softmax for every test image, the checked
``data/submissions/kaggle-dogs.csv``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.console import info
from cvflow.pipelines.kaggle_dogs.common import (EXPERIMENT, SAMPLE, cfg as dogs_cfg, competition, load_features,
                                                 probabilities, run_paths)

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params


def predict(params: Params, root: Path) -> Path:
    """Every test image through the ``train_valid`` head: the checked submission file, logged to its run."""
    from cvflow.data.readers.images import list_images
    from cvflow.data.submissions import image_ids, write_dog_submission
    from cvflow.fileio import sha1sum
    from cvflow.models.files import load_model
    import cvflow.models.features  # noqa: F401  (registers the architecture the model file names)
    from cvflow.tracking import find_run

    cfg = dogs_cfg(params)
    cache = load_features(params, root)
    model_file = run_paths(root, "train_valid").model
    head, data = load_model(model_file)
    probs = probabilities(head, cache["test"], tta_flip=cfg.tta_flip)
    sample = competition().data_dir(root) / SAMPLE
    test_folder = competition().prepared_dir(root) / "test" / "unknown"
    path = write_dog_submission(cache["test"]["ids"], probs.numpy(), list(data["classes"]),
                                sample if sample.exists() else None, competition().submission_file(root),
                                expected_ids=image_ids(list_images(test_folder)))
    tracker = find_run(root, EXPERIMENT, sha1sum(model_file))
    if tracker is not None:
        tracker.log_artifact(path, "submission")
    info(f"submission: {probs.shape[0]} test images x {probs.shape[1]} breeds -> {path}")
    return path
