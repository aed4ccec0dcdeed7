"""Shared fixtures: the repository root, the real data slices in ../shared/data, tiny projects."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared(*parts: str) -> Path:
    """A path in ../shared/data, or a skip (with the reason) when the slice is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data slice {path} is absent (only present beside the cvflow checkout)")
    return path


def tiny_params() -> dict:
    """The repository's params.yaml shrunk so a whole hot dog run takes seconds."""
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    demo = data["hotdog"]["demo"]
    demo["demo"].update(train_per_class=10, test_per_class=6, min_side=36, max_side=56)
    demo["transforms"].update(train_crop=32, test_resize=36, test_crop=32)
    demo["pretrain"].update(images_per_class=6, image_size=32)
    demo["pretrain"]["recipe"].update(epochs=1, batch_size=16)
    for variant in ("finetune", "scratch"):
        demo[variant].update(epochs=2, batch_size=8)
    demo["grid_images"] = 4
    return data


@pytest.fixture
def mlflow_uri(tmp_path, monkeypatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture
def project(tmp_path, mlflow_uri) -> Path:
    """A temporary project folder with tiny params (MLflow store inside it)."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    return root


def run_cvflow(*args: str, cwd: Path, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the installed `cvflow` command (a real process: exit codes, stderr)."""
    full_env = {**os.environ, **(env or {})}
    exe = shutil.which("cvflow", path=str(Path(sys.executable).parent)) or "cvflow"
    return subprocess.run([exe, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def git_copy(root: Path) -> dict:
    """A git repository at ``root`` holding the working tree's tracked files (one commit), as a fresh
    clone has them; returns the environment to run `dvc` and `cvflow` there (this venv's commands first,
    the project's own MLflow store, a git identity for DVC's experiment commits)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    env.pop("MLFLOW_TRACKING_URI", None)  # the default store, inside the project
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True)
    for name in filter(None, files.stdout.split("\0")):
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):
        subprocess.run(command, cwd=root, check=True, env=env, capture_output=True)
    return env
