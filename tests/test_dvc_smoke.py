"""The smoke switch (README: "Check an install in minutes"): `dvc exp run -S common.smoke=true` runs
every stage of `dvc.yaml` with the same commands, writing the same files, from tiny data.

It runs before the full demo's e2e test (file order), so a broken stage shows in minutes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import yaml

from conftest import git_copy

pytestmark = pytest.mark.slow


def _outputs(stage: dict) -> list[str]:
    found = []
    for key in ("outs", "metrics", "plots"):
        for out in stage.get(key) or []:
            found.append(out if isinstance(out, str) else next(iter(out)))
    return found


def test_smoke_runs_every_stage_and_writes_every_output(tmp_path):
    root = tmp_path / "cvflow"
    env = git_copy(root)

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
