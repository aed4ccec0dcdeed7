"""The smoke switch (README: "Check an install in minutes"): `dvc exp run -S common.smoke=true` runs
every stage of `dvc.yaml` with the same commands, writing the same files, from tiny data.

It runs before the full demo's e2e test (file order), so a broken stage shows in minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO

pytestmark = pytest.mark.slow


def _outputs(stage: dict) -> list[str]:
    found = []
    for key in ("outs", "metrics", "plots"):
        for out in stage.get(key) or []:
            found.append(out if isinstance(out, str) else next(iter(out)))
    return found


def test_smoke_runs_every_stage_and_writes_every_output(tmp_path):
    root = tmp_path / "cvflow"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True)
    for name in filter(None, files.stdout.split("\0")):
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    env.pop("MLFLOW_TRACKING_URI", None)
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):
        subprocess.run(command, cwd=root, check=True, env=env)

    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "dvc", "exp", "run", "-S", "common.smoke=true"], cwd=root,
                         env=env, capture_output=True, text=True, timeout=1800)
    seconds = time.monotonic() - start
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    print(f"smoke run over every stage: {seconds:.0f} s")

    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    ran = {line.split("'")[1] for line in run.stdout.splitlines() if line.startswith("Running stage")}
    assert ran == set(stages), sorted(set(stages) - ran)  # every stage, none cached from the demo
    for name, stage in stages.items():
        for out in _outputs(stage):
            path = root / out
            assert path.exists() and (path.is_file() or any(path.iterdir())), f"{name}: {out} missing"
            if path.suffix == ".json":
                assert json.loads(path.read_text()), f"{name}: {out} empty"
    assert yaml.safe_load((root / "params.yaml").read_text())["common"]["smoke"] is True
    # tiny: the smoke's data, not the demo's (e.g. the hot dog twin)
    assert len(list((root / "data" / "hotdog" / "train" / "hotdog").iterdir())) == \
        yaml.safe_load((root / "params.yaml").read_text())["smoke"]["hotdog"]["demo"]["train_per_class"]
