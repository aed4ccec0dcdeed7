"""``cvflow submit kaggle-dogs``: the checked submission to Kaggle's ``dog-breed-identification`` (by hand, never
from ``dvc repro``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.pipelines.kaggle_dogs.common import SAMPLE, competition, run_paths

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params


def submit(params: Params, root: Path, file: Path | None = None, message: str | None = None) -> dict:
    """Send the submission (default ``data/submissions/kaggle-dogs.csv``) to Kaggle's ``dog-breed-identification``
    after checking it; the default message names the git commit and the MLflow run of the head that made it."""
    from cvflow.data.submissions import check_dog_submission

    sample = competition().data_dir(root) / SAMPLE
    check_dog_submission(file if file is not None else competition().submission_file(root),
                         sample_submission=sample if sample.exists() else None)
    from cvflow.competition import submit as send

    return send(competition(), root, file, message, model_file=run_paths(root, "train_valid").model)
