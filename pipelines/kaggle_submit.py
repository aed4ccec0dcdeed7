"""Submitting a Kaggle competition's file (13.13, 13.14): ``cvflow submit TASK``.

Kept apart from the task pipelines so each task's module only names its competition, its
file and its MLflow experiment; the message ties the leaderboard entry back to the code
(git commit) and the training run (MLflow run id) that made the file.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from cvflow.params import Params

__all__ = ["default_message", "latest_run_id", "submit"]


def _git_commit(root: Path) -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def latest_run_id(root: Path, experiment: str) -> str | None:
    """The id of the newest FINISHED run of MLflow ``experiment`` (None: no store, experiment or run)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from cvflow.tracking import tracking_uri

    client = MlflowClient(tracking_uri=tracking_uri(root))
    try:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            return None
        runs = client.search_runs([found.experiment_id], "attributes.status = 'FINISHED'",
                                  order_by=["attributes.start_time DESC"], max_results=1)
    except mlflow.exceptions.MlflowException:
        return None
    return runs[0].info.run_id if runs else None


def default_message(root: Path, experiment: str, run_id: str | None = None) -> str:
    """``cvflow <task>: git <commit> mlflow run <id>``, leaving out what is unknown; ``run_id``: the run
    that made the file (else the experiment's newest finished run)."""
    parts = [f"cvflow {experiment}"]
    commit = _git_commit(root)
    if commit:
        parts.append(f"git {commit}")
    run_id = run_id or latest_run_id(root, experiment)
    if run_id:
        parts.append(f"mlflow run {run_id}")
    return " ".join(parts)


def submit(params: Params, root: Path, competition: str, default_file: str | Path, experiment: str,
           file: Path | None = None, message: str | None = None, run_id: str | None = None) -> dict[str, str]:
    """Send ``file`` (default ``root/default_file``) to Kaggle ``competition``; return Kaggle's answer.

    ``message`` defaults to :func:`default_message`. ``params`` is taken for the same call shape
    as every stage (nothing in it changes a submission today).
    """
    from cvflow.data.sources.kaggle import kaggle_submit

    path = Path(file) if file is not None else Path(root) / default_file
    text = message if message is not None else default_message(Path(root), experiment, run_id)
    return kaggle_submit(competition, path, text)
