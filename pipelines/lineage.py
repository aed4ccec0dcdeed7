"""The DVC side of run lineage: the hash ``dvc.lock`` records for a data folder.

The library knows nothing of DVC; the pipelines do (they name the files ``dvc.yaml`` tracks).
A training run logs the data it read as an MLflow run input, and the digest it gives MLflow is
the folder's DVC hash, so a run in the MLflow UI points at exactly one version of the data that
``dvc checkout`` / ``dvc pull`` can bring back. The hash is used only when the folder still holds
what ``dvc.lock`` says (same number of files and total size, both recorded there); otherwise
(a hand-run stage, an edited folder) the library's own file-list digest stands in.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from cvflow.params import load_yaml


def dvc_digests(root: Path, *folders: str) -> dict[str, str]:
    """``{folder: md5}`` (DVC's directory hash, 32 hex digits) for each ``folder`` (relative to ``root``) that ``dvc.lock`` records
    as a stage output and that still matches its recorded file count and size."""
    lock = Path(root) / "dvc.lock"
    if not lock.exists():
        return {}
    try:
        stages = (load_yaml(lock.read_text(encoding="utf-8")) or {}).get("stages", {})
    except yaml.YAMLError:
        return {}
    recorded = {out.get("path"): out for stage in stages.values() for out in stage.get("outs", []) or []}
    found: dict[str, str] = {}
    for folder in folders:
        out = recorded.get(folder)
        if not out or "md5" not in out or not _matches(Path(root) / folder, out):
            continue
        found[folder] = out["md5"].removesuffix(".dir")
    return found


def _matches(folder: Path, out: dict) -> bool:
    count = size = 0
    for top, _, files in os.walk(folder):
        for name in files:
            count += 1
            size += os.stat(os.path.join(top, name)).st_size
    return count == out.get("nfiles") and size == out.get("size")
