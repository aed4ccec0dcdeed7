"""The smoke switch (README: "Check an install in minutes"): `dvc exp run -S common.smoke=true` runs
every stage of `dvc.yaml` with the same commands, writing the same files, from tiny data.

It runs before the full demo's e2e test (file order), in the same fresh copy of the repository
(`smoke_pass` and `demo_repo` in conftest.py): a broken stage shows in minutes, and the demo's
`dvc repro` afterwards must rerun every stage.
"""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import ran_stages

pytestmark = pytest.mark.slow


def _outputs(stage: dict) -> list[str]:
    found = []
    for key in ("outs", "metrics", "plots"):
        for out in stage.get(key) or []:
            found.append(out if isinstance(out, str) else next(iter(out)))
    return found


def _rows(path) -> int:
    """The data rows of a CSV file (its header aside)."""
    return len(path.read_text().splitlines()) - 1


def test_smoke_runs_every_stage_and_writes_every_output(smoke_pass):
    root, run = smoke_pass.root, smoke_pass.smoke
    assert smoke_pass.demo is None, "the smoke checks read the workspace: they must run before the demo's repro"
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    print(f"smoke run over every stage: {smoke_pass.smoke_seconds:.0f} s")

    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    ran = ran_stages(run.stdout)
    assert ran == set(stages), sorted(set(stages) - ran)  # every stage, none cached from the demo
    for name, stage in stages.items():
        for out in _outputs(stage):
            path = root / out
            assert path.exists() and (path.is_file() or any(path.iterdir())), f"{name}: {out} missing"
            if path.suffix == ".json":
                assert json.loads(path.read_text()), f"{name}: {out} empty"

    # the smoke values reached what the stages wrote: data sizes, epochs and steps are the smoke
    # section's, not the demo's (each differs from the demo's value, so each check tells them apart)
    params = yaml.safe_load((root / "params.yaml").read_text())
    smoke, demo = params["smoke"], {task: params[task]["demo"] for task in params["smoke"]}
    metrics = {name: json.loads((root / "metrics" / f"{name}.json").read_text())
               for name in ("bananas", "cifar10-augmentation", "kaggle-cifar10", "kaggle-dogs", "style")}
    produced_and_smoke_and_demo = {
        "hot dog train images": (len(list((root / "data" / "hotdog" / "train" / "hotdog").iterdir())),
                                 smoke["hotdog"]["demo"]["train_per_class"], demo["hotdog"]["demo"]["train_per_class"]),
        "hot dog fine-tune epochs": (_rows(root / "metrics" / "hotdog" / "finetune_history.csv"),
                                     smoke["hotdog"]["finetune"]["epochs"], demo["hotdog"]["finetune"]["epochs"]),
        "bananas epochs": (_rows(root / "metrics" / "bananas" / "tinyssd_history.csv"),
                           smoke["bananas"]["recipe"]["epochs"], demo["bananas"]["recipe"]["epochs"]),
        "bananas val images": (metrics["bananas"]["val_images"], smoke["bananas"]["demo"]["test"],
                               demo["bananas"]["demo"]["test"]),
        "CIFAR-10 test images": (metrics["cifar10-augmentation"]["test_images"], smoke["cifar10"]["demo"]["test"],
                                 demo["cifar10"]["demo"]["test"]),
        "Kaggle CIFAR-10 submission rows": (metrics["kaggle-cifar10"]["submission_rows"],
                                            smoke["kaggle_cifar10"]["demo"]["test"],
                                            demo["kaggle_cifar10"]["demo"]["test"]),
        "Kaggle dogs submission rows": (metrics["kaggle-dogs"]["submission_rows"], smoke["kaggle_dogs"]["demo"]["test"],
                                        demo["kaggle_dogs"]["demo"]["test"]),
        "Kaggle dogs epochs": (_rows(root / "metrics" / "kaggle-dogs" / "train_history.csv"),
                               smoke["kaggle_dogs"]["recipe"]["epochs"], demo["kaggle_dogs"]["recipe"]["epochs"]),
        "style steps": (metrics["style"]["steps"], smoke["style"]["steps"], demo["style"]["steps"]),
        "style history rows": (_rows(root / "metrics" / "style" / "rainier-autumn-oak_history.csv"),
                               smoke["style"]["steps"], demo["style"]["steps"]),
    }
    for what, (produced, smoke_value, demo_value) in produced_and_smoke_and_demo.items():
        assert smoke_value != demo_value, f"{what}: the smoke and demo values agree, the check tells nothing"
        assert produced == smoke_value, f"{what}: {produced}, not the smoke's {smoke_value}"
