"""``cvflow submit kaggle-cifar10``: the submission file to Kaggle's ``cifar-10`` (by hand, never from dvc repro)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.pipelines.kaggle_cifar10.common import competition, run_paths

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params


def submit(params: Params, root: Path, file: Path | None = None, message: str | None = None) -> dict:
    """Send the submission (default ``data/submissions/kaggle-cifar10.csv``) to Kaggle's ``cifar-10`` after
    checking it; the default message names the git commit and the MLflow run of the model that made the file."""
    from cvflow.data.sources.kaggle import check_submission_file

    check_submission_file(file if file is not None else competition().submission_file(root))
    from cvflow.competition import submit as send

    return send(competition(), root, file, message, model_file=run_paths(root, "train_valid").model)
