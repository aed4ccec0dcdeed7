"""A Kaggle competition in a project (13.13 CIFAR-10, 13.14 dog breeds), handled one way for every task.

A :class:`Competition` names the competition and where its files live in the project::

    data/<folder>/                     the competition's files (fetched: demo twin, d2l sample, Kaggle API, local)
    data/<folder>-prepared/            the book's train / valid / train_valid / test/unknown folders
    data/submissions/<folder>.csv      the submission file
    MLflow experiment <folder>         the runs that made it

and the functions below do what both chapters' tasks do with one: fetch, reorganise (the book's ``reorg_*`` functions),
read a prepared split, and send a submission whose message ties the leaderboard entry back to the
git commit and the MLflow run that made the file.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from cvflow.console import info
from cvflow.errors import UserError


@dataclass(frozen=True)
class Competition:
    name: str          # Kaggle's name: cifar-10, dog-breed-identification
    folder: str        # the project's name for it: data/<folder>, the MLflow experiment
    labels: str        # the labels CSV of the training images (trainLabels.csv, labels.csv)
    hub_key: str       # the d2l hub's sample of it
    title: str         # for log lines

    def data_dir(self, root: Path) -> Path:
        return Path(root) / "data" / self.folder

    def prepared_dir(self, root: Path) -> Path:
        return Path(root) / "data" / f"{self.folder}-prepared"

    def submission_file(self, root: Path) -> Path:
        return Path(root) / "data" / "submissions" / f"{self.folder}.csv"


# ----------------------------------------------------------------------------- what is done with one


def fetch(comp: Competition, root: Path, source: str, path: Path | None, hub_url: str,
          generate: Callable[[Path], Any]) -> dict:
    """The competition's files into ``data/<folder>/`` (``generate`` writes the demo twin)."""
    from cvflow.data.sources.kaggle import fetch_competition

    counts = fetch_competition(comp.data_dir(root), source, competition=comp.name, hub_key=comp.hub_key,
                              labels_csv=comp.labels, generate=generate, path=path, hub_url=hub_url,
                              downloads=Path(root) / "data" / "downloads")
    info(f"{comp.title} ({source}) at {comp.data_dir(root)}: {counts}")
    return counts


def prepare(comp: Competition, root: Path, valid_ratio: float, seed: int, mode: str) -> dict:
    """The book's reorganisation into ``data/<folder>-prepared/`` (hard links, or manifests)."""
    from cvflow.data.sources.kaggle_reorg import reorg_kaggle

    source = comp.data_dir(root)
    counts = reorg_kaggle(source / "train", source / comp.labels, comp.prepared_dir(root), valid_ratio, seed,
                          test_dir=source / "test", mode=mode)
    info(f"{comp.title} reorganised ({mode}) at {comp.prepared_dir(root)}")
    return counts


def split(comp: Competition, root: Path, name: str, transform, reorg: str, setting: str, common: Any,
          classes: list[str] | None = None):
    """The prepared split ``name`` (``train``, ``valid``, ``train_valid``) as an image folder, decoded once;
    ``setting`` names the params key of ``reorg`` for the error that training needs ``link``."""
    from cvflow.data.readers.images import DecodedImageFolder

    command = f"cvflow prepare {comp.folder}"
    if reorg != "link":
        raise UserError(f"{setting} = {reorg}: training reads the book's folders; set it to link and rerun "
                        f"`{command}`")
    folder = comp.prepared_dir(root) / name
    if not folder.is_dir():
        raise UserError(f"{folder}: missing; run `{command}` first")
    return DecodedImageFolder(folder, classes, transform, "error", cache=common.image_cache,
                              cache_max_bytes=common.image_cache_mb * 2**20)


def submit(comp: Competition, root: Path, file: Path | None = None, message: str | None = None,
           model_file: Path | None = None) -> dict[str, str]:
    """Send ``file`` (default the project's submission file) to Kaggle; the default message names the
    git commit and the MLflow run of ``model_file`` (else the experiment's newest finished run)."""
    from cvflow.data.sources.kaggle import kaggle_submit
    from cvflow.fileio import sha1sum
    from cvflow.tracking import find_run

    run = find_run(root, comp.folder, sha1sum(model_file)) if model_file is not None and model_file.exists() \
        else None
    path = Path(file) if file is not None else comp.submission_file(root)
    text = message if message is not None else default_message(Path(root), comp.folder,
                                                                run.run_id if run else None)
    return kaggle_submit(comp.name, path, text)


# ----------------------------------------------------------------------------- the submission's message


def _git_commit(root: Path) -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def latest_run_id(root: Path, experiment: str) -> str | None:
    """The id of the newest FINISHED run of MLflow ``experiment`` (None: no experiment or run; a store that
    fails to answer raises :class:`cvflow.tracking.StoreError`, as :func:`cvflow.tracking.find_run` does)."""
    from cvflow.tracking import store_client, tracking_uri

    client = store_client(tracking_uri(root))
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs([found.experiment_id], "attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], max_results=1)
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
