"""``cvflow predict kaggle-cifar10``: every test image through the final model, the checked submission file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.console import info
from cvflow.pipelines.kaggle_cifar10.common import EXPERIMENT, cfg as kaggle_cfg, competition, run_paths, transforms

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params


def predict(params: Params, root: Path) -> Path:
    """Every test image through the ``train_valid`` model: the checked submission file, logged to its run."""
    from cvflow.data.readers.images import ImageIdFolder
    from cvflow.data.submissions import write_cifar10_submission
    from cvflow.engine.runtime import Precision, resolve_device
    from cvflow.engine.predict import predict_labels
    from cvflow.engine.runtime import resolve_workers
    from cvflow.fileio import sha1sum
    from cvflow.models.files import load_model
    import cvflow.models.cifar  # noqa: F401  (registers the architecture the model file names)
    from cvflow.tracking import find_run

    cfg = kaggle_cfg(params)
    model_file = run_paths(root, "train_valid").model
    model, data = load_model(model_file)
    classes = list(data["classes"])
    device = resolve_device(params.common.device)
    test = ImageIdFolder(competition().prepared_dir(root) / "test" / "unknown", transforms(cfg)[1],
                         cache=params.common.image_cache, cache_max_bytes=params.common.image_cache_mb * 2**20)
    ids, predicted = predict_labels(model, test, batch_size=cfg.recipe.batch_size, device=device,
                                    precision=Precision.resolve(device, params.common.precision),
                                    num_workers=resolve_workers(params.common.num_workers, device))
    sample = competition().data_dir(root) / "sampleSubmission.csv"
    path = write_cifar10_submission(ids, [classes[int(i)] for i in predicted], competition().submission_file(root),
                                    classes=classes, expected_ids=test.ids,
                                    sample_submission=sample if sample.exists() else None)
    tracker = find_run(root, EXPERIMENT, sha1sum(model_file))
    if tracker is not None:
        tracker.log_artifact(path, "submission")
    info(f"submission: {len(ids)} test images -> {path}")
    return path
